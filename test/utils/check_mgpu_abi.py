#!/usr/bin/env python3
"""Checks that a runtime library defines every mgpu* function an LLVM IR
module declares.

Usage: check_mgpu_abi.py MODULE.ll LIBRARY.so LLVM-NM

Prints each declared function with OK or MISSING, and exits 1 if any is
missing or if the module declares none (a pipeline that stopped emitting
runtime calls should not pass silently).
"""
import re
import subprocess
import sys


def main():
    module, library, nm = sys.argv[1:4]
    declared = sorted(set(re.findall(r"^declare [^@]*@(mgpu\w+)\(",
                                     open(module).read(), re.M)))
    defined = set(subprocess.run([nm, "-D", "--defined-only", "--format=just-symbols",
                                  library], check=True, capture_output=True,
                                 text=True).stdout.split())
    if not declared:
        sys.exit("error: " + module + " declares no mgpu* function")
    missing = [name for name in declared if name not in defined]
    for name in declared:
        print(("MISSING " if name in missing else "OK ") + name)
    if missing:
        sys.exit("error: " + library + " lacks " + ", ".join(missing))


if __name__ == "__main__":
    main()
