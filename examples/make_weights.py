#!/usr/bin/python3
"""Random weights for a moec model description, as one .safetensors file.

    make_weights.py CONFIG.json OUT.safetensors [--dtype f32|bf16] [--seed N]
    make_weights.py CONFIG.json --list          (names and shapes, one a line)

Writes every tensor that the config needs (docs/semantics.md §1-§7), under the
Hugging Face names that moec binds: per-expert tensors
(`model.layers.L.block_sparse_moe.experts.E.w1.weight`, not stacked), the
qwen2_moe names (`mlp.experts.E.gate_proj.weight`, `mlp.shared_expert.*`,
q/k/v biases, dense `mlp.gate_proj` layers) and the moec extension tensors
under the MoE block prefix (`multi_head`, `merge`, `shallow_expert`,
`deep_expert`, `complexity_gate`).

Weights are normal / sqrt(fan_in), so that every projection keeps O(1)
activations, router logits are O(1) (routing is neither uniform nor one-hot)
and the logits are O(1). The embedding is standard normal (normal / sqrt(D)
when tied to the LM head). Norm weights are 1 + 0.1·normal, biases
0.1·normal. The same seed gives the same values for f32 and bf16 (bf16 is
the f32 draw, rounded).

The file is written by hand, without the safetensors package: an 8-byte
little-endian header length, a JSON header {name: {dtype, shape,
data_offsets}} padded with spaces to 8 bytes, then the raw little-endian
data. bf16 is the upper 16 bits of the f32 value rounded to nearest even.

Needs NumPy only (Debian's /usr/bin/python3 has it).
"""

import argparse
import json
import math
import struct
import sys

import numpy as np


def schedule_experts(schedule, layer, num_layers):
    """E_l of docs/semantics.md §4, round(x) = floor(x + 0.5)."""
    lo, hi = schedule["min_experts"], schedule["max_experts"]
    delta = hi - lo
    t = layer / (num_layers - 1) if num_layers > 1 else 0.0
    tent = 1.0 - abs(2.0 * t - 1.0)
    kind = schedule["kind"]
    if kind == "uniform":
        return hi
    x = {"descending": lambda: hi - delta * t,
         "ascending": lambda: lo + delta * t,
         "pyramid": lambda: lo + delta * tent,
         "hourglass": lambda: hi - delta * tent,
         # l mod period: sin is exactly 0 at whole periods.
         "wave": lambda: lo + delta * (1.0 + math.sin(
             2.0 * math.pi * (layer % schedule["period"])
             / schedule["period"])) / 2.0}[kind]()
    return int(math.floor(x + 0.5))


