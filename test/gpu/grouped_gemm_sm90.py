#!/usr/bin/env python3
"""The sm_90a tensor-core grouped GEMM against an f64 reference, on a GPU.

Usage: grouped_gemm_sm90.py LIBRARY [--runtime libmoec_cuda_runtime.so] [--quick]

LIBRARY is test/gpu/Inputs/grouped-gemm-sm90.mlir lowered by
moe-to-cuda-pipeline and linked as a shared library (scripts/gpu-prepare.sh
builds it). Each of its functions is called through its C interface on
device buffers (allocated and filled through the moec CUDA runtime, so only
NumPy is needed), over group offsets that cover the edge cases: random
sizes, empty groups, every row in one group, one row, rows past the last
offset (sized like the CUDA pipeline's static row bound: never stored),
and a skew where one group holds 90% of the rows. The reference multiplies
the same bf16 values (f32 rows are rounded to bf16 as the kernel does) in
f64. Two functions have consumers fused into the epilogue: a bias and a
residual add, and a combine of routed rows (tokens with no slot, with
every slot, unused slots holding row -1) plus a shared expert. Prints one line per case and exits non-zero if any fails. --quick
leaves out the large case (for compute-sanitizer, which slows kernels).
"""
import argparse
import ctypes
import os
import sys

import numpy as np


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "utils"))
from mgpu import Device, bf16_bits, bf16_value, descriptor_type  # noqa: E402


def offsets_for(kind, rows, groups, rng):
    """Group offsets for `rows` rows of which the groups cover `used`."""
    used = rows
    if kind == "random":
        sizes = rng.multinomial(rows, np.ones(groups) / groups)
    elif kind == "empty":
        sizes = rng.multinomial(rows, np.ones(groups) / groups)
        sizes[::2] = 0
        sizes[-1] += rows - sizes.sum()
    elif kind == "one-group":
        sizes = np.zeros(groups, np.int64)
        sizes[groups // 2] = rows
    elif kind == "one-row":
        sizes = np.zeros(groups, np.int64)
        sizes[-1] = 1
        used = 1
    elif kind == "past-end":
        used = rows - rows // 3
        sizes = rng.multinomial(used, np.ones(groups) / groups)
    elif kind == "skew":
        big = int(rows * 0.9)
        sizes = np.concatenate([[big], rng.multinomial(
            rows - big, np.ones(groups - 1) / (groups - 1))])
    else:
        raise ValueError(kind)
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32), used


def reference(x, w, u, offsets, scale):
    """f64 products of each row with its group's weights, then the epilogue."""
    out = np.zeros((x.shape[0], w.shape[1]))
    for g in range(w.shape[0]):
        lo, hi = offsets[g], offsets[g + 1]
        y = x[lo:hi] @ w[g].T
        if u is not None:
            y = y / (1 + np.exp(-y)) * (x[lo:hi] @ u[g].T)
        out[lo:hi] = y
    if scale is not None:
        out *= scale[:, None]
    return out


# name: (G, N, K, swiglu, scale, f32 rows, bf16 result, row counts, kinds)
CASES = {
    "plain": (8, 256, 512, False, False, False, False, [1, 300],
              ["random", "empty", "one-group", "one-row", "past-end"]),
    "partial": (3, 200, 72, False, False, False, False, [5, 257],
                ["random", "empty", "one-row"]),
    "swiglu": (4, 192, 128, True, True, False, True, [130],
               ["random", "empty", "one-group", "past-end"]),
    "f32_rows": (1, 128, 64, False, False, True, False, [1, 129],
                 ["random"]),
    "large": (8, 1024, 1024, False, False, False, False, [4096],
              ["random", "skew"]),
}


