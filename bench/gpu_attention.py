#!/usr/bin/env python3
"""Attention forward on a GPU: moec's sm_90a flash-attention kernel against
PyTorch's scaled_dot_product_attention.

Usage: bench/gpu_attention.py LIBRARY [--runtime libmoec_cuda_runtime.so]
           [--runs 10] [--quick] [--variant NAME=LIBRARY ...]

LIBRARY is test/gpu/Inputs/attention-sm90.mlir lowered by
moe-to-cuda-pipeline and linked by scripts/gpu-prepare.sh
(libattention_sm90.so). Shapes: B = 1, 32 query heads on 8 kv-heads,
Dh = 128, bf16 in and out, T in {1024, 4096, 16384} (--quick: 1024 and
4096). Rows:

* causal: moec's bench_causal against SDPA with the flash backend forced
  (sdpa_kernel(SDPBackend.FLASH_ATTENTION), is_causal=True), the grouped
  kv-heads passed with enable_gqa=True where that backend takes it,
  otherwise k and v repeated to 32 heads outside the timed region (the
  output says which);
* window: moec's bench_window512 (key j kept for query i when
  i - 512 < j <= i) against SDPA with an explicit T x T boolean mask, what
  a user of SDPA has for a sliding window, and the backend SDPA chooses
  for it (named in the output; k and v repeated outside the timed region
  unless that choice takes enable_gqa=True without falling back to the
  math backend).

SDPA reads [B, H, T, Dh] views of the same [B, T, H, Dh] tensors moec gets.
A moec call runs on its own stream and returns after synchronising it, so
it is timed on the host clock; the call's fixed cost (creating its stream,
allocating, launching, synchronising), measured on one token, is taken off
(both numbers are printed, the ratios use the corrected one). SDPA is timed
with CUDA events. Each number is the median of --runs calls
after warm-up, on inputs rotated among three sets so that no call finds its
operands in L2. TFLOP/s count 4 * B * H * Dh FLOPs per kept (query, key)
pair (T (T + 1) / 2 pairs causal, fewer with the window) for both columns.
At the smallest T the moec outputs are checked against SDPA's (max abs.
difference / max abs. value, <= 2e-2; the script exits 1 otherwise).

If LIBRARY also has functions bench_gmha (G = 1024, W = 512) and
bench_gmha_g128_w64 (the defaults of the config's GMHA keys): grouped
multi-head attention, moe.grouped_attention, on the same shapes, each is
timed for T up to 65536:
time per token, and the peak of moec's stream-ordered allocations (the
device's default memory pool, the result included) during one call.
"""
import argparse
import ctypes
import statistics
import sys
import time

import torch
import torch.nn.functional as F_
from torch.nn.attention import SDPBackend, sdpa_kernel

from moec_cuda import CompiledLibrary, memref, memref_type

B, H, KVH, DH, WINDOW = 1, 32, 8, 128, 512
TOKENS = [1024, 4096, 16384]
GMHA_TOKENS = [4096, 8192, 16384, 32768, 65536]


class Moec(CompiledLibrary):
    """The compiled functions: `call(name, descriptors)` -> device result."""

    def call(self, name, args, keep=None):
        """Runs `name` on (q, k, v) descriptors `args`; with `keep` (a torch
        tensor of the result's shape and type) copies the result there."""
        result = memref_type(4)()
        self.invoke(name, result, args)
        if keep is not None:
            if tuple(result.sizes) != tuple(keep.shape):
                raise RuntimeError("%s: result shape %s" % (name, tuple(result.sizes)))
            self.copy_out(result, keep)
        self.free(result)
        return result


