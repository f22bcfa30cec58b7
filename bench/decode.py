#!/usr/bin/python3
"""Decode speed of a compiled model vs PyTorch eager with a KV cache, and the
bandwidth floor of a decode step.

    bench/decode.py [--layers 4] [--cases 1x512,1x4096,8x512,8x4096] [--steps 8]
                    [--threads 2] [--workdir DIR] [--moec-flags "..."]

The design brief's shape (bench/model_prefill.py's config: D = 1024,
F = 3584, E = 8, top-2, 16 heads, 8 kv-heads, V = 32000), f32 weights from
examples/make_weights.py. For each case BxT (B sequences of a T-token
prompt) it generates --steps tokens greedily with:

* moec: the compiled executable's `--generate N --bench 1`, which reports
  prefill and decode tokens/s separately (decode: B tokens per step);
* PyTorch eager with a KV cache: the model of bench/model_prefill.py
  (Hugging Face's eager Mixtral: per-expert loop, explicit-mask attention),
  its prefill (untimed) storing each layer's post-RoPE keys and values,
  each decode step one token per sequence against them (explicit scores
  and softmax; the prefill a sequence at a time); the same threads. It also
  counts the distinct experts each layer's step activates;
* the bandwidth floor: the bytes of weights one decode step must read
  (per layer the attention projections, the router and the experts the step
  activates, as PyTorch counted them; the LM head), over this machine's
  copy bandwidth measured here (torch copy of 512 MB, best of 5, read plus
  write); and the same with the KV cache's reads added.

Before timing, the greedy ids of moec and PyTorch are compared (the same
function should continue the same way; near-ties may differ). Prints one
table; docs/performance.md records it with the command. Needs Debian's
/usr/bin/python3 (numpy, torch) and a built moec.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import model_prefill  # noqa: E402  (config, load_safetensors, the MoE block)


def torch_main(args):
    """Child process: greedy decode with a KV cache; prints a JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    cfg = json.load(open(args.config))
    w = {k: torch.from_numpy(np.array(v)) for k, v in
         model_prefill.load_safetensors(args.weights).items()}
    D, H, KVH = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    Dh, E, K = D // H, cfg["num_local_experts"], cfg["num_experts_per_tok"]
    L, eps, theta = cfg["num_hidden_layers"], cfg["rms_norm_eps"], cfg["rope_theta"]
    inv = 1.0 / (theta ** (torch.arange(0, Dh, 2, dtype=torch.int64).float() / Dh))

    def rms(x, weight):
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def rope(x, start):  # x: [B, S, heads, Dh], positions start..start+S-1
        pos = torch.arange(start, start + x.shape[1], dtype=torch.float32)
        emb = torch.cat([torch.outer(pos, inv)] * 2, -1)
        cos, sin = emb.cos()[None, :, None], emb.sin()[None, :, None]
        x1, x2 = x[..., :Dh // 2], x[..., Dh // 2:]
        return x * cos + torch.cat((-x2, x1), -1) * sin

    def step(tokens, cache, start, used):
        """tokens [B, S] at positions start..; cache[l] = (k, v) [B, KVH, T, Dh]."""
        B, S = tokens.shape
        x = w["model.embed_tokens.weight"][tokens.reshape(-1)]
        for l in range(L):
            p = "model.layers.%d." % l
            h = rms(x, w[p + "input_layernorm.weight"])
            q = rope((h @ w[p + "self_attn.q_proj.weight"].T).view(B, S, H, Dh), start)
            k = rope((h @ w[p + "self_attn.k_proj.weight"].T).view(B, S, KVH, Dh), start)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).view(B, S, KVH, Dh)
            k, v = k.transpose(1, 2), v.transpose(1, 2)
            if l < len(cache):
                k = torch.cat([cache[l][0], k], 2)
                v = torch.cat([cache[l][1], v], 2)
                cache[l] = (k, v)
            else:
                cache.append((k, v))
            kk = k.repeat_interleave(H // KVH, dim=1)
            vv = v.repeat_interleave(H // KVH, dim=1)
            # Explicit scores and softmax, one sequence at a time so that a
            # long prompt's prefill (not timed) holds [H, T, T], not
            # [B, H, T, T].
            T = kk.shape[2]
            mask = torch.full((S, T), float("-inf")).triu(T - S + 1)
            rows = []
            for b in (range(B) if S > 1 else [slice(None)]):
                s = torch.einsum("...shd,...htd->...hst", q[b], kk[b]) / Dh ** 0.5
                rows.append(torch.einsum("...hst,...htd->...shd",
                                         (s + mask).softmax(-1), vv[b]))
            o = torch.stack(rows) if S > 1 else rows[0]
            x = x + o.reshape(B * S, D) @ w[p + "self_attn.o_proj.weight"].T
            h = rms(x, w[p + "post_attention_layernorm.weight"])
            x = x + model_prefill.eager_moe_block(w, p, h, E, K, used)
        last = rms(x.view(B, S, D)[:, -1], w["model.norm.weight"])
        return last @ w["lm_head.weight"].T

    prompt = torch.from_numpy(np.load(args.tokens).astype(np.int64))
    B, T = prompt.shape
    with torch.inference_mode():
        cache, used = [], [0]
        nxt = step(prompt, cache, 0, used).argmax(-1)
        ids, used = [nxt], [0]
        start = time.perf_counter()
        for i in range(args.steps - 1):
            nxt = step(nxt[:, None], cache, T + i, used).argmax(-1)
            ids.append(nxt)
        seconds = time.perf_counter() - start
    print(json.dumps({"decode_tokens_per_s": B * (args.steps - 1) / seconds,
                      "ms_per_step": 1e3 * seconds / (args.steps - 1),
                      "experts_per_layer_step": used[0] / (L * (args.steps - 1)),
                      "ids": torch.stack(ids, 1).tolist()}))


def copy_bandwidth(threads):
    """Bytes per second a 512 MB copy moves (read plus write), best of 5."""
    import torch
    torch.set_num_threads(threads)
    a = torch.ones(2**27)
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        b.copy_(a)
        best = min(best, time.perf_counter() - start)
    return 2 * a.numel() * 4 / best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--cases", default="1x512,1x4096,8x512,8x4096",
                    help="BxT prompts")
    ap.add_argument("--steps", type=int, default=8,
                    help="generated tokens per sequence (the first comes from "
                    "the prefill)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir")
    ap.add_argument("--moec-flags", default="")
    ap.add_argument("--torch", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    ap.add_argument("--tokens", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch:
        return torch_main(args)

    build = os.environ.get("MOEC_BUILD_DIR", os.path.join(ROOT, "build"))
    work = args.workdir or tempfile.mkdtemp(prefix="moec-decode-")
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads))
    cfg = model_prefill.config(args.layers, "full")
    cfg_path = os.path.join(work, "config.json")
    json.dump(cfg, open(cfg_path, "w"), indent=1)
    weights = os.path.join(work, "w.safetensors")
    if not os.path.exists(weights):
        subprocess.run([sys.executable, os.path.join(ROOT, "examples/make_weights.py"),
                        cfg_path, weights, "--seed", "1"], check=True,
                       stdout=subprocess.DEVNULL)
    model = os.path.join(work, "model")
    subprocess.run([os.path.join(build, "bin/moec"), "compile", cfg_path, "-o",
                    model] + args.moec_flags.split(), check=True)
    bandwidth = copy_bandwidth(args.threads)
    D, F, E, V = 1024, 3584, 8, 32000
    KVD = 8 * 64
    attention_bytes = 4 * (2 * D * D + 2 * D * KVD + E * D)  # q, o, k, v, router
    print("config: %d layers, D=1024, F=3584, E=8 top-2, H=16, KVH=8, V=32000, "
          "f32; %d threads; copy bandwidth %.1f GB/s" %
          (args.layers, args.threads, bandwidth / 1e9))

    rows = []
    for case in args.cases.split(","):
        B, T = (int(x) for x in case.split("x"))
        tokens = os.path.join(work, "prompt-%dx%d.npy" % (B, T))
        np.save(tokens, np.random.default_rng(T + B).integers(0, V, (B, T)).astype(np.int32))
        out = subprocess.run([model, "--weights", weights, "--tokens", tokens,
                              "--generate", str(args.steps), "--bench", "1"],
                             check=True, capture_output=True, text=True,
                             env=env).stdout
        m = re.search(r"prefill ([\d.]+) tokens/s, decode ([\d.]+) tokens/s "
                      r"\(([\d.]+) ms per step", out)
        cache = int(re.search(r"KV cache: (\d+) bytes", out).group(1))
        moec_ids = [[int(t) for t in line.split()]
                    for line in out.splitlines()[2:]]
        t = json.loads(subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--torch", "--config",
             cfg_path, "--weights", weights, "--tokens", tokens, "--steps",
             str(args.steps), "--threads", str(args.threads)], check=True,
            capture_output=True, text=True, env=env).stdout)
        agree = sum(a == b for ra, rb in zip(moec_ids, t["ids"])
                    for a, b in zip(ra, rb))
        weight_bytes = (args.layers * (attention_bytes + t["experts_per_layer_step"]
                                       * 3 * F * D * 4) + V * D * 4)
        kv_bytes = args.layers * 2 * B * KVD * (T + args.steps // 2) * 4
        floor = B * bandwidth / weight_bytes
        floor_kv = B * bandwidth / (weight_bytes + kv_bytes)
        rows.append((B, T, float(m.group(1)), float(m.group(2)), float(m.group(3)),
                     t["decode_tokens_per_s"], t["ms_per_step"], floor, floor_kv,
                     t["experts_per_layer_step"], agree, B * args.steps,
                     cache / 2**20))

    print("%2s %5s %12s %11s %9s %11s %9s %7s %10s %12s %7s %8s %7s %6s" % (
        "B", "T", "moec prefill", "moec decode", "ms/step", "torch dec",
        "ms/step", "/torch", "floor", "floor+KV", "/floor", "experts",
        "KV MiB", "ids"))
    for B, T, pre, dec, ms, tdec, tms, floor, floor_kv, ex, agree, n, kv in rows:
        print("%2d %5d %12.1f %11.2f %9.1f %11.2f %9.1f %7.3f %10.1f %12.1f %7.4f "
              "%8.2f %7.1f %3d/%d" % (B, T, pre, dec, ms, tdec, tms, dec / tdec,
                                      floor, floor_kv, dec / floor, ex, kv,
                                      agree, n))


if __name__ == "__main__":
    main()
