#!/usr/bin/env python3
"""Validates model_reference.py against independent implementations.

1. Hugging Face `transformers` (MixtralForCausalLM, Qwen2MoeForCausalLM,
   eager attention) built from small configs, with random weights written by
   examples/make_weights.py and loaded with the official `safetensors`
   package (which also checks that our hand-written files are valid):
   logits must agree within 1e-5 relative error (HF in float32), and are
   reported for HF in float64 too. Covers the base model of docs/semantics.md §2-§3:
   GQA, RoPE, sliding window, tied embeddings, top-k with and without
   renormalisation, qwen2_moe biases, shared expert, dense layers.
2. The MoE extension features that HF lacks (§3 top_p, §5 MH-MoE, §6 DSSE
   and ADR), one block at a time, against test/utils/moe_block_reference.py
   (the per-token loop reference that moec's block lowering is checked with).
3. GMHA (§7) against a per-query loop, written separately below.

Run with a Python that has torch and transformers, e.g. a venv made with
--system-site-packages over Debian's python3-torch:
    python -m venv --system-site-packages V && V/bin/pip install transformers
    V/bin/python test/utils/check_reference_against_hf.py
Parts 2 and 3 need only NumPy and run when transformers is missing
(`--no-hf`). Exit status 0 when every check passes.
"""

import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "examples"))

import model_reference as ref  # noqa: E402
import make_weights  # noqa: E402

HF_TOLERANCE = 1e-5

# Small configs for Hugging Face; the example configs are read from files.
HF_CONFIGS = {
    "mixtral-tiny": os.path.join(ROOT, "examples", "mixtral-tiny.json"),
    "mixtral-sliding-tied": {
        "model_type": "mixtral", "hidden_size": 48, "intermediate_size": 40,
        "num_hidden_layers": 3, "num_attention_heads": 6,
        "num_key_value_heads": 1, "vocab_size": 97, "num_local_experts": 5,
        "num_experts_per_tok": 3, "rms_norm_eps": 1e-6, "rope_theta": 500.0,
        "sliding_window": 7, "tie_word_embeddings": True},
    "qwen2-moe-tiny": os.path.join(ROOT, "examples", "qwen2-moe-tiny.json"),
    "qwen2-moe-normalized": {
        "model_type": "qwen2_moe", "hidden_size": 32, "intermediate_size": 72,
        "moe_intermediate_size": 24, "shared_expert_intermediate_size": 40,
        "num_hidden_layers": 4, "num_attention_heads": 4,
        "num_key_value_heads": 4, "head_dim": 8, "vocab_size": 64,
        "num_experts": 6, "num_experts_per_tok": 2, "norm_topk_prob": True,
        "decoder_sparse_step": 2, "mlp_only_layers": [3],
        "use_sliding_window": False, "tie_word_embeddings": True},
}


def load_raw(spec):
    if isinstance(spec, dict):
        return dict(spec)
    with open(spec) as f:
        return json.load(f)


def hf_model(raw):
    import torch
    import transformers
    cls = {"mixtral": (transformers.MixtralConfig,
                       transformers.MixtralForCausalLM),
           "qwen2_moe": (transformers.Qwen2MoeConfig,
                         transformers.Qwen2MoeForCausalLM)}[raw["model_type"]]
    keys = {k: v for k, v in raw.items() if k not in ("architectures", "moec",
                                                     "model_type")}
    config = cls[0](**keys)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    return cls[1](config).eval()


