#!/usr/bin/python3
"""CPU benchmark of moe.grouped_matmul (moe-tile-grouped-matmul's kernel).

Compiles three functions through the moe CPU pipeline, loads them into this
process and times them side by side on the same data:

  grouped     one moe.grouped_matmul over E experts (the tile schedule);
  per-expert  an scf.for over the experts, each a one-group grouped_matmul
              on its rows (each expert's GEMM is parallel on its own);
  dense       one GEMM of the same FLOPs: a one-group grouped_matmul,
              [R, K] x [K, N] (the same kernel, no routing);
  swiglu      the grouped GEMM with epilogue(swiglu): gate and up
              projections in one pass (twice the FLOPs; compared with two
              dense GEMMs);

plus NumPy/OpenBLAS (np.matmul, float32) on the dense problem and as a
per-expert loop, for the absolute level. Routings: balanced (R / E rows per
expert) and skewed (90% of the rows to expert 0, the rest spread over
experts 1-4, experts 5-7 empty). Times are medians of --runs calls after
--warmup calls, taken round-robin across the variants (so that background
load hits them alike); every call allocates its [R, N] result (as the compiled
function returns a new tensor), which the timing includes.

Usage (from the repository root, after building moec in build/):

  OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 /usr/bin/python3 bench/grouped_gemm.py

Options: --rows R --k K --n N --experts E --runs N --warmup N
--pipeline-options "tile-rows=64 ..." --cflags "-O3 -march=native"
--moec-opt PATH (default build/bin/moec-opt) --cpu-time
--bf16 (adds bf16 operands: widened to f32, and through the AVX-512 BF16
dot product, pipeline option bf16-dot)
--smoke (tiny shapes, checks results, prints no timing).
Needs moec-opt (build/bin), mlir-translate-22, clang-22, libomp (LLVM 22)
and Debian's python3-numpy.
"""
import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLVM = "/usr/lib/llvm-22"


def mlir_source(k, n, experts, t="f32"):
    """The functions, with static K, N and E, dynamic rows, elements of
    type `t` (f32 or bf16)."""
    return f"""
func.func @grouped(%x: tensor<?x{k}x{t}>, %w: tensor<{experts}x{n}x{k}x{t}>,
                   %off: tensor<{experts + 1}xi32>) -> tensor<?x{n}x{t}>
    attributes {{llvm.emit_c_interface}} {{
  %y = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x{k}x{t}>, tensor<{experts}x{n}x{k}x{t}>, tensor<{experts + 1}xi32>)
      -> tensor<?x{n}x{t}>
  return %y : tensor<?x{n}x{t}>
}}

func.func @grouped_swiglu(%x: tensor<?x{k}x{t}>, %w: tensor<{experts}x{n}x{k}x{t}>,
                          %up: tensor<{experts}x{n}x{k}x{t}>,
                          %off: tensor<{experts + 1}xi32>) -> tensor<?x{n}x{t}>
    attributes {{llvm.emit_c_interface}} {{
  %y = moe.grouped_matmul %x, %w, %up offsets(%off) epilogue(swiglu)
      : (tensor<?x{k}x{t}>, tensor<{experts}x{n}x{k}x{t}>, tensor<{experts}x{n}x{k}x{t}>,
         tensor<{experts + 1}xi32>) -> tensor<?x{n}x{t}>
  return %y : tensor<?x{n}x{t}>
}}

func.func @dense(%x: tensor<?x{k}x{t}>, %w: tensor<1x{n}x{k}x{t}>,
                 %off: tensor<2xi32>) -> tensor<?x{n}x{t}>
    attributes {{llvm.emit_c_interface}} {{
  %y = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x{k}x{t}>, tensor<1x{n}x{k}x{t}>, tensor<2xi32>) -> tensor<?x{n}x{t}>
  return %y : tensor<?x{n}x{t}>
}}

func.func @per_expert(%x: tensor<?x{k}x{t}>, %w: tensor<{experts}x{n}x{k}x{t}>,
                      %off: tensor<{experts + 1}xi32>) -> tensor<?x{n}x{t}>
    attributes {{llvm.emit_c_interface}} {{
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %ce = arith.constant {experts} : index
  %zero = arith.constant 0 : i32
  %rows = tensor.dim %x, %c0 : tensor<?x{k}x{t}>
  %init = tensor.empty(%rows) : tensor<?x{n}x{t}>
  %y = scf.for %e = %c0 to %ce step %c1 iter_args(%acc = %init) -> tensor<?x{n}x{t}> {{
    %e1 = arith.addi %e, %c1 : index
    %s32 = tensor.extract %off[%e] : tensor<{experts + 1}xi32>
    %t32 = tensor.extract %off[%e1] : tensor<{experts + 1}xi32>
    %s = arith.index_cast %s32 : i32 to index
    %t = arith.index_cast %t32 : i32 to index
    %len = arith.subi %t, %s : index
    %len32 = arith.subi %t32, %s32 : i32
    %xe = tensor.extract_slice %x[%s, 0] [%len, {k}] [1, 1]
        : tensor<?x{k}x{t}> to tensor<?x{k}x{t}>
    %we = tensor.extract_slice %w[%e, 0, 0] [1, {n}, {k}] [1, 1, 1]
        : tensor<{experts}x{n}x{k}x{t}> to tensor<1x{n}x{k}x{t}>
    %oe = tensor.from_elements %zero, %len32 : tensor<2xi32>
    %ye = moe.grouped_matmul %xe, %we offsets(%oe)
        : (tensor<?x{k}x{t}>, tensor<1x{n}x{k}x{t}>, tensor<2xi32>) -> tensor<?x{n}x{t}>
    %next = tensor.insert_slice %ye into %acc[%s, 0] [%len, {n}] [1, 1]
        : tensor<?x{n}x{t}> into tensor<?x{n}x{t}>
    scf.yield %next : tensor<?x{n}x{t}>
  }}
  return %y : tensor<?x{n}x{t}>
}}
"""


