#!/usr/bin/env python3
"""An independent NumPy reference for moe.attention and moe.grouped_attention,
written from docs/semantics.md §2 (causal grouped-query attention, sliding window) and
§7 (grouped multi-head attention, GMHA).

Two modes, run by test/integration/cpu/attention*.mlir:

  attention_reference.py emit CASE      prints an MLIR module whose @main
                                        runs one attention op on random
                                        query/key/value and prints the result
  attention_reference.py check CASE OUT compares the printed result (the
                                        output of mlir-runner) with the
                                        reference and prints one line

Inputs come from a generator seeded by the case name, so both modes see the
same numbers. The reference lists each query's keys explicitly (local keys,
then the group means) and takes one softmax over them in float64: no online
softmax, no loop structure shared with moec's lowering.
"""

import sys

import numpy as np

from mlir_text import bf16_round, dense, mlir_type, printed_error

# Each case: batch B, tokens T, heads H, kv-heads KVH, head size Dh, and the
# attention kind: ("full",), ("sliding", W) or ("grouped", G, W).
CASES = {
    "full-gqa": dict(B=1, T=7, H=4, KVH=2, Dh=8, kind=("full",)),
    "full-mha": dict(B=1, T=6, H=4, KVH=4, Dh=8, kind=("full",), static=True),
    "full-batch": dict(B=2, T=5, H=2, KVH=1, Dh=4, kind=("full",)),
    "full-one-token": dict(B=1, T=1, H=4, KVH=2, Dh=8, kind=("full",)),
    # Eight heads on one kv-head at Dh = 64: a work item holds all of them.
    "full-wide-group": dict(B=1, T=6, H=8, KVH=1, Dh=64, kind=("full",)),
    "full-bf16": dict(B=1, T=7, H=4, KVH=2, Dh=8, kind=("full",),
                      dtype="bf16"),
    "sliding": dict(B=1, T=9, H=4, KVH=2, Dh=8, kind=("sliding", 3)),
    "sliding-wide": dict(B=1, T=7, H=4, KVH=2, Dh=8, kind=("sliding", 16)),
    "sliding-one": dict(B=1, T=5, H=2, KVH=2, Dh=4, kind=("sliding", 1)),
    # 11 = 2 * 4 + 3: the last group is partial, so it has no summary.
    "gmha-partial": dict(B=1, T=11, H=4, KVH=2, Dh=8, kind=("grouped", 4, 3)),
    "gmha-short": dict(B=1, T=3, H=4, KVH=2, Dh=8, kind=("grouped", 4, 2)),
    "gmha-wide-window": dict(B=1, T=10, H=4, KVH=2, Dh=8,
                             kind=("grouped", 4, 6)),
    "gmha-window-one": dict(B=1, T=8, H=2, KVH=1, Dh=8,
                            kind=("grouped", 3, 1)),
    "gmha-batch": dict(B=2, T=9, H=4, KVH=2, Dh=4, kind=("grouped", 4, 2),
                       static=True),
    "gmha-one-token": dict(B=1, T=1, H=4, KVH=2, Dh=8,
                           kind=("grouped", 4, 2)),
    # Six heads per kv-head at Dh = 64: not a divisor of a work item's rows
    # with AVX-512 (32), which then hold two of them.
    "gmha-wide-group": dict(B=1, T=9, H=12, KVH=2, Dh=64,
                            kind=("grouped", 4, 2)),
    "gmha-bf16": dict(B=1, T=11, H=4, KVH=2, Dh=8, kind=("grouped", 4, 3),
                      dtype="bf16"),
    # Longer than a work item's positions and a key block (T = 150 is no
    # multiple of 8, 12, 16, 24 or 64): run with each kernel shape by
    # attention-kernels.mlir. The window crosses key blocks, so some rows
    # have every key of a block masked.
    # moe.attention offset(P): Tq queries at positions P .. P + Tq - 1
    # against T keys (a decode step, an extension, keys past the queries).
    "decode-full": dict(B=2, T=9, H=4, KVH=2, Dh=8, kind=("full",),
                        offset=(8, 1)),
    "decode-sliding": dict(B=1, T=12, H=4, KVH=2, Dh=8, kind=("sliding", 4),
                           offset=(11, 1)),
    "extend-full": dict(B=1, T=10, H=8, KVH=2, Dh=8, kind=("full",),
                        offset=(7, 3)),
    "offset-middle": dict(B=1, T=10, H=4, KVH=4, Dh=8, kind=("sliding", 3),
                          offset=(3, 2)),
    "long-full": dict(B=2, T=150, H=4, KVH=2, Dh=16, kind=("full",)),
    "long-sliding": dict(B=1, T=150, H=4, KVH=2, Dh=16, kind=("sliding", 70)),
    "long-gmha": dict(B=1, T=150, H=4, KVH=2, Dh=16, kind=("grouped", 32, 20)),
    # 75 group summaries: more than a key block of them; 8 heads per kv-head.
    "long-gmha-groups": dict(B=1, T=150, H=8, KVH=1, Dh=16,
                             kind=("grouped", 2, 3)),
    "long-bf16": dict(B=1, T=150, H=4, KVH=2, Dh=16, kind=("sliding", 40),
                      dtype="bf16"),
}

