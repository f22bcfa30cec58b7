#!/usr/bin/env python3
"""The sm_90a tensor-core flash-attention kernel against an f64 reference, on a GPU.

Usage: attention_sm90.py LIBRARY [--runtime libmoec_cuda_runtime.so] [--quick]

LIBRARY is test/gpu/Inputs/attention-sm90.mlir lowered by
moe-to-cuda-pipeline and linked as a shared library (scripts/gpu-prepare.sh
builds it as libattention_sm90.so). Each of its functions except the bench_*
ones is called through its C interface on device buffers (allocated and
filled through the moec CUDA runtime, so only NumPy is needed): q
[B, Tq, H, Dh], k and v [B, Tk, KVH, Dh], and for the offset function the
query position p of q's first row, the result [B, Tq, H, Dh] allocated by
the function. The shapes cover one token, lengths that are not a multiple
of the 64-row blocks (63, 65, 200, 800, 1000, and one drawn at random per
function), B = 1 and 2, windows wider than T, equal to it and narrower, and
for the offset function a decode step (Tq = 1) and Tq = 5 (and 70) at
p = Tk - Tq and at p < Tk - Tq (keys after the last query, all masked).

The reference is moe.attention's definition (head i reads kv-head
i // (H // KVH); scores q.k / sqrt(Dh); key j kept for query position
p + i when j <= p + i, and with window(W) when p + i - W < j; softmax over
the kept keys; the probabilities times v) in f64 on the same bf16 values the
kernel reads (f32 operands rounded to bf16, to nearest even, as the kernel
does). The kernel also rounds the probabilities to bf16 before P.V, hence
the tolerance: max |got - ref| / max |ref| <= 2e-2, and every output
finite. q is drawn with twice the spread of k, so the softmax is peaked and
the later rows (many keys) still carry outputs of the size of the first
ones. Prints one line per case and exits non-zero if any fails. --quick
leaves out the cases with 1000 positions (for compute-sanitizer, which
slows kernels).
"""
import argparse
import ctypes
import os
import sys

import numpy as np


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "utils"))
from mgpu import Device, bf16_bits, bf16_value, descriptor_type  # noqa: E402