def tool(name):
    """LLVM 22's `name`: Debian's name-22 on PATH, else the LLVM bin dir."""
    return shutil.which(f"{name}-22") or os.path.join(LLVM, "bin", name)


def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, **kwargs)


def compile_library(source, workdir, moec_opt, pipeline_options, cflags):
    mlir = os.path.join(workdir, "bench.mlir")
    with open(mlir, "w") as f:
        f.write(source)
    pipeline = "--moe-to-cpu-pipeline"
    if pipeline_options:
        pipeline += "=" + pipeline_options
    llvm_mlir = os.path.join(workdir, "bench.llvm.mlir")
    run([moec_opt, mlir, pipeline, "-o", llvm_mlir])
    ll = os.path.join(workdir, "bench.ll")
    run([tool("mlir-translate"), "--mlir-to-llvmir", llvm_mlir, "-o", ll])
    lib = os.path.join(workdir, "libbench.so")
    run([tool("clang"), *cflags.split(), "-Wno-override-module", "-shared", "-fPIC", ll, "-o", lib,
         f"-L{LLVM}/lib", f"-Wl,-rpath,{LLVM}/lib", "-lomp",
         "-lmlir_c_runner_utils"])
    return ctypes.CDLL(lib)


def memref_type(rank):
    fields = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
              ("offset", ctypes.c_int64)]
    if rank:
        fields += [("sizes", ctypes.c_int64 * rank),
                   ("strides", ctypes.c_int64 * rank)]
    return type(f"MemRef{rank}D", (ctypes.Structure,), {"_fields_": fields})


def descriptor(array):
    desc = memref_type(array.ndim)()
    desc.allocated = desc.aligned = array.ctypes.data
    desc.offset = 0
    for i, (size, stride) in enumerate(zip(array.shape, array.strides)):
        desc.sizes[i] = size
        desc.strides[i] = stride // array.itemsize
    return desc


def to_bf16(a):
    """float32 -> bf16 bits (uint16), rounded to nearest even."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return bits.astype(np.uint16)


def from_bf16(a):
    return (a.astype(np.uint32) << 16).view(np.float32)


LIBC = ctypes.CDLL(None)
LIBC.free.argtypes = [ctypes.c_void_p]


def caller(lib, name, bf16=False):
    """A Python callable for func @name: arrays in, a NumPy copy (or None)
    of the [R, N] result (as float32) out; the result buffer is freed."""
    fn = getattr(lib, "_mlir_ciface_" + name)
    ctype, dtype = ((ctypes.c_uint16, np.uint16) if bf16
                    else (ctypes.c_float, np.float32))
    result_type = memref_type(2)

    def call(*arrays, keep=False):
        descs = [descriptor(a) for a in arrays]
        out = result_type()
        fn(ctypes.byref(out), *[ctypes.byref(d) for d in descs])
        value = None
        if keep:
            rows, cols = out.sizes[0], out.sizes[1]
            ptr = ctypes.cast(out.aligned, ctypes.POINTER(ctype))
            value = np.ctypeslib.as_array(ptr, shape=(rows, cols)).copy() \
                if rows else np.zeros((0, cols), dtype)
            if bf16:
                value = from_bf16(value)
        LIBC.free(out.allocated)
        return value

    return call


def time_all(fns, warmup, runs, clock=time.perf_counter):
    """Median seconds per call of each callable in `fns` (a dict). The calls
    go round-robin, one of each per round, so that a change in background
    load hits every variant alike and their ratios stay meaningful."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = clock()
            fn()
            samples[name].append(clock() - start)
    return {name: statistics.median(t) for name, t in samples.items()}


