#!/usr/bin/env python3
"""Writes a broken copy of a .safetensors file, for the bad-input tests.

    edit_safetensors.py IN OUT truncate BYTES     keep only the first BYTES
    edit_safetensors.py IN OUT drop NAME          remove tensor NAME
    edit_safetensors.py IN OUT reshape NAME DIMS  declare NAME with shape DIMS
                                                  (e.g. 3x4; same byte size)
    edit_safetensors.py IN OUT retype NAME DTYPE  declare NAME as DTYPE (an
                                                  element type of the same size)

Parses the format itself (8-byte little-endian header length, JSON header,
byte buffer); needs no third-party package.
"""

import json
import struct
import sys


def main(argv):
    src, dst, mode = argv[1], argv[2], argv[3]
    data = open(src, "rb").read()
    if mode == "truncate":
        open(dst, "wb").write(data[:int(argv[4])])
        return
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    name = argv[4]
    if name not in header:
        sys.exit("no tensor %r in %s" % (name, src))
    if mode == "drop":
        del header[name]
    elif mode == "reshape":
        header[name]["shape"] = [int(d) for d in argv[5].split("x")]
    elif mode == "retype":
        header[name]["dtype"] = argv[5]
    else:
        sys.exit("unknown mode " + mode)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    open(dst, "wb").write(struct.pack("<Q", len(text)) + text + body)


if __name__ == "__main__":
    main(sys.argv)
