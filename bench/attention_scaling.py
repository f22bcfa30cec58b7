#!/usr/bin/env python3
"""Times compiled attention against the sequence length T.

For each T, emits a module whose @main fills query/key/value [1, T, H, Dh]
with a deterministic pattern, runs one attention op (GMHA by default) under
rtclock() and prints the time; compiles it with `moec-opt
-moe-to-cpu-pipeline`, runs it with mlir-runner (OpenMP on) and reports the
kernel time, the process's peak RSS (os.wait4; it includes the JIT, a
constant) and the bytes of the buffers the lowering allocates (output plus,
for GMHA, the group means), which is what grows with T.

  bench/attention_scaling.py [--kind grouped|sliding|full] [--tokens 1024,2048]
                             [--window 64] [--group-size 128] [--heads 8]
                             [--kv-heads 2] [--head-dim 64] [--repeat 3]
                             [--build build]
                             [--pipeline-options "cpu=znver3 heads-per-step=1"]
                             [--generic] [--mattr=-avx512f]

GMHA's work is O(T * (W + T / G)): at these sizes the T / G summaries are
comparable to the window, so the time per token grows slowly with T while
full attention's grows linearly (time quadratic in T). The time per (key,
head) pair, keys counted as the lowering visits them, stays flat when the
work is what the key counts say.
"""

import argparse
import os
import subprocess
import sys
import tempfile

LLVM = "/usr/lib/llvm-22"


def module(kind, T, H, KVH, Dh, window, group):
    tq = "tensor<1x%dx%dx%dxf32>" % (T, H, Dh)
    tkv = "tensor<1x%dx%dx%dxf32>" % (T, KVH, Dh)
    if kind == "grouped":
        op = "moe.grouped_attention %%q, %%k, %%v group_size(%d) window(%d)" % (
            group, window)
    elif kind == "sliding":
        op = "moe.attention %%q, %%k, %%v window(%d)" % window
    else:
        op = "moe.attention %q, %k, %v"

    def fill(name, ty, salt):
        # ((31 t + 17 h + 7 d + salt) mod 97) / 97 - 0.5: cheap, varied.
        return """
  %%%s_init = tensor.empty() : %s
  %%%s = linalg.generic {
      indexing_maps = [affine_map<(b, t, h, d) -> (b, t, h, d)>],
      iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      outs(%%%s_init : %s) {
  ^bb0(%%o: f32):
    %%t = linalg.index 1 : index
    %%h = linalg.index 2 : index
    %%d = linalg.index 3 : index
    %%c31 = arith.constant 31 : index
    %%c17 = arith.constant 17 : index
    %%c7 = arith.constant 7 : index
    %%c97 = arith.constant 97 : index
    %%salt = arith.constant %d : index
    %%a = arith.muli %%t, %%c31 : index
    %%b = arith.muli %%h, %%c17 : index
    %%c = arith.muli %%d, %%c7 : index
    %%s0 = arith.addi %%a, %%b : index
    %%s1 = arith.addi %%s0, %%c : index
    %%s2 = arith.addi %%s1, %%salt : index
    %%r = arith.remui %%s2, %%c97 : index
    %%ri = arith.index_cast %%r : index to i64
    %%rf = arith.sitofp %%ri : i64 to f32
    %%inv = arith.constant 0.0103092785 : f32
    %%half = arith.constant 0.5 : f32
    %%x = arith.mulf %%rf, %%inv : f32
    %%y = arith.subf %%x, %%half : f32
    linalg.yield %%y : f32
  } -> %s""" % (name, ty, name, name, ty, salt, ty)

    return """
func.func private @rtclock() -> f64
func.func private @printF64(f64)
func.func private @printNewline()

func.func @attend(%%q: %s, %%k: %s, %%v: %s) -> %s {
  %%o = %s : (%s, %s, %s) -> %s
  return %%o : %s
}

func.func @main() {%s%s%s
  %%t0 = call @rtclock() : () -> f64
  %%o = call @attend(%%q, %%k, %%v) : (%s, %s, %s) -> %s
  %%t1 = call @rtclock() : () -> f64
  %%dt = arith.subf %%t1, %%t0 : f64
  call @printF64(%%dt) : (f64) -> ()
  call @printNewline() : () -> ()
  %%c0 = arith.constant 0 : index
  %%last = arith.constant %d : index
  %%x = tensor.extract %%o[%%c0, %%last, %%c0, %%c0] : %s
  %%xd = arith.extf %%x : f32 to f64
  call @printF64(%%xd) : (f64) -> ()
  call @printNewline() : () -> ()
  return
}
""" % (tq, tkv, tkv, tq, op, tq, tkv, tkv, tq, tq,
       fill("q", tq, 0), fill("k", tkv, 11), fill("v", tkv, 23),
       tq, tkv, tkv, tq, T - 1, tq)


