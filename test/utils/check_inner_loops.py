#!/usr/bin/env python3
"""Checks the innermost loops of a disassembly (llvm-objdump -d
--no-show-raw-insn) for stack traffic.

    check_inner_loops.py DISASSEMBLY --with vfmadd231ps,vbroadcastss [--min 12]
                         [--skip-functions REGEX]

A loop is the range from a backward jump's target to the jump; the
innermost ones hold no other loop. Of those containing every instruction
given with --with, the first of them at least --min times, each must have no operand on the stack (addressed off
%rsp: a spill or a reload; optimised code uses %rbp as a general register). Prints one line per such loop and exits
1 if any touches the stack, or if there is none. Loops in functions whose
symbol matches --skip-functions (re.search) are left out.
"""

import argparse
import re
import sys

SYMBOL = re.compile(r"^[0-9a-f]+ <(.*)>:$")
LINE = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
JUMP = re.compile(r"^j[a-z]+$")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("disassembly")
    ap.add_argument("--with", dest="required", required=True)
    ap.add_argument("--min", type=int, default=1)
    ap.add_argument("--skip-functions")
    args = ap.parse_args()
    required = args.required.split(",")
    code = []
    function = ""
    for line in open(args.disassembly):
        symbol = SYMBOL.match(line.strip())
        if symbol:
            function = symbol.group(1)
        m = LINE.match(line)
        if m and not (args.skip_functions and
                      re.search(args.skip_functions, function)):
            code.append((int(m.group(1), 16), m.group(2), m.group(3)))
    index = {address: i for i, (address, _, _) in enumerate(code)}
    loops = []
    for i, (address, mnemonic, operands) in enumerate(code):
        if not JUMP.match(mnemonic):
            continue
        target = re.match(r"(?:0x)?([0-9a-f]+)", operands)
        if target and int(target.group(1), 16) in index:
            start = index[int(target.group(1), 16)]
            if start <= i:
                loops.append((start, i))
    innermost = [(s, e) for s, e in loops
                 if not any((s2, e2) != (s, e) and s <= s2 and e2 <= e
                            for s2, e2 in loops)]
    found = bad = 0
    for s, e in innermost:
        body = code[s:e + 1]
        names = [m for _, m, _ in body]
        if not all(r in names for r in required) or \
                names.count(required[0]) < args.min:
            continue
        found += 1
        stack = [(a, m, o) for a, m, o in body if "(%rsp" in o]
        counts = ", ".join("%d %s" % (sum(m == r for _, m, _ in body), r)
                           for r in required)
        print("loop at %x: %d instructions, %s, %d on the stack"
              % (body[0][0], len(body), counts, len(stack)))
        bad += bool(stack)
    if not found:
        sys.exit("no innermost loop holds %s (the first %d times)"
                 % (", ".join(required), args.min))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