def tensor_shapes(cfg):
    """Every tensor the config needs: {name: (shape, fan_in or kind)}.

    The second item says how to draw the tensor: an int is the fan-in of a
    weight matrix, "norm" a norm weight (around 1), "bias" a bias.
    """
    qwen = cfg["model_type"] == "qwen2_moe"
    ext = cfg.get("moec") or {}
    D = cfg["hidden_size"]
    L = cfg["num_hidden_layers"]
    H = cfg["num_attention_heads"]
    KVH = cfg.get("num_key_value_heads") or H
    Dh = cfg.get("head_dim") or D // H
    V = cfg["vocab_size"]
    E = cfg["num_experts"] if qwen else cfg["num_local_experts"]
    F = cfg["moe_intermediate_size"] if qwen else cfg["intermediate_size"]
    multi_head = ext.get("multi_head") is not None
    heads = ext["multi_head"]["heads"] if multi_head else 1
    dr = D // heads
    dual = ext.get("shared_experts")
    adr = ext.get("adaptive_routing")

    out = {"model.embed_tokens.weight": ((V, D), D)}
    for l in range(L):
        p = "model.layers.%d." % l
        out[p + "input_layernorm.weight"] = ((D,), "norm")
        for name, rows in (("q_proj", H * Dh), ("k_proj", KVH * Dh),
                           ("v_proj", KVH * Dh)):
            out[p + "self_attn.%s.weight" % name] = ((rows, D), D)
            if qwen:
                out[p + "self_attn.%s.bias" % name] = ((rows,), "bias")
        out[p + "self_attn.o_proj.weight"] = ((D, H * Dh), H * Dh)
        out[p + "post_attention_layernorm.weight"] = ((D,), "norm")

        sparse = True
        if qwen:
            step = cfg.get("decoder_sparse_step") or 1
            sparse = (l not in (cfg.get("mlp_only_layers") or [])
                      and (l + 1) % step == 0)
        if not sparse:
            Fd = cfg["intermediate_size"]
            out[p + "mlp.gate_proj.weight"] = ((Fd, D), D)
            out[p + "mlp.up_proj.weight"] = ((Fd, D), D)
            out[p + "mlp.down_proj.weight"] = ((D, Fd), Fd)
            continue

        m = p + ("mlp." if qwen else "block_sparse_moe.")
        El = E
        if ext.get("expert_schedule"):
            El = schedule_experts(ext["expert_schedule"], l, L)
        w1, w3, w2 = (("gate_proj", "up_proj", "down_proj") if qwen
                      else ("w1", "w3", "w2"))
        out[m + "gate.weight"] = ((El, dr), dr)
        for e in range(El):
            out[m + "experts.%d.%s.weight" % (e, w1)] = ((F, dr), dr)
            out[m + "experts.%d.%s.weight" % (e, w3)] = ((F, dr), dr)
            out[m + "experts.%d.%s.weight" % (e, w2)] = ((dr, F), F)
        if multi_head:  # docs/semantics.md §5, also with heads = 1
            out[m + "multi_head.weight"] = ((D, D), D)
            out[m + "multi_head.bias"] = ((D,), "bias")
            out[m + "merge.weight"] = ((D, D), D)
            out[m + "merge.bias"] = ((D,), "bias")
        if qwen:
            Fs = cfg["shared_expert_intermediate_size"]
            out[m + "shared_expert.gate_proj.weight"] = ((Fs, D), D)
            out[m + "shared_expert.up_proj.weight"] = ((Fs, D), D)
            out[m + "shared_expert.down_proj.weight"] = ((D, Fs), Fs)
            out[m + "shared_expert_gate.weight"] = ((1, D), D)
        if dual:
            for name, size in (("shallow_expert",
                                dual["shallow_intermediate_size"]),
                               ("deep_expert", dual["deep_intermediate_size"])):
                out[m + name + ".w1.weight"] = ((size, D), D)
                out[m + name + ".w3.weight"] = ((size, D), D)
                out[m + name + ".w2.weight"] = ((D, size), size)
        if adr:
            out[m + "complexity_gate.weight"] = ((1, D), D)
            out[m + "complexity_gate.bias"] = ((1,), "bias")

    out["model.norm.weight"] = ((D,), "norm")
    if not cfg.get("tie_word_embeddings", False):
        out["lm_head.weight"] = ((V, D), D)
    return out


def bf16_bits(a):
    """The bf16 bit patterns (uint16) of f32 values, rounded to nearest even."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    bits = bits.astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def random_weights(cfg, seed=0):
    """{name: f32 array}, drawn in name order from one seeded generator."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, (shape, kind) in sorted(tensor_shapes(cfg).items()):
        z = rng.standard_normal(shape)
        if kind == "norm":
            w = 1.0 + 0.1 * z
        elif kind == "bias":
            w = 0.1 * z
        elif name == "model.embed_tokens.weight":
            # The residual stream starts at O(1); a tied LM head would then
            # give logits O(D) (a token's own row), so scale it as a weight.
            w = z / math.sqrt(kind) if cfg.get("tie_word_embeddings") else z
        else:
            w = z / math.sqrt(kind)
        weights[name] = w.astype(np.float32)
    return weights


def write_safetensors(path, tensors, dtype="f32"):
    """Writes {name: f32 array} as F32 or BF16 safetensors, names sorted."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name], dtype=np.float32)
        if dtype == "bf16":
            raw = bf16_bits(a).astype("<u2").tobytes()
        else:
            raw = a.astype("<f4").tobytes()
        header[name] = {"dtype": "BF16" if dtype == "bf16" else "F32",
                        "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt", "generator": "moec make_weights"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--dtype", choices=("f32", "bf16"), default="f32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--list", action="store_true",
                    help="print each tensor's name and shape, write nothing")
    args = ap.parse_args(argv)
    with open(args.config) as f:
        cfg = json.load(f)
    if args.list:
        for name, (shape, _) in sorted(tensor_shapes(cfg).items()):
            print(name, "x".join(map(str, shape)))
        return 0
    if not args.out:
        ap.error("OUT.safetensors is required (or --list)")
    weights = random_weights(cfg, args.seed)
    write_safetensors(args.out, weights, args.dtype)
    count = sum(w.size for w in weights.values())
    print("%s: %d tensors, %d parameters, %s" % (args.out, len(weights), count,
                                                args.dtype), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