def run(args, kind, T):
    text = module(kind, T, args.heads, args.kv_heads, args.head_dim,
                  args.window, args.group_size)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "attention.mlir")
        llvm = os.path.join(tmp, "attention.ll.mlir")
        with open(src, "w") as f:
            f.write(text)
        options = "=" + args.pipeline_options if args.pipeline_options else ""
        passes = ["-moe-to-cpu-pipeline" + options]
        if args.generic:
            # The per-query lowering of convert-moe-to-linalg, following the
            # heads per iteration that moe-select-cpu-kernels chooses.
            passes = ["-moe-select-cpu-kernels" + options,
                      "-convert-moe-to-linalg"] + passes
        subprocess.run([os.path.join(args.build, "bin", "moec-opt"), src]
                       + passes + ["-o", llvm], check=True)
        libs = ",".join(os.path.join(LLVM, "lib", "lib%s.so" % name)
                        for name in ("mlir_runner_utils", "mlir_c_runner_utils",
                                     "omp"))
        log = os.path.join(tmp, "out.txt")
        with open(log, "w") as sink:
            # Waited for with wait4 for this child's own peak RSS.
            proc = subprocess.Popen(
                [os.path.join(LLVM, "bin", "mlir-runner"), llvm, "-e", "main",
                 "-entry-point-result=void", "-O3", "-shared-libs=" + libs]
                + (["--mattr=" + args.mattr] if args.mattr else []),
                stdout=sink, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
        with open(log) as f:
            out = f.read()
        if os.waitstatus_to_exitcode(status):
            sys.exit("mlir-runner failed for T = %d:\n%s" % (T, out))
    seconds, probe = (float(x) for x in out.split())
    # ru_maxrss is in KiB on Linux.
    return seconds, probe, usage.ru_maxrss / 1024


def mean_keys(args, kind, T):
    """Keys (local plus summaries) per query, averaged over the queries."""
    W, G = args.window, args.group_size
    if kind == "full":
        total = T * (T + 1) // 2
    elif kind == "sliding":
        total = sum(min(W, i + 1) for i in range(T))
    else:
        total = sum(min(W, i % G + 1) + i // G for i in range(T))
    return total / T


def buffer_bytes(args, kind, T):
    out = T * args.heads * args.head_dim * 4
    means = 2 * (T // args.group_size) * args.kv_heads * args.head_dim * 4
    return out + (means if kind == "grouped" else 0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", default="grouped",
                   choices=["grouped", "sliding", "full"])
    p.add_argument("--tokens", default="1024,2048,4096,8192,16384")
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3,
                   help="runs per T; the fastest is reported")
    p.add_argument("--pipeline-options", default="",
                   help="moe-to-cpu-pipeline options, e.g. 'cpu=znver3 "
                   "heads-per-step=1'")
    p.add_argument("--generic", action="store_true",
                   help="time the generic lowering (convert-moe-to-linalg: "
                   "one query per iteration, the GPU's) instead of "
                   "moe-tile-attention; --pipeline-options must then be "
                   "moe-select-cpu-kernels options")
    p.add_argument("--mattr", default="",
                   help="CPU features of mlir-runner's JIT, e.g. -avx512f to "
                   "run AVX2 code on an AVX-512 machine")
    p.add_argument("--build", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "build"))
    args = p.parse_args()

    print("# %s attention, B = 1, H = %d, KVH = %d, Dh = %d%s, %s threads" % (
        args.kind, args.heads, args.kv_heads, args.head_dim,
        {"grouped": ", W = %d, G = %d" % (args.window, args.group_size),
         "sliding": ", W = %d" % args.window, "full": ""}[args.kind],
        os.environ.get("OMP_NUM_THREADS", "all")))
    print("%8s %10s %12s %11s %13s %14s %13s %11s" % (
        "T", "time (s)", "us / token", "keys/query", "ns/(key*head)",
        "peak RSS (MB)", "buffers (MB)", "o[T-1,0,0]"))
    for T in (int(t) for t in args.tokens.split(",")):
        runs = [run(args, args.kind, T) for _ in range(args.repeat)]
        seconds, probe, _ = min(runs)
        rss = max(r[2] for r in runs)
        keys = mean_keys(args, args.kind, T)
        print("%8d %10.3f %12.1f %11.1f %13.2f %14.1f %13.1f %11.5f" % (
            T, seconds, seconds / T * 1e6, keys,
            seconds / (T * keys * args.heads) * 1e9, rss,
            buffer_bytes(args, args.kind, T) / 2**20, probe))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