# docs/semantics.md: relative error at most 1e-4 for f32, 2e-2 for bf16.
TOLERANCE = {"f32": 1e-4, "bf16": 2e-2}



def dtype_of(case):
    return case.get("dtype", "f32")


def make_inputs(name, case):
    rng = np.random.default_rng(sum(map(ord, name)))
    B, T, H, KVH, Dh = (case[k] for k in ("B", "T", "H", "KVH", "Dh"))

    def rand(*shape, scale=1.0):
        a = (rng.standard_normal(shape) * scale).astype(np.float32)
        return bf16_round(a) if dtype_of(case) == "bf16" else a

    # A larger query scale makes the softmax far from uniform.
    return {"q": rand(B, queries(case)[1], H, Dh, scale=2.0),
            "k": rand(B, T, KVH, Dh),
            "v": rand(B, T, KVH, Dh)}


# ----------------------------------------------------------------------------
# The reference (docs/semantics.md §2, §7)
# ----------------------------------------------------------------------------


def queries(case):
    """(position of the first query, number of queries)."""
    return case.get("offset", (0, case["T"]))


def keys_of(case, i):
    """(local key positions, earlier complete groups) of query i."""
    kind = case["kind"]
    if kind[0] == "full":
        return list(range(0, i + 1)), []
    if kind[0] == "sliding":
        W = kind[1]
        return [j for j in range(0, i + 1) if i - W < j], []
    G, W = kind[1], kind[2]
    g = i // G
    local = list(range(max(g * G, i - W + 1), i + 1))
    return local, list(range(g))


def reference(case, inputs):
    q, k, v = (inputs[n].astype(np.float64) for n in ("q", "k", "v"))
    B, T, H, Dh = q.shape
    KVH = k.shape[2]
    first = queries(case)[0]
    out = np.zeros_like(q)
    key_counts = []
    for b in range(B):
        for i in range(T):
            local, groups = keys_of(case, first + i)
            key_counts.append(len(local) + len(groups))
            for h in range(H):
                kvh = h * KVH // H
                keys = [k[b, j, kvh] for j in local]
                values = [v[b, j, kvh] for j in local]
                G = case["kind"][1] if groups else 0
                for g in groups:
                    keys.append(k[b, g * G:(g + 1) * G, kvh].mean(axis=0))
                    values.append(v[b, g * G:(g + 1) * G, kvh].mean(axis=0))
                scores = np.array([q[b, i, h] @ key for key in keys])
                scores /= np.sqrt(Dh)
                p = np.exp(scores - scores.max())
                p /= p.sum()
                out[b, i, h] = sum(pj * vj for pj, vj in zip(p, values))
    return out, key_counts


# ----------------------------------------------------------------------------
# MLIR emission
# ----------------------------------------------------------------------------




def op_text(case, q, k, v, tq, tkv):
    kind = case["kind"]
    offset, operands = "", "%s, %s, %s" % (tq, tkv, tkv)
    if "offset" in case:
        offset, operands = " offset(%off)", operands + ", index"
    if kind[0] == "grouped":
        head = "moe.grouped_attention %s, %s, %s group_size(%d) window(%d)" % (
            q, k, v, kind[1], kind[2])
    elif kind[0] == "sliding":
        head = "moe.attention %s, %s, %s%s window(%d)" % (q, k, v, offset,
                                                          kind[1])
    else:
        head = "moe.attention %s, %s, %s%s" % (q, k, v, offset)
    return "%s\n      : (%s) -> %s" % (head, operands, tq)


