#!/usr/bin/env python3
"""An independent NumPy reference for moe.moe_block, written from docs/semantics.md.

Two modes, run by the lit tests in test/integration/cpu/moe-block*.mlir:

  moe_block_reference.py emit CASE      prints an MLIR module whose @main
                                        calls one moe.moe_block on random
                                        weights and prints the result
  moe_block_reference.py check CASE OUT compares the printed result (the
                                        output of mlir-runner) with the
                                        reference and prints one line

Weights come from a seeded generator, so both modes see the same numbers.
The reference loops over tokens and their chosen experts directly: no
dispatch, no grouped matmul, nothing shared with moec's lowering.
"""

import sys

import numpy as np

from mlir_text import bf16_round, dense, mlir_type, printed_error

# Each case: tokens T, hidden D, experts E, expert size F, policy and the
# optional features. `gate_scale` 0 makes every router logit equal (a tie
# between all experts); `complexity_bias` steers ADR's level mix.
CASES = {
    "mixtral": dict(T=7, D=16, E=4, F=12, policy=("top_k", 2, True)),
    "one-token": dict(T=1, D=16, E=8, F=8, policy=("top_k", 2, True)),
    "all-tied": dict(T=3, D=8, E=4, F=6, policy=("top_k", 2, True),
                     gate_scale=0.0),
    "top-p": dict(T=9, D=16, E=6, F=8, policy=("top_p", 0.6, None, False)),
    "top-p-every-expert": dict(T=4, D=8, E=4, F=6,
                               policy=("top_p", 0.999, None, False),
                               gate_scale=0.05),
    "top-p-capped": dict(T=9, D=16, E=6, F=8,
                         policy=("top_p", 0.7, 2, True)),
    "qwen-shared": dict(T=6, D=16, E=4, F=8, policy=("top_k", 2, False),
                        shared=10),
    "multi-head": dict(T=5, D=16, E=4, F=8, policy=("top_k", 2, True),
                       heads=4),
    "dual-scale": dict(T=6, D=16, E=4, F=8, policy=("top_k", 1, True),
                       dsse=(4, 12)),
    "adaptive": dict(T=12, D=16, E=6, F=8,
                     policy=("top_p", 0.5, 4, False), dsse=(4, 12),
                     adr=(0.5, 1)),
    "all-features": dict(T=6, D=16, E=4, F=8,
                         policy=("top_p", 0.5, 3, False), heads=2,
                         dsse=(4, 12), adr=(0.5, 1)),
    "bf16-weights": dict(T=5, D=16, E=4, F=8, policy=("top_k", 2, True),
                         dtype="bf16"),
    # More tokens than a chunk of moe.dispatch's placement (32), not a
    # multiple of it: run by dispatch-chunks.mlir, with and without the
    # static row bound.
    "chunks-top-k": dict(T=100, D=16, E=8, F=8, policy=("top_k", 2, True)),
    "chunks-top-p": dict(T=150, D=16, E=6, F=8,
                         policy=("top_p", 0.6, None, False)),
    # Top-1 over 24 experts and 40 tokens: experts without a token, and a
    # skew toward one expert (gate_scale spreads the logits).
    "chunks-sparse": dict(T=40, D=16, E=24, F=8, policy=("top_k", 1, True),
                          gate_scale=3.0),
}

# Routing decisions closer than this to a threshold could go either way
# between f32 orders of summation; such a case is rejected, not compared.
BOUNDARY_MARGIN = 1e-5


class TooCloseToBoundary(Exception):
    pass



def make_weights(name, case):
    rng = np.random.default_rng(sum(map(ord, name)))
    T, D, E, F = case["T"], case["D"], case["E"], case["F"]
    heads = case.get("heads", 1)
    dr = D // heads

    def rand(*shape, scale=1.0):
        w = (rng.standard_normal(shape) * scale).astype(np.float32)
        return bf16_round(w) if case.get("dtype") == "bf16" else w

    w = {"hidden": rng.standard_normal((T, D)).astype(np.float32)}
    w["gate"] = rand(E, dr, scale=case.get("gate_scale", 1.0) / np.sqrt(dr))
    w["w1"] = rand(E, F, dr, scale=1 / np.sqrt(dr))
    w["w3"] = rand(E, F, dr, scale=1 / np.sqrt(dr))
    w["w2"] = rand(E, dr, F, scale=1 / np.sqrt(F))
    if heads > 1:
        w["head_w"] = rand(D, D, scale=1 / np.sqrt(D))
        w["head_b"] = rand(D, scale=0.1)
        w["merge_w"] = rand(D, D, scale=1 / np.sqrt(D))
        w["merge_b"] = rand(D, scale=0.1)
    if "shared" in case:
        fs = case["shared"]
        w["shared_w1"] = rand(fs, D, scale=1 / np.sqrt(D))
        w["shared_w3"] = rand(fs, D, scale=1 / np.sqrt(D))
        w["shared_w2"] = rand(D, fs, scale=1 / np.sqrt(fs))
        w["shared_gate"] = rand(1, D, scale=1 / np.sqrt(D))
    if "dsse" in case:
        for prefix, f in zip(("shallow", "deep"), case["dsse"]):
            w[prefix + "_w1"] = rand(f, D, scale=1 / np.sqrt(D))
            w[prefix + "_w3"] = rand(f, D, scale=1 / np.sqrt(D))
            w[prefix + "_w2"] = rand(D, f, scale=1 / np.sqrt(f))
    if "adr" in case:
        w["complexity_w"] = rand(1, D, scale=1 / np.sqrt(D))
        w["complexity_b"] = rand(1, scale=0.1)
    return w