def check_hf(name, spec, dtype, tmp):
    """Reference vs HF logits on one config; returns (ok, line)."""
    import torch
    from safetensors.torch import load_file

    raw = load_raw(spec)
    path = os.path.join(tmp, "%s-%s.safetensors" % (name, dtype))
    make_weights.write_safetensors(path, make_weights.random_weights(raw, 7),
                                   dtype)
    model = hf_model(raw)
    state = {k: v.float() for k, v in load_file(path).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    allowed = ["lm_head.weight"] if raw.get("tie_word_embeddings") else []
    if sorted(missing) != allowed or unexpected:
        return False, "FAIL %s: state_dict mismatch: missing %s, unexpected %s" % (
            name, missing, unexpected)
    model.tie_weights()

    tokens = np.random.default_rng(3).integers(0, raw["vocab_size"], (2, 23))
    weights, _ = ref.read_safetensors(path)
    expected, _, warnings = ref.forward(ref.Config(raw), weights, tokens)
    with torch.no_grad():
        got32 = model(torch.from_numpy(tokens)).logits.double().numpy()
        got64 = model.double()(torch.from_numpy(tokens)).logits.numpy()
    scale = np.abs(expected).max()
    err32 = np.abs(got32 - expected).max() / scale
    err64 = np.abs(got64 - expected).max() / scale
    ok = err32 <= HF_TOLERANCE
    return ok, ("%s %-22s %-4s weights: max rel error vs HF f32 %.2e, vs HF "
                "f64 %.2e%s" % ("PASS" if ok else "FAIL", name, dtype, err32,
                                err64, " (%d near-threshold warnings)" %
                                len(warnings) if warnings else ""))


def check_blocks():
    """model_reference.moe_block against moe_block_reference.reference."""
    import moe_block_reference as mbr
    lines, ok = [], True
    for name, case in mbr.CASES.items():
        w = mbr.make_weights(name, case)
        expected, stats = mbr.reference(case, w)
        qwen = "shared" in case
        D, E, F = case["D"], case["E"], case["F"]
        policy = case["policy"]
        raw = {"model_type": "qwen2_moe" if qwen else "mixtral",
               "hidden_size": D, "num_hidden_layers": 1,
               "num_attention_heads": 1, "vocab_size": 2,
               "num_experts_per_tok": policy[1] if policy[0] == "top_k" else 1,
               "moec": {}}
        if qwen:
            raw.update(num_experts=E, moe_intermediate_size=F,
                       shared_expert_intermediate_size=case["shared"],
                       norm_topk_prob=policy[2])
        else:
            raw.update(num_local_experts=E, intermediate_size=F)
        if policy[0] == "top_p":
            raw["moec"]["routing"] = {"policy": "top_p",
                                      "threshold": policy[1],
                                      "max_experts": policy[2],
                                      "normalize": policy[3]}
        elif not qwen and not policy[2]:
            raise AssertionError("mixtral top_k always renormalises")
        if "heads" in case:
            raw["moec"]["multi_head"] = {"heads": case["heads"]}
        if "dsse" in case:
            raw["moec"]["shared_experts"] = {
                "shallow_intermediate_size": case["dsse"][0],
                "deep_intermediate_size": case["dsse"][1]}
        if "adr" in case:
            raw["moec"]["adaptive_routing"] = {
                "level_threshold": case["adr"][0],
                "simple_max_experts": case["adr"][1]}
        cfg = ref.Config(raw)
        m = cfg.block_prefix(0)
        names = (("gate_proj", "up_proj", "down_proj") if qwen
                 else ("w1", "w3", "w2"))
        hw = {m + "gate.weight": w["gate"]}
        for e in range(E):
            for key, n in zip(("w1", "w3", "w2"), names):
                hw[m + "experts.%d.%s.weight" % (e, n)] = w[key][e]
        renames = {"head_w": "multi_head.weight", "head_b": "multi_head.bias",
                   "merge_w": "merge.weight", "merge_b": "merge.bias",
                   "shared_gate": "shared_expert_gate.weight",
                   "complexity_w": "complexity_gate.weight",
                   "complexity_b": "complexity_gate.bias"}
        for i, n in enumerate(names):
            renames["shared_w%d" % (1, 3, 2)[i]] = "shared_expert.%s.weight" % n
        for part in ("shallow", "deep"):
            for n in ("w1", "w3", "w2"):
                renames["%s_%s" % (part, n)] = "%s_expert.%s.weight" % (part, n)
        for key, n in renames.items():
            if key in w:
                hw[m + n] = w[key]
        hw = {k: v.astype(np.float64) for k, v in hw.items()}
        got, st = ref.moe_block(cfg, hw, 0, w["hidden"].astype(np.float64), [])
        err = np.abs(got - expected).max() / np.abs(expected).max()
        hist = np.bincount(stats["experts_per_token"], minlength=E + 1).tolist()
        same = hist == st["experts_per_token_histogram"]
        good = err <= 1e-12 and same
        ok &= good
        lines.append("%s block %-20s max rel error vs moe_block_reference "
                     "%.1e, histograms %s" % ("PASS" if good else "FAIL", name,
                                              err, "equal" if same else
                                              "DIFFER"))
    return ok, lines


def gmha_loop(q, k, v, G, W):
    """docs/semantics.md §7 literally: one query at a time, summaries built per query."""
    T, Dh = q.shape
    out = np.zeros_like(q)
    for i in range(T):
        g = i // G
        keys, vals = [], []
        for j in range(max(g * G, i - W + 1), i + 1):
            keys.append(k[j])
            vals.append(v[j])
        for gp in range(g):
            keys.append(k[gp * G:(gp + 1) * G].mean(axis=0))
            vals.append(v[gp * G:(gp + 1) * G].mean(axis=0))
        s = np.array([q[i] @ key for key in keys]) / math.sqrt(Dh)
        a = np.exp(s - s.max())
        a /= a.sum()
        out[i] = sum(ai * vi for ai, vi in zip(a, vals))
    return out


def check_gmha():
    rng = np.random.default_rng(5)
    ok, lines = True, []
    for T, G, W in ((1, 4, 2), (13, 4, 3), (32, 8, 8), (30, 5, 11), (17, 16, 1)):
        q, k, v = (rng.standard_normal((T, 8)) for _ in range(3))
        err = np.abs(ref.grouped_attention(q, k, v, G, W) -
                     gmha_loop(q, k, v, G, W)).max()
        ok &= err <= 1e-12
        lines.append("%s GMHA T=%d G=%d W=%d: max abs error vs per-query loop "
                     "%.1e" % ("PASS" if err <= 1e-12 else "FAIL", T, G, W, err))
    return ok, lines


def main(argv):
    ok = True
    if "--no-hf" not in argv:
        try:
            import torch  # noqa: F401
            import transformers
        except ImportError as e:
            print("SKIP Hugging Face comparison: %s" % e)
        else:
            print("transformers %s, torch %s" % (transformers.__version__,
                                                 torch.__version__))
            with tempfile.TemporaryDirectory() as tmp:
                for name, spec in HF_CONFIGS.items():
                    for dtype in ("f32", "bf16"):
                        good, line = check_hf(name, spec, dtype, tmp)
                        ok &= good
                        print(line)
    for part in (check_blocks, check_gmha):
        good, lines = part()
        ok &= good
        for line in lines:
            print(line)
    print("ALL PASS" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