class PoolPeak:
    """How much of the device's default memory pool (where moec's runtime
    puts its stream-ordered allocations) one call uses at most, through the
    driver API: `start()` before, `peak()` after (bytes, or None where the
    driver does not answer)."""
    USED_MEM_CURRENT, USED_MEM_HIGH = 7, 8   # CU_MEMPOOL_ATTR_USED_MEM_*

    def __init__(self):
        self.pool = None
        self.base = 0
        try:
            self.cu = ctypes.CDLL("libcuda.so.1")
            device = ctypes.c_int()
            pool = ctypes.c_void_p()
            if (self.cu.cuDeviceGet(ctypes.byref(device),
                                    torch.cuda.current_device()) == 0 and
                    self.cu.cuDeviceGetDefaultMemPool(ctypes.byref(pool), device) == 0):
                self.pool = pool
        except OSError:
            pass

    def _get(self, attribute):
        value = ctypes.c_uint64(0)
        if self.pool is None or self.cu.cuMemPoolGetAttribute(
                self.pool, attribute, ctypes.byref(value)) != 0:
            self.pool = None
            return None
        return value.value

    def start(self):
        """Resets the high-water mark to the current use (0 sets it so)."""
        if self.pool is not None:
            zero = ctypes.c_uint64(0)
            if self.cu.cuMemPoolSetAttribute(self.pool, self.USED_MEM_HIGH,
                                             ctypes.byref(zero)) != 0:
                self.pool = None
        self.base = self._get(self.USED_MEM_CURRENT) or 0

    def peak(self):
        high = self._get(self.USED_MEM_HIGH)
        return None if high is None else high - self.base


def settle_runs(elapsed_ms, runs):
    """Fewer runs for calls that take long: the script stays short."""
    return min(runs, max(3, int(2000 / max(elapsed_ms, 1e-3))))


def time_cuda(fn, inputs, runs):
    """Median ms of fn(x) over `runs` calls, CUDA events, rotating inputs."""
    start = time.perf_counter()
    for x in inputs:
        fn(x)
    torch.cuda.synchronize()
    runs = settle_runs((time.perf_counter() - start) * 1e3 / len(inputs), runs)
    times = []
    for i in range(runs):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        fn(inputs[i % len(inputs)])
        end.record()
        end.synchronize()
        times.append(begin.elapsed_time(end))
    return statistics.median(times)


def time_host(fn, inputs, runs):
    """Median ms of fn(x) on the host clock (fn synchronises itself)."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    for x in inputs:
        fn(x)
    runs = settle_runs((time.perf_counter() - start) * 1e3 / len(inputs), runs)
    times = []
    for i in range(runs):
        begin = time.perf_counter()
        fn(inputs[i % len(inputs)])
        times.append((time.perf_counter() - begin) * 1e3)
    return statistics.median(times)


def random_qkv(t):
    """Random bf16 q [B, t, H, Dh] and k, v [B, t, KVH, Dh] on the GPU."""
    return tuple(torch.randn(B, t, n, DH, device="cuda", dtype=torch.bfloat16)
                 for n in (H, KVH, KVH))


def kept_pairs(t, window=None):
    if window is None or t <= window:
        return t * (t + 1) // 2
    return window * (window + 1) // 2 + (t - window) * window


def backend_name(q, k, v, mask, causal, gqa):
    """The backend SDPA's default choice takes for these arguments."""
    try:
        choice = int(torch._fused_sdp_choice(q, k, v, attn_mask=mask,
                                             is_causal=causal, enable_gqa=gqa))
    except Exception:   # a private function: absent or changed
        return "?"
    return {0: "math", 1: "flash", 2: "efficient", 3: "cudnn",
            4: "overrideable"}.get(choice, str(choice))


def window_mask(t, device):
    """True where key j is kept for query i: i - WINDOW < j <= i."""
    i = torch.arange(t, device=device)[:, None]
    j = torch.arange(t, device=device)[None, :]
    return (j <= i) & (j > i - WINDOW)