# ----------------------------------------------------------------------------
# The reference (docs/semantics.md §2, §3, §5, §6)
# ----------------------------------------------------------------------------


def softmax_f32(logits):
    logits = logits.astype(np.float32)
    e = np.exp(logits - logits.max())
    return (e / e.sum(dtype=np.float32)).astype(np.float32)


def route(p, policy, cap=None):
    """The chosen experts and their weights for one token's probabilities."""
    order = np.argsort(-p, kind="stable")  # ties: the lower index first
    E = len(p)
    if policy[0] == "top_k":
        _, k, normalize = policy
        count = min(k, E)
    else:
        _, threshold, max_experts, normalize = policy
        cumulative = np.cumsum(p[order], dtype=np.float32)
        if np.any(np.abs(cumulative - np.float32(threshold)) < BOUNDARY_MARGIN):
            raise TooCloseToBoundary("top_p prefix sum %s vs threshold %s" %
                                     (cumulative, threshold))
        above = np.nonzero(cumulative > np.float32(threshold))[0]
        count = int(above[0]) + 1 if len(above) else E
        if max_experts is not None:
            count = min(count, max_experts)
    if cap is not None:
        count = min(count, cap)
    chosen = order[:count]
    weights = p[chosen].astype(np.float64)
    if normalize and count:
        weights = weights / weights.sum()
    return chosen, weights


def silu(x):
    return x / (1.0 + np.exp(-x))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def swiglu_expert(x, w1, w3, w2):
    return (silu(x @ w1.T) * (x @ w3.T)) @ w2.T


