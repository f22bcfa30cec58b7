#!/usr/bin/python3
"""Compile time, peak RSS and output size of `moec compile` against depth.

    bench/compile_time.py [--cases mixtral,qwen,all-features]
                          [--layers 1,2,8,32] [--repeat 3] [--warmup 1]
                          [--emit exe] [--workdir DIR] [--moec build/bin/moec]

For each case, writes a config.json, runs `moec compile CONFIG -o OUT
--emit EMIT -v` R times (after W untimed warm-up compiles of the first
case, so that it does not pay for a cold page cache), each in a fresh process,
and records, for the run of median wall time:

* wall time, and the time of each stage as `-v` prints it;
* the peak RSS of the compiler (the child's ru_maxrss, from wait4);
* the size of what it wrote (the executable, or the object with --emit obj).

Cases:
* mixtral: the published Mixtral-8x7B widths (D = 4096, F = 14336, 32/8
  heads, E = 8, top-2, V = 32000) at each L of --layers;
* qwen: Qwen1.5-MoE-A2.7B (24 layers, D = 2048, 60 experts of 1408, top-4,
  a shared expert of 5632, 16 heads, V = 151936);
* all-features: examples/all-features.json (3 layers, every moec feature,
  three distinct expert counts).

The last line of each case group is the ratio of the deepest to the
shallowest median compile time. Nothing is run on weights: compile time does not
depend on them. Results go to docs/performance.md with the command and the
machine.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mixtral(layers):
    return {
        "architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
        "hidden_size": 4096, "intermediate_size": 14336,
        "num_hidden_layers": layers, "num_attention_heads": 32,
        "num_key_value_heads": 8, "vocab_size": 32000,
        "num_local_experts": 8, "num_experts_per_tok": 2,
        "rms_norm_eps": 1e-5, "rope_theta": 1e6, "sliding_window": None,
        "tie_word_embeddings": False,
    }


def qwen(layers):
    return {
        "architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe",
        "hidden_size": 2048, "intermediate_size": 5632,
        "moe_intermediate_size": 1408,
        "shared_expert_intermediate_size": 5632,
        "num_hidden_layers": layers, "num_attention_heads": 16,
        "num_key_value_heads": 16, "vocab_size": 151936, "num_experts": 60,
        "num_experts_per_tok": 4, "norm_topk_prob": False,
        "decoder_sparse_step": 1, "mlp_only_layers": [],
        "rms_norm_eps": 1e-6, "rope_theta": 1e6, "use_sliding_window": False,
        "tie_word_embeddings": False,
    }


def all_features(_layers):
    with open(os.path.join(ROOT, "examples", "all-features.json")) as f:
        return json.load(f)


CASES = {
    # name: (config builder, the layer counts it runs at by default)
    "mixtral": (mixtral, None),
    "qwen": (qwen, [24]),
    "all-features": (all_features, [3]),
}


def run_compile(moec, config_path, out, emit):
    """(wall s, peak RSS MB, {stage: s}, output bytes) of one compile."""
    cmd = [moec, "compile", config_path, "-o", out, "--emit", emit, "-v"]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("compile failed: %s\n%s" % (" ".join(cmd), stderr))
    stages = {}
    for line in stderr.splitlines():
        parts = line.split()
        # "moec: <stage> <seconds> s"
        if len(parts) == 4 and parts[0] == "moec:" and parts[3] == "s":
            stages[parts[1]] = float(parts[2])
    return wall, usage.ru_maxrss / 1024, stages, os.path.getsize(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="mixtral,qwen,all-features")
    p.add_argument("--layers", default="1,2,8,32",
                   help="layer counts of the mixtral case")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--emit", default="exe", choices=["exe", "obj", "lib"])
    p.add_argument("--moec", default=os.path.join(
        os.environ.get("MOEC_BUILD_DIR", os.path.join(ROOT, "build")),
        "bin", "moec"))
    p.add_argument("--workdir")
    args = p.parse_args()

    work = args.workdir or tempfile.mkdtemp(prefix="moec-compile-time-")
    os.makedirs(work, exist_ok=True)
    stage_names = ["import", "lower", "translate", "optimize", "codegen",
                   "link"]
    warmups = args.warmup
    print("| case | L | wall s | %s | peak RSS MB | %s MB |" %
          (" | ".join(stage_names), args.emit))
    print("|---|---|---|%s---|---|" % ("---|" * len(stage_names)))
    for case in args.cases.split(","):
        build, default_layers = CASES[case]
        layer_counts = default_layers or [int(x) for x in
                                          args.layers.split(",")]
        walls = []
        for layers in layer_counts:
            cfg = build(layers)
            path = os.path.join(work, "%s-%d.json" % (case, layers))
            with open(path, "w") as f:
                json.dump(cfg, f, indent=1)
            out = os.path.join(work, "%s-%d.%s" % (case, layers, args.emit))
            for _ in range(warmups):
                run_compile(args.moec, path, out, args.emit)
            warmups = 0
            runs = sorted((run_compile(args.moec, path, out, args.emit)
                           for _ in range(args.repeat)), key=lambda r: r[0])
            wall, rss, stages, size = runs[len(runs) // 2]
            walls.append(wall)
            print("| %s | %d | %.2f | %s | %.0f | %.1f |" % (
                case, cfg["num_hidden_layers"], wall,
                " | ".join("%.2f" % stages.get(s, 0) for s in stage_names),
                rss, size / 1e6), flush=True)
            os.remove(out)
        if len(walls) > 1:
            print("| %s | %d vs %d | %.2fx | | | | | | | | |" % (
                case, layer_counts[-1], layer_counts[0],
                walls[-1] / walls[0]))
    if not args.workdir:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
