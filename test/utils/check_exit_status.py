#!/usr/bin/env python3
"""Runs moec-safetensors on every file make_safetensors.py writes, and on
unreadable paths, checking the bad-input contract: a good file exits 0 and
prints nothing on stderr; bad input exits with status 1 exactly (not a
crash), prints nothing on stdout and one line on stderr that starts with the
path at fault (for a sharded checkpoint's index, it or one of its shards).

Usage: check_exit_status.py TOOL DIR   (DIR as written by make_safetensors.py)
Prints one line per case, "OK name" or "FAIL name: why"; exits 1 on a FAIL.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_safetensors  # noqa: E402


def main():
    tool, directory = sys.argv[1], sys.argv[2]
    cases = [(name, True) for name in make_safetensors.GOOD]
    cases += [(name, False) for name in make_safetensors.BAD]
    # Paths that cannot be read as weight files at all.
    cases += [("does-not-exist.safetensors", False), (".", False),
              ("/dev/null", False)]
    failed = False
    for name, good in cases:
        run = subprocess.run([tool, name], cwd=directory, capture_output=True)
        lines = run.stderr.decode(errors="replace").splitlines()
        why = None
        if good and (run.returncode != 0 or lines):
            why = "exit %d, stderr %r" % (run.returncode, lines)
        elif not good and run.returncode != 1:
            why = "exit status %d, not 1" % run.returncode
        elif not good and (len(lines) != 1 or run.stdout):
            why = "expected one line on stderr and nothing on stdout"
        # An index's error may name one of its shards instead.
        elif not good and not (lines[0].startswith(name + ": ") or (
                name.endswith(".json") and
                lines[0].startswith(os.path.dirname(name) + "/"))):
            why = "message does not start with the path: %r" % lines[0]
        failed |= why is not None
        print("FAIL %s: %s" % (name, why) if why else "OK " + name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