def reference(case, w):
    f64 = {k: v.astype(np.float64) for k, v in w.items()}
    h = f64["hidden"]
    T, D = h.shape
    heads = case.get("heads", 1)
    policy = case["policy"]
    stats = {"experts_per_token": [], "complex": None}

    caps = [None] * T
    complexity = None
    if "adr" in case:
        level, simple_max = case["adr"]
        complexity = sigmoid(h @ f64["complexity_w"].T + f64["complexity_b"])[:, 0]
        if np.any(np.abs(complexity - level) < BOUNDARY_MARGIN):
            raise TooCloseToBoundary("complexity %s vs level %s" %
                                     (complexity, level))
        complex_token = complexity >= level
        caps = [None if c else simple_max for c in complex_token]
        stats["complex"] = int(complex_token.sum())

    u = h @ f64["head_w"].T + f64["head_b"] if heads > 1 else h
    sub = u.reshape(T * heads, D // heads)  # sub-token t*heads + j
    routed = np.zeros_like(sub)
    for s in range(T * heads):
        logits = (sub[s] @ f64["gate"].T).astype(np.float32)
        chosen, weights = route(softmax_f32(logits), policy, caps[s // heads])
        stats["experts_per_token"].append(len(chosen))
        for e, we in zip(chosen, weights):
            routed[s] += we * swiglu_expert(sub[s], f64["w1"][e], f64["w3"][e],
                                            f64["w2"][e])
    out = routed.reshape(T, D)
    if heads > 1:
        out = out @ f64["merge_w"].T + f64["merge_b"]

    if "shared" in case:
        gate = sigmoid(h @ f64["shared_gate"].T)
        out = out + gate * swiglu_expert(h, f64["shared_w1"], f64["shared_w3"],
                                         f64["shared_w2"])
    if "dsse" in case:
        out = out + swiglu_expert(h, f64["shallow_w1"], f64["shallow_w3"],
                                  f64["shallow_w2"])
        deep = swiglu_expert(h, f64["deep_w1"], f64["deep_w3"], f64["deep_w2"])
        if complexity is not None:
            level = case["adr"][0]
            deep = np.where((complexity >= level)[:, None],
                            complexity[:, None] * deep, 0.0)
        out = out + deep
    return out, stats


# ----------------------------------------------------------------------------
# MLIR emission
# ----------------------------------------------------------------------------




def policy_attr(policy):
    if policy[0] == "top_k":
        _, k, normalize = policy
        return "#moe.top_k<k = %d%s>" % (k, "" if normalize else
                                         ", normalize = false")
    _, threshold, max_experts, normalize = policy
    parts = ["threshold = %r" % threshold]
    if max_experts is not None:
        parts.append("max_experts = %d" % max_experts)
    if normalize:
        parts.append("normalize = true")
    return "#moe.top_p<%s>" % ", ".join(parts)


def emit(name, case, w):
    T, D = w["hidden"].shape
    weight_elt = "bf16" if case.get("dtype") == "bf16" else "f32"
    names = [k for k in w if k != "hidden"]

    def ty(key):
        return mlir_type(w[key].shape, weight_elt)

    def group(keys):
        return "%s : %s" % (", ".join("%" + k for k in keys),
                            ", ".join(ty(k) for k in keys))

    clauses = ["gate(%%gate : %s)" % ty("gate"),
               "experts(%s)" % group(["w1", "w3", "w2"]),
               "policy(%s)" % policy_attr(case["policy"])]
    if "heads" in case:
        clauses.append("multi_head(%d : %s)" % (
            case["heads"], group(["head_w", "head_b", "merge_w", "merge_b"])))
    if "shared" in case:
        clauses.append("shared_expert(%s)" % group(
            ["shared_w1", "shared_w3", "shared_w2", "shared_gate"]))
    if "dsse" in case:
        clauses.append("shallow_expert(%s)" %
                       group(["shallow_w1", "shallow_w3", "shallow_w2"]))
        clauses.append("deep_expert(%s)" %
                       group(["deep_w1", "deep_w3", "deep_w2"]))
    if "adr" in case:
        clauses.append("adaptive_routing(%s) level_threshold(%r) "
                       "simple_max_experts(%d)" %
                       ((group(["complexity_w", "complexity_b"]),) + case["adr"]))

    dyn = "tensor<?x%dxf32>" % D
    lines = ["// moe_block case %r, generated by moe_block_reference.py" % name,
             "func.func private @printMemrefF32(tensor<*xf32>)", "",
             "func.func @block(%%h: %s, %s) -> %s {" % (
                 dyn, ", ".join("%%%s: %s" % (k, ty(k)) for k in names), dyn),
             "  %%y = moe.moe_block %%h\n      %s\n      : %s -> %s" % (
                 "\n      ".join(clauses), dyn, dyn),
             "  return %%y : %s" % dyn, "}", "", "func.func @main() {"]
    for key in ["hidden"] + names:
        elt = "f32" if key == "hidden" else weight_elt
        lines.append("  %%%s = arith.constant dense<%s> : %s" % (
            key, dense(w[key]), mlir_type(w[key].shape, elt)))
    lines += [
        "  %%hd = tensor.cast %%hidden : %s to %s" % (
            mlir_type((T, D), "f32"), dyn),
        "  %%y = call @block(%%hd, %s) : (%s, %s) -> %s" % (
            ", ".join("%" + k for k in names), dyn,
            ", ".join(ty(k) for k in names), dyn),
        "  %%u = tensor.cast %%y : %s to tensor<*xf32>" % dyn,
        "  call @printMemrefF32(%u) : (tensor<*xf32>) -> ()",
        "  return", "}"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------
# Checking
# ----------------------------------------------------------------------------


def check(name, case, w, output):
    expected, stats = reference(case, w)
    err, failure = printed_error(name, output, expected)
    if failure:
        return failure
    counts = np.bincount(stats["experts_per_token"],
                         minlength=case["E"] + 1)
    detail = "experts/token histogram %s" % counts.tolist()
    if stats["complex"] is not None:
        detail += ", complex tokens %d of %d" % (stats["complex"], case["T"])
    verdict = "PASS" if err <= 1e-4 else "FAIL"
    return "%s %s: max rel error %.2e (%s)" % (verdict, name, err, detail)


def main(argv):
    if len(argv) < 3 or argv[1] not in ("emit", "check") or argv[2] not in CASES:
        sys.exit("usage: moe_block_reference.py emit|check CASE [OUTPUT]\n"
                 "cases: " + ", ".join(CASES))
    name = argv[2]
    case = CASES[name]
    w = make_weights(name, case)
    try:
        reference(case, w)  # rejects cases at a routing boundary up front
    except TooCloseToBoundary as e:
        sys.exit("case %s is too close to a routing boundary (%s); change its "
                 "weights" % (name, e))
    if argv[1] == "emit":
        sys.stdout.write(emit(name, case, w))
    else:
        with open(argv[3]) as f:
            print(check(name, case, w, f.read()))


if __name__ == "__main__":
    main(sys.argv)