def emit(name, case, inputs):
    B, T, H, KVH, Dh = (case[k] for k in ("B", "T", "H", "KVH", "Dh"))
    elt = dtype_of(case)
    static = case.get("static", False)
    # Dynamic batch and tokens unless the case asks for static shapes.
    bt = (B, T) if static else (None, None)
    first, Tq = queries(case)
    bq = (B, Tq) if static else (None, None)
    tq, tkv = mlir_type(bq + (H, Dh), elt), mlir_type(bt + (KVH, Dh), elt)
    cq, ckv = mlir_type((B, Tq, H, Dh), elt), mlir_type((B, T, KVH, Dh), elt)
    tout = mlir_type((B, Tq, H, Dh), "f32")
    # With an offset, @attend takes it as a (dynamic) index.
    off_arg, off_use, off_type = "", "", ""
    if "offset" in case:
        off_arg, off_use, off_type = ", %off: index", ", %off", ", index"
    lines = ["// attention case %r, generated by attention_reference.py" % name,
             "func.func private @printMemrefF32(tensor<*xf32>)", "",
             "func.func @attend(%%q: %s, %%k: %s, %%v: %s%s) -> %s {" % (
                 tq, tkv, tkv, off_arg, tq),
             "  %%o = %s" % op_text(case, "%q", "%k", "%v", tq, tkv),
             "  return %%o : %s" % tq, "}", "", "func.func @main() {"]
    for key, const, arg in (("q", cq, tq), ("k", ckv, tkv), ("v", ckv, tkv)):
        lines.append("  %%%s0 = arith.constant dense<%s> : %s" % (
            key, dense(inputs[key]), const))
        lines.append("  %%%s = tensor.cast %%%s0 : %s to %s" % (
            key, key, const, arg))
    if off_arg:
        lines.append("  %%off = arith.constant %d : index" % first)
    lines.append("  %%o = call @attend(%%q, %%k, %%v%s) : (%s, %s, %s%s) -> %s" % (
        off_use, tq, tkv, tkv, off_type, tq))
    lines.append("  %%oc = tensor.cast %%o : %s to %s" % (tq, cq))
    if elt == "f32":
        lines.append("  %%wide = tensor.cast %%oc : %s to %s" % (cq, tout))
    else:
        # Widen to f32 to print.
        lines += [
            "  %%init = tensor.empty() : %s" % tout,
            "  %wide = linalg.generic {",
            "      indexing_maps = [affine_map<(a, b, c, d) -> (a, b, c, d)>,",
            "                       affine_map<(a, b, c, d) -> (a, b, c, d)>],",
            "      iterator_types = [\"parallel\", \"parallel\", \"parallel\","
            " \"parallel\"]}",
            "      ins(%%oc : %s) outs(%%init : %s) {" % (cq, tout),
            "  ^bb0(%%x: %s, %%y: f32):" % elt,
            "    %%e = arith.extf %%x : %s to f32" % elt,
            "    linalg.yield %e : f32",
            "  } -> %s" % tout]
    lines += [
        "  %%u = tensor.cast %%wide : %s to tensor<*xf32>" % tout,
        "  call @printMemrefF32(%u) : (tensor<*xf32>) -> ()",
        "  return", "}"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------
# Checking
# ----------------------------------------------------------------------------


def check(name, case, inputs, output):
    expected, key_counts = reference(case, inputs)
    err, failure = printed_error(name, output, expected)
    if failure:
        return failure
    verdict = "PASS" if err <= TOLERANCE[dtype_of(case)] else "FAIL"
    detail = "keys per query %s" % key_counts[:case["T"]]
    if case["kind"][0] == "sliding":
        full, _ = reference(dict(case, kind=("full",)), inputs)
        detail += ", %s full attention" % (
            "same as" if np.array_equal(full, expected) else "unlike")
    return "%s %s: max rel error %.2e (%s)" % (verdict, name, err, detail)


def main(argv):
    if len(argv) < 3 or argv[1] not in ("emit", "check") or argv[2] not in CASES:
        sys.exit("usage: attention_reference.py emit|check CASE [OUTPUT]\n"
                 "cases: " + ", ".join(CASES))
    name = argv[2]
    case = CASES[name]
    inputs = make_inputs(name, case)
    if argv[1] == "emit":
        sys.stdout.write(emit(name, case, inputs))
    else:
        with open(argv[3]) as f:
            print(check(name, case, inputs, f.read()))


if __name__ == "__main__":
    main(sys.argv)
