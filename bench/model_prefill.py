#!/usr/bin/python3
"""Prefill throughput and peak memory of a compiled model vs PyTorch eager.

    bench/model_prefill.py [--layers L] [--tokens 512,4096] [--runs N]
                           [--repeat R] [--threads 2] [--workdir DIR]
                           [--moec-flags "--cpu znver3"] [--no-llama-cpp]
                           [--last]
                           [--dtype f32|bf16]

Builds a Mixtral-shaped config (the design brief's shape: D = 1024,
F = 3584, E = 8, top-2, 16 heads, 8 kv-heads, V = 32000; L layers), writes
random weights with examples/make_weights.py, compiles it with
`moec compile`, and for each T times a prefill of one sequence of T tokens:

* moec: the compiled executable's `--bench N` (tokens/s over N forward
  passes after one warm-up pass), under `/usr/bin/time -v` for the peak RSS;
* PyTorch eager: the same model written the way Hugging Face's eager
  Mixtral computes it (per-expert index_select / index_add_ loop, SDPA-free
  causal attention with an explicit mask, f32), with the same weights, the
  same number of threads (torch.set_num_threads), timed over N passes after
  a warm-up, in its own process for its own peak RSS.

* llama.cpp (when bench/llama_cpp.py finds a build; see its docstring):
  the same weights converted to an f32 GGUF, one batch of T tokens with
  logits at every position, llama.cpp's default attention (flash attention,
  which rounds K and V to f16), the same number of threads.

With --last every program computes the logits of the last position only
(the prefill of generation; llama-bench -p's measure); the logits check
before timing still compares every position.

They are timed R times, alternating (moec, PyTorch, llama.cpp, moec, ...),
each time in a fresh process, so that load on a shared machine hits all
alike; the table gives the median tokens/s of each, the ratio of the medians
with the range of the per-round ratios, and the largest peak RSS.
`--moec-flags` are added to `moec compile` (e.g. `--cpu znver3` to time
the AVX2 code on an AVX-512 machine). `--dtype bf16` writes bf16 weights
and compiles moec for them; PyTorch and llama.cpp read the same values
widened to f32.

All load the weights from the same file. Before timing, the logits of
moec and llama.cpp are compared with PyTorch's on a short prefix (max
|diff| / max |logit|, printed), so the programs are known to compute the
same function.

Prints one table; docs/performance.md records the results with the command.
Needs Debian's /usr/bin/python3 (numpy, torch) and a built moec
($MOEC_BUILD_DIR or ./build).
"""

import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(layers, attention):
    extension = {}
    if attention == "grouped":
        extension = {"moec": {"attention": {"kind": "grouped", "window": 64,
                                            "group_size": 128}}}
    return dict(extension, **{
        "model_type": "mixtral", "hidden_size": 1024,
        "intermediate_size": 3584, "num_hidden_layers": layers,
        "num_attention_heads": 16, "num_key_value_heads": 8,
        "vocab_size": 32000, "num_local_experts": 8,
        "num_experts_per_tok": 2, "rms_norm_eps": 1e-5,
        "rope_theta": 1e6, "sliding_window": None,
    })


# ----------------------------------------------------------------------------
# PyTorch eager (run in a child process: `model_prefill.py --torch ...`)
# ----------------------------------------------------------------------------


