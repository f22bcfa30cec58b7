#!/usr/bin/env python3
"""NumPy reference for test/integration/cpu/tile-schedule.mlir and
grouped-matmul-tiled.mlir, written from the op documentation alone.

Usage: /usr/bin/python3 grouped_gemm_reference.py

Prints the MLIR constants (inputs) and the expected outputs that the tests
embed. Inputs are multiples of 1/8 so that they are exact in f32; the
expected outputs are computed in float64.
"""
import numpy as np


def tile_schedule(offsets, tile_rows):
    """moe.tile_schedule: (group, first_row, rows) per tile, groups in order;
    ceil(rows / tile_rows) tiles per group, as equal as possible (the first
    rows % count tiles one row longer)."""
    tiles = []
    for g in range(len(offsets) - 1):
        first, rows = offsets[g], max(offsets[g + 1] - offsets[g], 0)
        count = -(-rows // tile_rows)
        for j in range(count):
            size = rows // count + (1 if j < rows % count else 0)
            tiles.append((g, first, size))
            first += size
    return tiles


def grouped_matmul(x, w, offsets, up=None, scale=None):
    """moe.grouped_matmul: rows of group g times weight[g]^T, then the
    epilogue (silu(gate) * up), then the row scale."""
    out = np.zeros((x.shape[0], w.shape[1]))
    for g in range(w.shape[0]):
        rows = slice(offsets[g], offsets[g + 1])
        gate = x[rows] @ w[g].T
        if up is not None:
            gate = gate / (1.0 + np.exp(-gate)) * (x[rows] @ up[g].T)
        out[rows] = gate
    if scale is not None:
        out = out * scale[:, None]
    return out


def dense(a):
    return np.array2string(a, separator=", ", threshold=1 << 30,
                           max_line_width=1 << 30,
                           formatter={"float_kind": lambda v: repr(float(v))})


def main():
    print("// tile_schedule")
    for offsets, tile_rows in [([0, 8, 16, 24, 32], 8),
                               ([0, 90, 94, 94, 100], 16),
                               ([0, 100, 100, 100, 100], 16),
                               ([0, 1, 1, 3, 3], 16),
                               ([0, 0, 0, 0, 0], 16)]:
        print(offsets, tile_rows, tile_schedule(offsets, tile_rows))

    rng = np.random.default_rng(3)
    rows, k, n, groups = 13, 37, 11, 4
    offsets = [0, 9, 9, 12, 13]  # group 1 is empty
    q = lambda *shape: rng.integers(-8, 9, size=shape) / 8.0
    x, w, up = q(rows, k), q(groups, n, k), q(groups, n, k)
    scale = rng.integers(1, 9, size=rows) / 8.0
    print("// x\n" + dense(x))
    print("// w\n" + dense(w))
    print("// up\n" + dense(up))
    print("// scale\n" + dense(scale))
    print("// swiglu + scale\n" +
          dense(grouped_matmul(x, w, offsets, up=up, scale=scale)))
    print("// plain\n" + dense(grouped_matmul(x, w, offsets)))


if __name__ == "__main__":
    main()
