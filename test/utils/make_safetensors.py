#!/usr/bin/env python3
"""Writes the .safetensors files the safetensors tests read, good and bad.

Usage: make_safetensors.py OUTDIR

The files are built byte by byte from the format's specification (8-byte
little-endian header length, JSON header, byte buffer), not with the
safetensors package: most of them are deliberately broken in ways a writer
would refuse to produce. Good files pad the header with spaces to a multiple
of 8 bytes, as the reference writer does.
"""

import json
import os
import struct
import sys


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def bf16(values):
    # bf16 is the top half of the f32 bit pattern (truncated; the test
    # values are exact in bf16).
    return b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:]
                    for v in values)


def raw(header_bytes, data=b"", header_len=None):
    """A file from a literal header; header_len overrides the true length."""
    n = len(header_bytes) if header_len is None else header_len
    return struct.pack("<Q", n) + header_bytes + data


def good(tensors, metadata=None, holes=0):
    """tensors: [(name, dtype, shape, bytes)], laid out in order, `holes`
    bytes of padding after each."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    data = b""
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload + b"\0" * holes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return raw(text, data)


def entry(name, **fields):
    """A one-tensor header with the given fields, over 16 bytes of data."""
    return raw(json.dumps({name: fields}).encode(), bytes(16))


GATE = "model.layers.0.mlp.gate.weight"
EMBED = "model.embed_tokens.weight"
SHARD1 = "model-00001-of-00002.safetensors"
SHARD2 = "model-00002-of-00002.safetensors"


def index(weight_map):
    return json.dumps({"weight_map": weight_map}).encode()


BAD_OVERLAP = raw(json.dumps({
    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
    "b": {"dtype": "F32", "shape": [3], "data_offsets": [12, 24]},
    "c": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
    "d": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},
}).encode(), bytes(24))

GOOD = {
    "f32.safetensors": good(
        [(EMBED, "F32", [4, 8], f32(range(32))),
         (GATE, "F32", [8, 128], f32([0.5] * 1024))],
        metadata={"format": "pt", "source": "moec tests"}),
    "bf16.safetensors": good(
        [(GATE, "BF16", [8, 128], bf16([1.5] * 1024)),
         ("model.norm.weight", "BF16", [128], bf16([1.0] * 128))]),
    "f16.safetensors": good([(GATE, "F16", [8, 128], bytes(2048))]),
    "empty-tensor.safetensors": good(
        [("empty", "F32", [0, 4], b""), ("scalar", "F32", [], f32([2.0])),
         ("empty.too", "BF16", [3, 0], b"")]),
    "no-tensors.safetensors": good([], metadata={}),
    "holes.safetensors": good(
        [("a", "I64", [2], bytes(16)), ("b", "U8", [3], bytes(3))], holes=5),
    "all-dtypes.safetensors": good(
        [(d, d, [2], bytes(2 * s)) for d, s in
         [("BOOL", 1), ("U8", 1), ("I8", 1), ("F8_E4M3", 1), ("F8_E5M2", 1),
          ("I16", 2), ("U16", 2), ("F16", 2), ("BF16", 2), ("I32", 4),
          ("U32", 4), ("F32", 4), ("I64", 8), ("U64", 8), ("F64", 8)]]),

    # A sharded checkpoint: an index and the shards its weight_map names.
    "sharded/model.safetensors.index.json": json.dumps({
        "metadata": {"total_size": 8320},
        "weight_map": {EMBED: SHARD1, GATE: SHARD2,
                       "model.norm.weight": SHARD2}}).encode(),
    "sharded/" + SHARD1: good([(EMBED, "F32", [4, 8], f32(range(32)))]),
    "sharded/" + SHARD2: good(
        [(GATE, "BF16", [8, 128], bf16([1.5] * 1024)),
         ("model.norm.weight", "F32", [128], f32([1.0] * 128))]),
}

BAD = {
    # Broken framing.
    "empty.safetensors": b"",
    "short.safetensors": b"\x10\0\0\0\0",
    "header-past-eof.safetensors": raw(b"{}", header_len=1000),
    "header-absurd.safetensors": raw(b"{}", header_len=2**64 - 1),
    "header-zero.safetensors": raw(b"", b"{}"),
    "header-array.safetensors": raw(b"[1, 2]"),
    "header-not-json.safetensors": raw(b'{"a": {"dtype": "F32",'),
    "header-bad-utf8.safetensors": raw(b'{"\xff": {}}'),
    "duplicate-tensor.safetensors": raw(
        b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},'
        b' "a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}',
        b"\0\0"),
    "duplicate-field.safetensors": raw(
        b'{"a": {"dtype": "U8", "dtype": "F32", "shape": [1],'
        b' "data_offsets": [0, 1]}}', b"\0"),
    "truncated.safetensors": good(
        [(GATE, "F32", [8, 128], f32([0.5] * 1024))])[:2000],

    # Broken metadata.
    "metadata-not-object.safetensors": raw(b'{"__metadata__": ["pt"]}'),
    "metadata-not-string.safetensors": raw(b'{"__metadata__": {"step": 7}}'),

    # Broken entries.
    "entry-not-object.safetensors": raw(b'{"a": 5}'),
    "no-dtype.safetensors": entry(GATE, shape=[4], data_offsets=[0, 16]),
    "dtype-not-string.safetensors": entry(
        GATE, dtype=4, shape=[4], data_offsets=[0, 16]),
    "unknown-dtype.safetensors": entry(
        GATE, dtype="F17", shape=[4], data_offsets=[0, 16]),
    "no-shape.safetensors": entry(GATE, dtype="F32", data_offsets=[0, 16]),
    "shape-not-array.safetensors": entry(
        GATE, dtype="F32", shape=4, data_offsets=[0, 16]),
    "negative-dim.safetensors": entry(
        GATE, dtype="F32", shape=[-4], data_offsets=[0, 16]),
    "float-dim.safetensors": entry(
        GATE, dtype="F32", shape=[2.5], data_offsets=[0, 16]),
    "string-dim.safetensors": entry(
        GATE, dtype="F32", shape=["4"], data_offsets=[0, 16]),
    "huge-shape.safetensors": entry(
        GATE, dtype="F32", shape=[2**62, 2**62], data_offsets=[0, 16]),
    "huge-dim.safetensors": entry(
        GATE, dtype="F32", shape=[2**64 - 1], data_offsets=[0, 16]),
    "no-offsets.safetensors": entry(GATE, dtype="F32", shape=[4]),
    "offsets-one.safetensors": entry(
        GATE, dtype="F32", shape=[4], data_offsets=[16]),
    "offsets-negative.safetensors": entry(
        GATE, dtype="F32", shape=[4], data_offsets=[-16, 0]),
    "offsets-reversed.safetensors": entry(
        GATE, dtype="F32", shape=[0], data_offsets=[16, 0]),
    "offsets-past-end.safetensors": entry(
        GATE, dtype="F32", shape=[8], data_offsets=[0, 32]),
    "size-mismatch.safetensors": entry(
        GATE, dtype="F32", shape=[2, 3], data_offsets=[0, 16]),
    "overlap.safetensors": BAD_OVERLAP,
    "control-name.safetensors": raw(b'{"bad\\nname": {"shape": []}}'),

    # Broken sharded checkpoints, beside the good one's shards.
    "sharded/not-json.index.json": b'{"weight_map": ',
    "sharded/array.index.json": b"[]",
    "sharded/no-map.index.json": b'{"metadata": {}}',
    "sharded/map-not-object.index.json": b'{"weight_map": []}',
    "sharded/shard-not-string.index.json": index({GATE: 2}),
    "sharded/shard-path.index.json": index({GATE: "../f32.safetensors"}),
    "sharded/missing-shard.index.json": index({GATE: "nope.safetensors"}),
    "sharded/wrong-shard.index.json": index({EMBED: SHARD2}),
    "sharded/bad-shard.index.json": index({"a": "overlap.safetensors"}),
    "sharded/overlap.safetensors": BAD_OVERLAP,
}

FILES = {**GOOD, **BAD}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, content in FILES.items():
        path = os.path.join(out, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)


if __name__ == "__main__":
    main()
