#!/usr/bin/env python3
"""Writes the first gpu.binary object of an MLIR file to a file.

Usage: extract_gpu_binary.py INPUT.mlir OUTPUT

MLIR prints the object's bytes as an escaped string: printable ASCII as is,
a backslash as two, and any other byte as a backslash and two hex digits.
"""
import re
import sys


def unescape(text):
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out += c.encode("latin-1")
            i += 1
        elif text[i + 1] == "\\":
            out.append(0x5C)
            i += 2
        else:
            out.append(int(text[i + 1:i + 3], 16))
            i += 3
    return bytes(out)


def main():
    source = open(sys.argv[1], encoding="latin-1").read()
    match = re.search(r'gpu\.binary @\S+\s+\[#gpu\.object<.*?bin = "((?:[^"\\]|\\.)*)"',
                      source, re.S)
    if not match:
        sys.exit("error: no gpu.binary with a 'bin' payload in " + sys.argv[1])
    with open(sys.argv[2], "wb") as f:
        f.write(unescape(match.group(1)))


if __name__ == "__main__":
    main()