def reference(q, k, v, window=None, p=0, group=None, summary_source=None):
    """moe.attention in f64: q [B, Tq, H, Dh], k, v [B, Tk, KVH, Dh].

    With `group` (moe.grouped_attention, GMHA): query i of group
    gi = i // group sees the local keys max(gi * group, i - W + 1) <= j <= i
    and, in the same softmax, one summary per earlier group (the mean of its
    keys and of its values, rounded to bf16 as the kernel stores them);
    the means are of `summary_source` (the keys and values as given to the
    kernel, f32 or bf16), k and v otherwise.
    """
    b_, tq, h, dh = q.shape
    tk, kvh = k.shape[1], k.shape[2]
    g = h // kvh
    pos = p + np.arange(tq)[:, None]
    j = np.arange(tk)[None, :]
    keep = j <= pos
    if window is not None:
        keep &= j > pos - window
    if group is not None:
        groups = tk // group
        keep &= j >= (pos // group) * group
        keep = np.concatenate(
            [keep, np.arange(groups)[None, :] < pos // group], axis=1)
        def summaries(x):
            means = x[:, :groups * group].reshape(
                b_, groups, group, kvh, dh).mean(axis=2)
            return bf16_value(bf16_bits(means)).astype(np.float64)
        ks, vs = summary_source if summary_source is not None else (k, v)
        k = np.concatenate([k, summaries(ks)], axis=1)
        v = np.concatenate([v, summaries(vs)], axis=1)
    out = np.empty((b_, tq, h, dh))
    for b in range(b_):
        for kv in range(kvh):
            # The g query heads of this kv-head at once: [g, Tq, Tk].
            qg = q[b, :, kv * g:(kv + 1) * g, :].transpose(1, 0, 2)
            s = qg @ k[b, :, kv, :].T / np.sqrt(dh)
            s = np.where(keep, s, -np.inf)
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            out[b, :, kv * g:(kv + 1) * g, :] = (s @ v[b, :, kv, :]).transpose(1, 0, 2)
    return out


# GMHA functions: their group size.
GROUPS = {"gmha_g64_w32_d128": 64, "f32_gmha_g100_w300_d64": 100}

# name: (H, KVH, Dh, window, offset, f32 operands, bf16 result, cases)
# Each case is (B, Tq, Tk, p); Tk = Tq and p = 0 but for the offset function;
# Tq = None draws a length at random (in [2, 400)).
FUNCTIONS = {
    "causal_g8_d128": (8, 1, 128, None, False, False, False, [
        (1, 1, 1, 0), (2, 63, 63, 0), (1, 64, 64, 0), (2, 65, 65, 0),
        (1, 200, 200, 0), (2, 1000, 1000, 0), (1, None, None, 0)]),
    "causal_g1_d64": (4, 4, 64, None, False, False, False, [
        (2, 1, 1, 0), (1, 63, 63, 0), (2, 65, 65, 0), (1, 129, 129, 0),
        (2, 1000, 1000, 0), (2, None, None, 0)]),
    "window100_g4_d128": (8, 2, 128, 100, False, False, False, [
        (1, 1, 1, 0), (2, 63, 63, 0), (1, 100, 100, 0), (2, 101, 101, 0),
        (1, 200, 200, 0), (2, 1000, 1000, 0), (1, None, None, 0)]),
    "f32_window512_g2_d64": (4, 2, 64, 512, False, True, True, [
        (2, 1, 1, 0), (1, 65, 65, 0), (2, 200, 200, 0), (1, 512, 512, 0),
        (2, 513, 513, 0), (2, 800, 800, 0), (1, 1000, 1000, 0),
        (2, None, None, 0)]),
    "offset_g4_d128": (8, 2, 128, None, True, False, False, [
        # decode steps: Tq = 1 at p = Tk - 1, and before the last key
        (1, 1, 1, 0), (2, 1, 64, 63), (1, 1, 65, 64), (2, 1, 1000, 999),
        (1, 1, 200, 50), (2, 1, 130, 0),
        # Tq = 5 at p = Tk - Tq, and before
        (2, 5, 5, 0), (1, 5, 200, 195), (2, 5, 200, 60), (1, 5, 130, 0),
        (1, 5, 1000, 995), (2, 5, 1000, 3),
        # more than one 64-row query block
        (2, 70, 300, 230), (1, 70, 300, 100)]),
    # The split-keys decode shape (a static number of queries): the keys
    # split over up to 2 x 132 / (B x KVH) CTAs, one block of 64 each at
    # most, merged by a combine; B = 8 gives fewer splits.
    "decode_g4_d128": (8, 2, 128, None, True, False, False, [
        (1, 1, 1, 0), (2, 1, 64, 63), (1, 1, 65, 64), (1, 1, 1000, 999),
        (2, 1, 5000, 4999), (8, 1, 3000, 2999), (1, 1, 700, 100),
        (2, 1, 130, 0)]),
    "decode5_window64_g8_d64": (8, 1, 64, 64, True, False, True, [
        (1, 5, 5, 0), (2, 5, 70, 65), (1, 5, 1000, 995), (8, 5, 2000, 1995),
        (2, 5, 600, 300)]),
    # GMHA: one token, less than a group (no summary), a group exactly, a
    # partial last group, several groups, G >= T
    "gmha_g64_w32_d128": (8, 2, 128, 32, False, False, False, [
        (1, 1, 1, 0), (2, 63, 63, 0), (1, 64, 64, 0), (2, 65, 65, 0),
        (1, 200, 200, 0), (2, 1000, 1000, 0), (1, None, None, 0)]),
    "f32_gmha_g100_w300_d64": (4, 4, 64, 300, False, True, False, [
        (2, 1, 1, 0), (1, 99, 99, 0), (2, 100, 100, 0), (1, 101, 101, 0),
        (2, 250, 250, 0), (1, 1000, 1000, 0), (2, None, None, 0)]),
}


def run_case(lib, device, name, b, tq, tk, p, rng):
    h, kvh, dh, window, has_offset, f32_in, bf16_out, _ = FUNCTIONS[name]
    q = (2 * rng.standard_normal((b, tq, h, dh))).astype(np.float32)
    k = rng.standard_normal((b, tk, kvh, dh)).astype(np.float32)
    v = rng.standard_normal((b, tk, kvh, dh)).astype(np.float32)
    bits = [bf16_bits(a) for a in (q, k, v)]
    operands = (q, k, v) if f32_in else bits
    args = [ctypes.byref(device.upload(a)) for a in operands]
    if has_offset:
        args.append(ctypes.c_int64(p))
    result = descriptor_type(4)()
    getattr(lib, "_mlir_ciface_" + name)(ctypes.byref(result), *args)
    shape = (b, tq, h, dh)
    rowmajor = (tq * h * dh, h * dh, dh, 1)
    detail = "B=%d Tq=%-4d Tk=%-4d H=%d KVH=%d Dh=%-3d%s%s" % (
        b, tq, tk, h, kvh, dh,
        " W=%d" % window if window is not None else "",
        " p=%d" % p if has_offset else "")
    bad = None
    if not result.allocated:
        bad = "no result buffer"
    elif tuple(result.sizes) != shape:
        bad = "result shape %s" % (tuple(result.sizes),)
    elif any(result.strides[i] != rowmajor[i] for i in range(4) if shape[i] > 1):
        bad = "result strides %s" % (tuple(result.strides),)
    if bad:
        if result.allocated:
            device.free(result)
        device.free_all()
        print("FAIL %-20s %-50s %s" % (name, detail, bad))
        return False
    got = device.download(result, shape, np.uint16 if bf16_out else np.float32)
    got = bf16_value(got) if bf16_out else got
    device.free_all()

    group = GROUPS.get(name)
    if group is not None:
        # The summaries are means of the operands as given (f32 or bf16).
        given = [a.astype(np.float64) for a in (q, k, v)] if f32_in else \
            [bf16_value(a).astype(np.float64) for a in bits]
        rounded = [bf16_value(a).astype(np.float64) for a in bits]
        ref = reference(*rounded, window=window, group=group,
                        summary_source=given[1:])
    else:
        ref = reference(*[bf16_value(a).astype(np.float64) for a in bits],
                        window=window, p=p)
    err = np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30)
    ok = bool(np.isfinite(got).all() and err <= 2e-2)
    print("%-4s %-20s %-50s max rel. error %.2e (<= 2e-02)%s" % (
        "PASS" if ok else "FAIL", name, detail, err,
        "" if np.isfinite(got).all() else "; not finite"))
    if not ok:
        diagnose(got, ref)
    return ok


def diagnose(got, ref):
    """Where a failing result is wrong, for fixing the kernel without a GPU
    at hand: the worst element, and the (b, t, h) rows off by more than the
    tolerance, by position and by head."""
    scale = max(np.abs(ref).max(), 1e-30)
    diff = np.where(np.isfinite(got), np.abs(got - ref), np.inf) / scale
    worst = np.unravel_index(np.argmax(diff), diff.shape)
    print("     worst at (b, t, h, d) = %s: got %r, expected %r" % (
        tuple(int(i) for i in worst), float(got[worst]), float(ref[worst])))
    bad = diff.max(axis=-1) > 2e-2                       # [B, T, H]
    b_, t_, h_ = np.nonzero(bad)
    print("     %d of %d (b, t, h) rows off; positions %s; heads %s" % (
        bad.sum(), bad.size, np.unique(t_)[:12].tolist(),
        np.unique(h_)[:12].tolist()))
    # A wrong layout shows as a pattern in the head dimension.
    cols = (diff > 2e-2).any(axis=(0, 1, 2))
    print("     head dims off: %s" % np.nonzero(cols)[0][:32].tolist())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("library")
    ap.add_argument("--runtime", default=os.path.join(
        os.path.dirname(os.path.abspath(sys.argv[0])), "..", "..", "build",
        "lib", "libmoec_cuda_runtime.so"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    device = Device(args.runtime)
    lib = ctypes.CDLL(os.path.abspath(args.library))
    rng = np.random.default_rng(11)
    failures = cases = 0
    for name, function in FUNCTIONS.items():
        for b, tq, tk, p in function[7]:
            if tq is None:
                tq = tk = int(rng.integers(2, 400))
            if args.quick and max(tq, tk) >= 1000:
                continue
            cases += 1
            failures += not run_case(lib, device, name, b, tq, tk, p, rng)
            sys.stdout.flush()
    print("attention sm90: %s (%d cases)" % (
        "PASS" if not failures else "FAIL (%d failed)" % failures, cases))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