def routing(kind, rows, experts):
    if kind == "balanced":
        counts = [rows // experts] * experts
        counts[-1] += rows - sum(counts)
    else:  # 90% to expert 0, the rest over experts 1-4, experts 5.. empty
        big = rows * 9 // 10
        rest = rows - big
        busy = min(4, experts - 1)
        counts = [big] + [rest // busy] * busy + [0] * (experts - 1 - busy)
        counts[1] += rest - sum(counts[1:])
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--k", type=int, default=1024)
    p.add_argument("--n", type=int, default=2816)
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--moec-opt",
                   default=os.path.join(ROOT, "build", "bin", "moec-opt"))
    p.add_argument("--pipeline-options", default="")
    p.add_argument("--cflags", default="-O3 -march=native")
    p.add_argument("--bf16", action="store_true",
                   help="also time bf16 operands, widened to f32 and through "
                   "the AVX-512 BF16 dot product (bf16-dot; needs "
                   "avx512_bf16)")
    p.add_argument("--cpu-time", action="store_true",
                   help="time with the process's CPU time instead of the "
                   "wall clock: with OMP_NUM_THREADS=1, it is less "
                   "sensitive to other processes on a busy machine")
    p.add_argument("--smoke", action="store_true",
                   help="tiny shapes, check the results, no timing")
    args = p.parse_args()
    if args.smoke:
        args.rows, args.k, args.n, args.experts = 67, 40, 24, 8

    r, k, n, e = args.rows, args.k, args.n, args.experts
    rng = np.random.default_rng(0)
    x = rng.standard_normal((r, k), dtype=np.float32)
    w = rng.standard_normal((e, n, k), dtype=np.float32) / np.sqrt(k)
    w = w.astype(np.float32)
    up = (rng.standard_normal((e, n, k), dtype=np.float32) / np.sqrt(k))
    up = up.astype(np.float32)
    w_dense = np.ascontiguousarray(w[:1])
    off_dense = np.array([0, r], np.int32)

    with tempfile.TemporaryDirectory() as workdir:
        lib = compile_library(mlir_source(k, n, e), workdir, args.moec_opt,
                              args.pipeline_options, args.cflags)
        grouped = caller(lib, "grouped")
        swiglu = caller(lib, "grouped_swiglu")
        per_expert = caller(lib, "per_expert")
        dense = caller(lib, "dense")

        flops = 2.0 * r * k * n
        print(f"R={r} K={k} N={n} E={e}, f32, {flops / 1e9:.2f} GFLOP per call; "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}, "
              f"cflags '{args.cflags}', pipeline options "
              f"'{args.pipeline_options or '(defaults)'}'")

        # Correctness first, against NumPy.
        def reference(off, weight=w):
            out = np.zeros((r, n), np.float64)
            for g in range(e):
                rows = slice(off[g], off[g + 1])
                out[rows] = (x[rows].astype(np.float64)
                             @ weight[g].T.astype(np.float64))
            return out

        offs = {kind: routing(kind, r, e) for kind in ("balanced", "skewed")}
        for kind, off in offs.items():
            ref = reference(off)
            for name, fn in (("grouped", grouped), ("per-expert", per_expert)):
                got = fn(x, w, off, keep=True)
                err = np.max(np.abs(got - ref) / (1 + np.abs(ref)))
                if not err < 1e-4:
                    sys.exit(f"{name} ({kind}): max relative error {err:.3g}")
            gate, upr = ref, reference(off, up)
            got = swiglu(x, w, up, off, keep=True)
            ref = gate / (1 + np.exp(-gate)) * upr
            err = np.max(np.abs(got - ref) / (1 + np.abs(ref)))
            if not err < 1e-4:
                sys.exit(f"swiglu ({kind}): max relative error {err:.3g}")
        got = dense(x, w_dense, off_dense, keep=True)
        ref = x.astype(np.float64) @ w[0].T.astype(np.float64)
        err = np.max(np.abs(got - ref) / (1 + np.abs(ref)))
        if not err < 1e-4:
            sys.exit(f"dense: max relative error {err:.3g}")
        print("results match NumPy (float64) to 1e-4")

        bf16 = {}
        if args.bf16:
            x16, w16, up16 = to_bf16(x), to_bf16(w), to_bf16(up)
            xr, wr = from_bf16(x16).astype(np.float64), from_bf16(w16)
            for label, extra in (("widened", ""), ("dot", "bf16-dot=true")):
                options = " ".join(o for o in (args.pipeline_options, extra) if o)
                sub = os.path.join(workdir, label)
                os.mkdir(sub)
                lib16 = compile_library(mlir_source(k, n, e, "bf16"), sub,
                                        args.moec_opt, options, args.cflags)
                fns = {name: caller(lib16, name, bf16=True)
                       for name in ("grouped", "dense", "grouped_swiglu")}
                off = offs["skewed"]
                got = fns["grouped"](x16, w16, off, keep=True)
                ref = np.zeros((r, n))
                for g in range(e):
                    rows = slice(off[g], off[g + 1])
                    ref[rows] = xr[rows] @ wr[g].T.astype(np.float64)
                err = np.max(np.abs(got - ref) / (1 + np.abs(ref)))
                if not err < 2e-2:
                    sys.exit(f"bf16 {label}: max relative error {err:.3g}")
                bf16[label] = fns
            print("bf16 results match NumPy (float64) to 2e-2")
        if args.smoke:
            return

        w_t = [np.ascontiguousarray(w[g].T) for g in range(e)]
        def blas_loop(off):
            for g in range(e):
                if off[g + 1] > off[g]:
                    np.matmul(x[off[g]:off[g + 1]], w_t[g])

        fns = {"dense": lambda: dense(x, w_dense, off_dense),
               "blas": lambda: np.matmul(x, w_t[0])}
        for kind, off in offs.items():
            fns.update({
                (kind, "grouped"): lambda off=off: grouped(x, w, off),
                (kind, "loop"): lambda off=off: per_expert(x, w, off),
                (kind, "swiglu"): lambda off=off: swiglu(x, w, up, off),
                (kind, "blas loop"): lambda off=off: blas_loop(off)})
        if bf16:
            w16_dense = np.ascontiguousarray(w16[:1])
            for label, lib_fns in bf16.items():
                fns[label, "dense"] = (
                    lambda f=lib_fns["dense"]: f(x16, w16_dense, off_dense))
                for kind, off in offs.items():
                    fns[label, kind] = (
                        lambda f=lib_fns["grouped"], off=off: f(x16, w16, off))
                    fns[label, kind, "swiglu"] = (
                        lambda f=lib_fns["grouped_swiglu"], off=off:
                        f(x16, w16, up16, off))
        t = time_all(fns, args.warmup, args.runs,
                     time.process_time if args.cpu_time else time.perf_counter)
        t_dense, t_blas = t["dense"], t["blas"]
        rows_out = [(kind, np.diff(off).tolist(), t[kind, "grouped"],
                     t[kind, "loop"], t[kind, "blas loop"], t[kind, "swiglu"])
                    for kind, off in offs.items()]

        gf = lambda t: flops / t / 1e9
        print(f"\ndense GEMM (moec, one group)   {t_dense * 1e3:8.1f} ms  "
              f"{gf(t_dense):6.1f} GFLOP/s")
        print(f"dense GEMM (NumPy/OpenBLAS)    {t_blas * 1e3:8.1f} ms  "
              f"{gf(t_blas):6.1f} GFLOP/s")
        print()
        print("| routing | rows per expert | grouped ms | per-expert loop ms | "
              "dense ms | grouped / dense | per-expert / dense | "
              "grouped GFLOP/s | OpenBLAS per-expert ms | SwiGLU grouped ms | "
              "SwiGLU / (2 × dense) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for kind, counts, t_g, t_l, t_bl, t_s in rows_out:
            print(f"| {kind} | {counts} | {t_g * 1e3:.1f} | {t_l * 1e3:.1f} | "
                  f"{t_dense * 1e3:.1f} | {t_g / t_dense:.2f} | "
                  f"{t_l / t_dense:.2f} | {gf(t_g):.1f} | {t_bl * 1e3:.1f} | "
                  f"{t_s * 1e3:.1f} | {t_s / (2 * t_dense):.2f} |")
        if bf16:
            print("\nbf16 rows and weights, f32 accumulation, bf16 results "
                  "(ratios against the f32 dense GEMM above)")
            print("| bf16 path | routing | grouped ms | GFLOP/s | "
                  "grouped / f32 dense | bf16 dense ms | SwiGLU ms | "
                  "SwiGLU / (2 × f32 dense) |")
            print("|---|---|---|---|---|---|---|---|")
            for label in bf16:
                for kind in offs:
                    t_g, t_s = t[label, kind], t[label, kind, "swiglu"]
                    print(f"| {label} | {kind} | {t_g * 1e3:.1f} | "
                          f"{gf(t_g):.1f} | {t_g / t_dense:.2f} | "
                          f"{t[label, 'dense'] * 1e3:.1f} | {t_s * 1e3:.1f} | "
                          f"{t_s / (2 * t_dense):.2f} |")


if __name__ == "__main__":
    main()
