#!/usr/bin/env python3
"""NumPy reference for expert-layer.mlir, written from the op semantics.

Reads mlir-runner's printed memref on stdin and compares it with the
reference (relative error <= 1e-5); prints both and exits 1 on a mismatch.
"""
import re
import sys

import numpy as np


def reference():
    t, d, f, e = np.arange(4)[:, None], np.arange(8)[None, :], 16, 4
    x = np.cos(0.3 * t + 0.1 * d)
    ei, fi, di = np.meshgrid(np.arange(e), np.arange(f), np.arange(8), indexing="ij")
    w1 = 0.1 * np.sin(ei + 0.2 * fi + 0.05 * di)
    w3 = 0.1 * np.cos(ei + 0.2 * fi + 0.05 * di)
    ei, di, fi = np.meshgrid(np.arange(e), np.arange(8), np.arange(f), indexing="ij")
    w2 = 0.1 * np.sin(0.5 * ei - 0.1 * di + 0.15 * fi)

    def expert(k, v):
        gate, up = w1[k] @ v, w3[k] @ v
        return w2[k] @ (gate / (1 + np.exp(-gate)) * up)

    routing = {0: [(0, 0.6), (2, 0.4)], 1: [(1, 1.0)], 2: [(2, 0.7), (3, 0.3)], 3: []}
    out = np.zeros((4, 8))
    for tok, chosen in routing.items():
        for k, w in chosen:
            out[tok] += w * expert(k, x[tok])
    return out


def main():
    text = sys.stdin.read()
    body = text[text.index("data =") + len("data ="):]
    got = np.array([float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", body)])
    want = reference()
    print("moec:\n", got.reshape(4, 8))
    print("numpy reference:\n", want)
    if got.size != want.size:
        sys.exit(f"error: expected {want.size} values, got {got.size}")
    err = np.max(np.abs(got - want.ravel())) / np.max(np.abs(want))
    print(f"max relative error: {err:.2e}")
    if err > 1e-5:
        sys.exit("error: moec and the reference disagree")


if __name__ == "__main__":
    main()