def load_safetensors(path):
    """name -> float32 numpy array, from the file's own header."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = np.asarray(data[begin:end])
        if info["dtype"] == "F32":
            a = raw.view(np.float32)
        else:  # BF16
            a = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        out[name] = a.reshape(info["shape"])
    return out


def eager_moe_block(w, p, h, E, K, used=None):
    """Hugging Face's MixtralSparseMoeBlock, eager, on rows `h` with the
    weights of layer prefix `p`; `used[0]` counts the experts that got rows."""
    import torch
    import torch.nn.functional as F
    probs = F.softmax(h @ w[p + "block_sparse_moe.gate.weight"].T, dim=-1)
    top, chosen = torch.topk(probs, K, dim=-1)
    top = top / top.sum(-1, keepdim=True)
    out = torch.zeros_like(h)
    mask = F.one_hot(chosen, E).permute(2, 1, 0)
    for e in range(E):
        slot, tok = torch.where(mask[e])
        if tok.numel() == 0:
            continue
        if used is not None:
            used[0] += 1
        b = p + "block_sparse_moe.experts.%d." % e
        xe = h[tok]
        ye = (F.silu(xe @ w[b + "w1.weight"].T) * (xe @ w[b + "w3.weight"].T)) @ w[b + "w2.weight"].T
        out.index_add_(0, tok, ye * top[tok, slot, None])
    return out


def torch_main(args):
    import torch

    torch.set_num_threads(args.threads)
    cfg = json.load(open(args.config))
    w = {k: torch.from_numpy(np.array(v)) for k, v in
         load_safetensors(args.weights).items()}
    D, H, KVH = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    Dh, E, K = D // H, cfg["num_local_experts"], cfg["num_experts_per_tok"]
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]

    def rms(x, weight):
        var = x.pow(2).mean(-1, keepdim=True)
        return weight * (x * torch.rsqrt(var + eps))

    def rope(x, T):  # x: [T, heads, Dh]
        inv = 1.0 / (theta ** (torch.arange(0, Dh, 2, dtype=torch.int64).float() / Dh))
        freqs = torch.outer(torch.arange(T, dtype=torch.float32), inv)
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
        x1, x2 = x[..., :Dh // 2], x[..., Dh // 2:]
        return x * cos + torch.cat((-x2, x1), -1) * sin

    def forward(tokens):
        T = tokens.shape[0]
        x = w["model.embed_tokens.weight"][tokens]
        mask = torch.full((T, T), float("-inf")).triu(1)
        for l in range(cfg["num_hidden_layers"]):
            p = "model.layers.%d." % l
            h = rms(x, w[p + "input_layernorm.weight"])
            q = (h @ w[p + "self_attn.q_proj.weight"].T).view(T, H, Dh)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).view(T, KVH, Dh)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).view(T, KVH, Dh)
            q, k = rope(q, T), rope(k, T)
            k = k.repeat_interleave(H // KVH, dim=1)
            v = v.repeat_interleave(H // KVH, dim=1)
            s = torch.einsum("thd,shd->hts", q, k) / Dh ** 0.5 + mask
            o = torch.einsum("hts,shd->thd", s.softmax(-1), v).reshape(T, D)
            x = x + o @ w[p + "self_attn.o_proj.weight"].T
            h = rms(x, w[p + "post_attention_layernorm.weight"])
            x = x + eager_moe_block(w, p, h, E, K)
        if args.last:
            x = x[-1:]
        x = rms(x, w["model.norm.weight"])
        return x @ w["lm_head.weight"].T

    tokens = torch.from_numpy(np.load(args.tokens).astype(np.int64).ravel())
    with torch.inference_mode():
        if args.logits:
            np.save(args.logits, forward(tokens[:args.check_tokens]).numpy())
            return
        forward(tokens)  # warm-up
        start = time.perf_counter()
        for _ in range(args.runs):
            forward(tokens)
        seconds = time.perf_counter() - start
    print("torch %.1f tokens/s" % (tokens.numel() * args.runs / seconds))


# ----------------------------------------------------------------------------
# The driver
# ----------------------------------------------------------------------------


def peak_rss_mb(stderr):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    return int(m.group(1)) / 1024 if m else float("nan")


def run(cmd, env):
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True,
                       text=True, env=env)
    if p.returncode:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), p.stdout, p.stderr))
    return p.stdout, peak_rss_mb(p.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--tokens", default="512,4096")
    ap.add_argument("--runs", type=int, default=3,
                    help="forward passes per process (after one warm-up)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="alternating rounds of (moec, PyTorch) processes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir")
    ap.add_argument("--moec-flags", default="",
                    help="extra moec compile flags, e.g. '--cpu znver3'")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32",
                    help="weight type of the file and of moec's model")
    ap.add_argument("--last", action="store_true",
                    help="logits of the last position only, as generation's "
                    "prefill and llama-bench -p compute them (moec "
                    "--logits-positions last; PyTorch's LM head on the last "
                    "row; llama.cpp's batch asks for the last logits only)")
    ap.add_argument("--no-llama-cpp", action="store_true",
                    help="leave out llama.cpp even when it is built")
    ap.add_argument("--attention", choices=["full", "grouped"], default="full",
                    help="grouped: GMHA (docs/semantics.md §7, W = 64, G = 128), timed "
                    "without the PyTorch baseline (its eager model is full "
                    "attention), to show moec's scaling in T")
    # Internal: the PyTorch child process.
    ap.add_argument("--torch", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    ap.add_argument("--logits", help=argparse.SUPPRESS)
    ap.add_argument("--check-tokens", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument("--tokens-file", dest="tokens_file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch:
        args.tokens = args.tokens_file
        return torch_main(args)

    build = os.environ.get("MOEC_BUILD_DIR", os.path.join(ROOT, "build"))
    work = args.workdir or tempfile.mkdtemp(prefix="moec-prefill-")
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads))
    cfg_path = os.path.join(work, "config.json")
    json.dump(config(args.layers, args.attention), open(cfg_path, "w"), indent=1)
    with_torch = args.attention == "full"
    weights = os.path.join(work, "w.safetensors")
    subprocess.run([sys.executable, os.path.join(ROOT, "examples/make_weights.py"),
                    cfg_path, weights, "--seed", "1", "--dtype", args.dtype],
                   check=True, stdout=subprocess.DEVNULL)
    model = os.path.join(work, "model")
    t0 = time.perf_counter()
    subprocess.run([os.path.join(build, "bin/moec"), "compile", cfg_path, "-o",
                    model, "--dtype", args.dtype] + args.moec_flags.split(),
                   check=True)
    compile_s = time.perf_counter() - t0
    weight_mb = os.path.getsize(weights) / 2**20
    print("config: %d layers, D=1024, F=3584, E=8 top-2, H=16, KVH=8, V=32000, "
          "%s attention; weights %.0f MB (%s); moec compile %s%.1f s; %d threads"
          % (args.layers, args.attention, weight_mb, args.dtype,
             args.moec_flags + " " if args.moec_flags else "", compile_s,
             args.threads))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import llama_cpp
    gguf = None
    if with_torch and not args.no_llama_cpp and llama_cpp.available():
        gguf = llama_cpp.convert(work, os.path.join(work, "model-f32.gguf"),
                                 weights)

    me = os.path.abspath(__file__)
    rows = []
    for T in [int(t) for t in args.tokens.split(",")]:
        tokens = os.path.join(work, "tokens-%d.npy" % T)
        np.save(tokens, np.random.default_rng(T).integers(0, 32000, T).astype(np.int32))
        def moec_round():
            out, rss = run([model, "--weights", weights, "--tokens", tokens,
                            "--bench", str(args.runs)] +
                           (["--logits-positions", "last"] if args.last else []), env)
            return float(re.search(r"([\d.]+) tokens/s", out).group(1)), rss

        # Largest activation: the [T, V] f32 logits or the MoE's [2T, F] rows.
        largest = max(T * 32000, 2 * T * 3584) * 4 / 2**20
        if not with_torch:
            moec = [moec_round() for _ in range(args.repeat)]
            rows.append((T, [m for m, _ in moec], None,
                         max(r for _, r in moec), float("nan"),
                         weight_mb + 2 * largest, float("nan"), [],
                         float("nan"), float("nan")))
            continue
        # Same function: logits of the first tokens from both.
        check = min(T, 64)
        np.save(os.path.join(work, "check.npy"), np.load(tokens)[:check])
        subprocess.run([model, "--weights", weights, "--tokens",
                        os.path.join(work, "check.npy"), "--logits",
                        os.path.join(work, "moec-logits.npy")], check=True, env=env)
        subprocess.run([sys.executable, me, "--torch", "--config", cfg_path,
                        "--weights", weights, "--tokens-file", tokens,
                        "--threads", str(args.threads), "--check-tokens", str(check),
                        "--logits", os.path.join(work, "torch-logits.npy")],
                       check=True, env=env)
        a = np.load(os.path.join(work, "moec-logits.npy")).reshape(check, -1)
        b = np.load(os.path.join(work, "torch-logits.npy")).reshape(check, -1)
        err = np.abs(a - b).max() / np.abs(b).max()
        llama_err = float("nan")
        if gguf:
            c = llama_cpp.run_prefill(gguf, np.load(tokens)[:check], args.threads,
                                      0, 1, logits=True)["logits"]
            llama_err = np.abs(c - b).max() / np.abs(b).max()

        moec, torch, llama = [], [], []
        for _ in range(args.repeat):
            moec.append(moec_round())
            out, rss = run([sys.executable, me, "--torch", "--config", cfg_path,
                            "--weights", weights, "--tokens-file", tokens,
                            "--runs", str(args.runs), "--threads",
                            str(args.threads)] + (["--last"] if args.last else []),
                           env)
            torch.append((float(re.search(r"([\d.]+) tokens/s", out).group(1)),
                          rss))
            if gguf:
                r = llama_cpp.run_prefill(gguf, np.load(tokens), args.threads,
                                          args.runs, 1, last_only=args.last)
                llama.append((r["tokens_per_s"], r["peak_rss_mb"]))
        rows.append((T, [m for m, _ in moec], [t for t, _ in torch],
                     max(r for _, r in moec), max(r for _, r in torch),
                     weight_mb + 2 * largest, err,
                     [l for l, _ in llama], max([r for _, r in llama] or [float("nan")]),
                     llama_err))

    print("%6s %10s %10s %10s %7s %11s %7s %11s %8s %8s %8s %9s %8s %8s" % (
        "T", "moec tok/s", "torch", "llama.cpp", "/torch", "range",
        "/llama", "range", "moec MB", "torch MB", "llama MB",
        "budget MB", "err", "llama err"))
    def ratio(m, other):
        if not other:
            return "-", "-"
        r = [a / b for a, b in zip(m, other)]
        return ("%.2f" % (np.median(m) / np.median(other)),
                "%.2f-%.2f" % (min(r), max(r)))
    for T, m, t, mr, tr, budget, err, l, lr, lerr in rows:
        vs_torch, vs_llama = ratio(m, t), ratio(m, l)
        print("%6d %10.1f %10s %10s %7s %11s %7s %11s %8.0f %8.0f %8.0f %9.0f "
              "%8.1e %8.1e" % (
                  T, np.median(m), "%.1f" % np.median(t) if t else "-",
                  "%.1f" % np.median(l) if l else "-", vs_torch[0], vs_torch[1],
                  vs_llama[0], vs_llama[1], mr, tr, lr, budget, err, lerr))

if __name__ == "__main__":
    main()