def run_case(lib, device, name, rows, kind, rng):
    g, n, k, swiglu, has_scale, f32_rows, bf16_out, _, _ = CASES[name]
    offsets, used = offsets_for(kind, rows, g, rng)
    x = rng.standard_normal((rows, k)).astype(np.float32)
    xb = bf16_bits(x)
    w = bf16_bits(rng.standard_normal((g, n, k)) / np.sqrt(k))
    u = bf16_bits(rng.standard_normal((g, n, k)) / np.sqrt(k)) if swiglu else None
    scale = rng.random(rows).astype(np.float32) if has_scale else None

    args = [device.upload(x if f32_rows else xb), device.upload(w)]
    if swiglu:
        args.append(device.upload(u))
    args.append(device.upload(offsets))
    if has_scale:
        args.append(device.upload(scale))
    result = descriptor_type(2)()
    getattr(lib, "_mlir_ciface_" + name)(
        ctypes.byref(result), *[ctypes.byref(a) for a in args])
    if tuple(result.sizes) != (rows, n):
        raise RuntimeError("result shape %s" % (tuple(result.sizes),))
    got = device.download(result, (rows, n), np.uint16 if bf16_out else np.float32)
    got = bf16_value(got) if bf16_out else got
    device.free_all()

    ref = reference(bf16_value(xb).astype(np.float64),
                    bf16_value(w).astype(np.float64),
                    None if u is None else bf16_value(u).astype(np.float64),
                    offsets, scale)
    err = np.abs(got[:used] - ref[:used]).max() / max(np.abs(ref[:used]).max(), 1e-30)
    tolerance = 1e-2 if bf16_out else 1e-4
    ok = np.isfinite(got[:used]).all() and err <= tolerance
    print("%-4s %-9s G=%-2d N=%-4d K=%-4d rows=%-5d used=%-5d %-9s "
          "max rel. error %.2e (<= %.0e)" % (
              "PASS" if ok else "FAIL", name, g, n, k, rows, used, kind, err,
              tolerance))
    return ok


def check(name, got, ref, tolerance, detail):
    err = np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30)
    ok = np.isfinite(got).all() and err <= tolerance
    print("%-4s %-14s %-40s max rel. error %.2e (<= %.0e)" % (
        "PASS" if ok else "FAIL", name, detail, err, tolerance))
    return ok


def run_bias_residual(lib, device, rows, rng):
    n, k = 192, 256
    xb = bf16_bits(rng.standard_normal((rows, k)))
    w = bf16_bits(rng.standard_normal((1, n, k)) / np.sqrt(k))
    bias = bf16_bits(rng.standard_normal(n))
    res = rng.standard_normal((rows, n)).astype(np.float32)
    offsets = np.array([0, rows], np.int32)
    result = descriptor_type(2)()
    lib._mlir_ciface_bias_residual(ctypes.byref(result), *[
        ctypes.byref(device.upload(a)) for a in (xb, w, bias, res, offsets)])
    got = device.download(result, (rows, n), np.float32)
    device.free_all()
    ref = res + (bf16_value(xb).astype(np.float64)
                 @ bf16_value(w[0]).astype(np.float64).T
                 + bf16_value(bias))
    return check("bias_residual", got, ref, 1e-4, "rows=%d" % rows)


def run_combine_shared(lib, device, tokens, rng):
    n, k, slots = 128, 128, 3
    counts = rng.integers(0, slots + 1, tokens).astype(np.int32)
    counts[0] = slots          # a token using every slot
    if tokens > 1:
        counts[1] = 0          # and one using none
    used = int(counts.sum())
    rows = rng.standard_normal((max(used, 1) + 5, n)).astype(np.float32)
    slot_to_row = np.full((tokens, slots), -1, np.int32)
    order = rng.permutation(used)
    pos = 0
    for t in range(tokens):
        slot_to_row[t, :counts[t]] = order[pos:pos + counts[t]]
        pos += counts[t]
    xb = bf16_bits(rng.standard_normal((tokens, k)))
    w = bf16_bits(rng.standard_normal((1, n, k)) / np.sqrt(k))
    offsets = np.array([0, tokens], np.int32)
    result = descriptor_type(2)()
    lib._mlir_ciface_combine_shared(ctypes.byref(result), *[
        ctypes.byref(device.upload(a))
        for a in (xb, w, rows, slot_to_row, counts, offsets)])
    got = device.download(result, (tokens, n), np.float32)
    device.free_all()
    ref = (bf16_value(xb).astype(np.float64)
           @ bf16_value(w[0]).astype(np.float64).T)
    for t in range(tokens):
        for j in range(counts[t]):
            ref[t] += rows[slot_to_row[t, j]]
    return check("combine_shared", got, ref, 1e-4, "tokens=%d" % tokens)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("library")
    p.add_argument("--runtime", default=os.path.join(
        os.path.dirname(os.path.abspath(sys.argv[0])), "..", "..", "build",
        "lib", "libmoec_cuda_runtime.so"))
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    device = Device(args.runtime)
    lib = ctypes.CDLL(os.path.abspath(args.library))
    rng = np.random.default_rng(7)
    failures = 0
    for name, case in CASES.items():
        if args.quick and name == "large":
            continue
        for rows in case[7]:
            for kind in case[8]:
                failures += not run_case(lib, device, name, rows, kind, rng)
    for rows in [1, 200]:
        failures += not run_bias_residual(lib, device, rows, rng)
    for tokens in [1, 2, 300]:
        failures += not run_combine_shared(lib, device, tokens, rng)
    print("grouped GEMM sm90: %s" % ("PASS" if not failures else
                                     "FAIL (%d cases)" % failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