def rel_error(got, ref):
    got, ref = got.float(), ref.float()
    if not torch.isfinite(got).all():
        return float("inf")
    return float((got - ref).abs().max() / ref.abs().max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("library")
    ap.add_argument("--runtime", default="build/lib/libmoec_cuda_runtime.so")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--quick", action="store_true",
                    help="T = 1024 and 4096 only")
    ap.add_argument("--variant", action="append", default=[],
                    metavar="NAME=LIBRARY",
                    help="also time the causal and window functions of "
                         "another build of the same file (rows kind/NAME)")
    args = ap.parse_args()
    tokens = [t for t in TOKENS if not args.quick or t <= 4096]
    gmha_tokens = [t for t in GMHA_TOKENS if not args.quick or t <= 4096]
    torch.manual_seed(0)
    dev, bf16 = "cuda", torch.bfloat16
    moec = Moec(args.library, args.runtime)
    builds = [("", moec)] + [
        ("/" + v.split("=", 1)[0], Moec(v.split("=", 1)[1], args.runtime))
        for v in args.variant]
    group = H // KVH

    # Does the flash backend take the grouped kv-heads as they are?
    q0 = torch.randn(B, 128, H, DH, device=dev, dtype=bf16).transpose(1, 2)
    k0 = torch.randn(B, 128, KVH, DH, device=dev, dtype=bf16).transpose(1, 2)
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            F_.scaled_dot_product_attention(q0, k0, k0, is_causal=True, enable_gqa=True)
        flash_gqa = True
    except (RuntimeError, TypeError):
        flash_gqa = False
    mask0 = window_mask(128, dev)
    window_backend_gqa = backend_name(q0, k0, k0, mask0, False, True)
    window_gqa = window_backend_gqa not in ("math", "?")
    k0r = k0.repeat_interleave(group, dim=1)
    window_backend = (window_backend_gqa if window_gqa else
                      backend_name(q0, k0r, k0r, mask0, False, False))
    del q0, k0, k0r, mask0

    print("GPU: %s; torch %s; B=%d H=%d KVH=%d Dh=%d bf16; median of up to "
          "%d runs, 3 rotating input sets" % (
              torch.cuda.get_device_name(), torch.__version__, B, H, KVH, DH,
              args.runs))
    # A call creates its stream, allocates, launches and synchronises: a
    # fixed host cost, measured on one token and taken off the times.
    overhead = {}
    one = random_qkv(1)
    for label, build in builds:
        for name in ("bench_causal", "bench_window512"):
            overhead[(label, name)] = time_host(
                lambda s: build.call(name, s),
                [tuple(memref(x) for x in one)], args.runs)
    del one
    print("moec: host clock around each call (it synchronises its stream), "
          "less the call's fixed cost measured at T = 1 (%s); SDPA: CUDA "
          "events" % ", ".join("%s%s %.0f us" % (n, label, 1e3 * ms)
                               for (label, n), ms in overhead.items()))
    print("causal SDPA: flash backend forced, %s" % (
        "enable_gqa=True" if flash_gqa else
        "k/v repeat_interleave'd to %d heads outside the timed region "
        "(flash refused enable_gqa)" % H))
    print("window SDPA: explicit T x T bool mask, default backend choice "
          "(%s), %s" % (window_backend,
                        "enable_gqa=True" if window_gqa else
                        "k/v repeat_interleave'd to %d heads outside the timed "
                        "region" % H))
    print()
    print("| T | kind | moec ms (host) | moec ms | SDPA ms | SDPA / moec | moec TFLOP/s | SDPA TFLOP/s |")
    print("|---|---|---|---|---|---|---|---|")
    checks, ratios, causal_ms = [], {}, {}
    for t in tokens:
        sets = []
        for _ in range(3):
            q, k, v = random_qkv(t)
            qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
            grouped = (qt, kt, vt)
            if not (flash_gqa and window_gqa):
                repeated = (qt, kt.repeat_interleave(group, dim=1),
                            vt.repeat_interleave(group, dim=1))
            # The tensors stay referenced while their descriptors are used.
            sets.append({"moec": (memref(q), memref(k), memref(v)),
                         "tensors": (q, k, v),
                         "flash": grouped if flash_gqa else repeated,
                         "window": grouped if window_gqa else repeated})
        mask = window_mask(t, dev)
        torch.cuda.synchronize()

        def causal_sdpa(s):
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                return F_.scaled_dot_product_attention(
                    *s["flash"], is_causal=True, enable_gqa=flash_gqa)

        def window_sdpa(s):
            return F_.scaled_dot_product_attention(
                *s["window"], attn_mask=mask, enable_gqa=window_gqa)

        for kind, name, sdpa, window in (
                ("causal", "bench_causal", causal_sdpa, None),
                ("window", "bench_window512", window_sdpa, WINDOW)):
            if t == tokens[0]:
                got = torch.empty_like(sets[0]["tensors"][0])
                moec.call(name, sets[0]["moec"], keep=got)
                with torch.no_grad():
                    ref = sdpa(sets[0]).transpose(1, 2)
                checks.append((kind, rel_error(got, ref)))
                del got, ref
            with torch.no_grad():
                sdpa_ms = time_cuda(sdpa, sets, args.runs)
            flops = 4.0 * B * H * DH * kept_pairs(t, window)
            for label, build in builds:
                host_ms = time_host(lambda s: build.call(name, s["moec"]),
                                    sets, args.runs)
                moec_ms = max(host_ms - overhead[(label, name)], 1e-3)
                if not label:
                    ratios[(t, kind)] = sdpa_ms / moec_ms
                    if kind == "causal":
                        causal_ms[t] = moec_ms
                print("| %d | %s%s | %.3f | %.3f | %.3f | %.2fx | %.1f | %.1f |" % (
                    t, kind, label, host_ms, moec_ms, sdpa_ms,
                    sdpa_ms / moec_ms, flops / moec_ms / 1e9,
                    flops / sdpa_ms / 1e9))
                sys.stdout.flush()
        del sets, mask
        torch.cuda.empty_cache()

    ok = all(err <= 2e-2 for _, err in checks)
    check_line = "check T=%d moec vs SDPA max rel. error %s (<= 2e-2): %s" % (
        tokens[0], ", ".join("%s %.1e" % c for c in checks),
        "PASS" if ok else "FAIL")
    print()
    print(check_line)

    # GMHA: per token, W local keys at most and T / G summaries, so time per
    # token stays flat only while T / G is small next to the window.
    for gmha in ("bench_gmha", "bench_gmha_g128_w64"):
        if not moec.has(gmha):
            continue
        peak = PoolPeak()
        print()
        print(gmha + " (moe.grouped_attention), host clock; peak: moec's "
              "default-pool allocations during one call, result included")
        print("| T | moec ms | us / token | causal us / token | peak MiB | inputs MiB |")
        print("|---|---|---|---|---|---|")
        for t in gmha_tokens:
            sets = []
            for _ in range(2):
                q, k, v = random_qkv(t)
                sets.append(((q, k, v), (memref(q), memref(k), memref(v))))
            torch.cuda.synchronize()
            inputs_mib = sum(x.numel() * x.element_size() for x in sets[0][0]) / 2**20
            peak.start()
            result = moec.call(gmha, sets[0][1])
            torch.cuda.synchronize()
            peak_bytes = peak.peak()
            if tuple(result.sizes) != (B, t, H, DH):
                print("| %d | result shape %s |" % (t, tuple(result.sizes)))
                ok = False
                break
            ms = time_host(lambda s: moec.call(gmha, s[1]), sets,
                           min(args.runs, 5))
            print("| %d | %.3f | %.3f | %s | %s | %.0f |" % (
                t, ms, 1e3 * ms / (B * t),
                "%.3f" % (1e3 * causal_ms[t] / (B * t)) if t in causal_ms else "-",
                "%.0f" % (peak_bytes / 2**20) if peak_bytes is not None else "n/a",
                inputs_mib))
            sys.stdout.flush()
            del sets
            torch.cuda.empty_cache()

    largest = tokens[-1]
    print()
    print("summary: %s; T=%d SDPA/moec causal %.2fx, window %.2fx" % (
        check_line, largest, ratios[(largest, "causal")],
        ratios[(largest, "window")]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
