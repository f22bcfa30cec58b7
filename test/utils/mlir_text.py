"""MLIR text helpers shared by the NumPy references of the executed tests:
tensor types and dense literals for the modules they emit, and the values
that printMemrefF32 prints."""

import re

import numpy as np


def bf16_round(a):
    """Rounds f32 values to bf16 (nearest even), returned as f32."""
    bits = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return rounded.astype(np.uint32).view(np.float32)


def mlir_type(shape, element):
    """`tensor<4x?x8xf32>`; None stands for a dynamic size."""
    dims = "x".join("?" if d is None else str(d) for d in shape)
    return "tensor<%s%s%s>" % (dims, "x" if dims else "", element)


def dense(a):
    """A dense<...> literal body, nine significant digits, always floats."""
    if a.ndim == 0:
        return "%.8e" % a
    return "[" + ", ".join(dense(x) for x in a) + "]"


def parse_memref(text):
    """The values printed by printMemrefF32, in order."""
    body = text[text.index("data =") + len("data ="):]
    numbers = re.findall(r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)", body)
    return np.array([float(x) for x in numbers])


def printed_error(name, output, expected):
    """The max relative error (max |got - expected| / max |expected|) of the
    values printed in `output`, or a FAIL line when their count is wrong."""
    got = parse_memref(output)
    if got.size != expected.size:
        return None, "FAIL %s: %d values printed, expected %d" % (
            name, got.size, expected.size)
    got = got.reshape(expected.shape)
    return np.abs(got - expected).max() / np.abs(expected).max(), None
