#!/usr/bin/python3
"""An independent reference of a whole moec model, written from docs/semantics.md.

Reads a Hugging Face style config.json (docs/semantics.md §1), a .safetensors file
(read here by hand) and token ids, and computes the logits [B, T, V] and the
per-layer statistics of docs/semantics.md §8 in the `--stats` JSON format of
docs/contracts.md. Nothing here comes from moec: the math is docs/semantics.md §2-§7,
computed in float64 except where docs/semantics.md fixes float32 (router softmax and
the routing decisions on it, RoPE frequencies as Hugging Face computes them).

    model_reference.py run CONFIG WEIGHTS --tokens 1,5,9 | --tokens ids.npy
                           [--logits out.npy] [--stats stats.json]
    model_reference.py compare CONFIG WEIGHTS --tokens ... --logits moec.npy
                           [--stats moec_stats.json] [--tolerance X]
    model_reference.py generate CONFIG WEIGHTS --tokens ... --steps N
                           [--eos ID] [--ids moec.npy] [--logits moec.npy]
                           [--stats moec_stats.json]
    model_reference.py sampling CONFIG --logits L.npy --ids moec.npy
                           [--temperature T] [--top-k K] [--top-p P]
    model_reference.py tokens CONFIG OUT.npy --shape B,T [--seed N]
    model_reference.py validate CONFIG --tokens ... --logits L.npy
                           [--stats S.json]

`compare` prints the max relative error max|a-b|/max|b| (b the reference),
PASS or FAIL at 1e-4 (f32 weights) or 2e-2 (any bf16 weight), and whether
the statistics match exactly; its exit status is 0 only when all pass.
`compare --logits-positions P` compares the last P positions only.
`generate` continues each sequence greedily (docs/semantics.md §9: the
largest logit, the lowest id among equal ones; a sequence that produced
--eos continues with it; every step a full forward pass over the sequence
so far) and compares moec's ids (exactly), the logits of the generated
positions and the statistics of the tokens fed. `sampling` checks moec's
sampled ids for one step against the filtered distribution of §9 computed
from moec's own logits (all the same prompt): every id in the support, and
the total variation distance between the empirical and the filtered
distribution within 4 / sqrt(samples).
`validate` checks only the form of a run's outputs (anyone's: moec's or
this reference's): float32 finite logits [B, T, V], and stats in the
docs/contracts.md contract format with consistent counts for these tokens.
Routing decisions within 1e-5 of their threshold (top_p prefix sums, the
threshold policy, ADR levels, near-ties at the edge of the chosen set) are
reported as `warning:` lines, since f32 rounding could flip them.

Choices that docs/semantics.md leaves to moec, as this reference makes them:
  * MH-MoE with ADR: the complexity c is computed on the un-split token and
    every sub-token inherits its token's level (simple sub-tokens get the
    simple_max_experts cap); the deep expert acts on the un-split token.
  * Statistics: one entry per layer that has a MoE block (qwen2_moe's dense
    layers have none). With MH-MoE a routed unit is a sub-token: the
    tokens_per_expert, the mean and the histogram count sub-tokens, while
    simple_token_fraction counts tokens. A batch is counted as a whole.
  * The routing weights of a capped (ADR simple) token follow the policy's
    normalisation over the experts actually chosen.

Needs NumPy (Debian's /usr/bin/python3).
"""

import argparse
import json
import math
import struct
import sys

import numpy as np

# Decisions closer than this to their threshold are reported.
BOUNDARY_MARGIN = 1e-5
TOLERANCE = {"f32": 1e-4, "bf16": 2e-2}


# ----------------------------------------------------------------------------
# Inputs: config (docs/semantics.md §1), safetensors, tokens
# ----------------------------------------------------------------------------


class Config:
    """The numbers of a config.json that the forward pass uses (docs/semantics.md §1-§7).

    Defaults follow Hugging Face's MixtralConfig and Qwen2MoeConfig where a
    key is optional. Validation beyond what the math needs is moec's job.
    """

    def __init__(self, raw):
        self.raw = raw
        t = raw["model_type"]
        if t not in ("mixtral", "qwen2_moe"):
            raise ValueError("model_type %r is not mixtral or qwen2_moe" % t)
        self.qwen = t == "qwen2_moe"
        self.D = raw["hidden_size"]
        self.L = raw["num_hidden_layers"]
        self.H = raw["num_attention_heads"]
        self.KVH = raw.get("num_key_value_heads") or self.H
        self.Dh = raw.get("head_dim") or self.D // self.H
        self.V = raw["vocab_size"]
        self.eps = raw.get("rms_norm_eps", 1e-6 if self.qwen else 1e-5)
        self.theta = raw.get("rope_theta", 10000.0 if self.qwen else 1e6)
        self.tie = bool(raw.get("tie_word_embeddings", False))
        if self.qwen:
            self.E = raw["num_experts"]
            self.F = raw["moe_intermediate_size"]
            self.normalize_topk = bool(raw.get("norm_topk_prob", False))
            self.sparse_step = raw.get("decoder_sparse_step") or 1
            self.mlp_only = list(raw.get("mlp_only_layers") or [])
            if raw.get("use_sliding_window", False):
                raise ValueError("use_sliding_window is not supported")
        else:
            self.E = raw["num_local_experts"]
            self.F = raw["intermediate_size"]
            self.normalize_topk = True  # always for mixtral (docs/semantics.md §3)
        self.k = raw["num_experts_per_tok"]

        ext = raw.get("moec") or {}
        r = ext.get("routing") or {}
        self.policy = r.get("policy", "top_k")
        self.threshold = r.get("threshold")
        self.max_experts = r.get("max_experts")
        self.normalize_dyn = bool(r.get("normalize", False))
        self.schedule = ext.get("expert_schedule")
        # docs/semantics.md §5: a multi_head object means the head and merge projections,
        # whatever h (h = 1 keeps them); without it there are none.
        self.multi_head = ext.get("multi_head") is not None
        self.heads = ext["multi_head"]["heads"] if self.multi_head else 1
        self.dual = ext.get("shared_experts")
        self.adr = ext.get("adaptive_routing")

        # Attention (docs/semantics.md §2, §7): mixtral's sliding_window, then "moec".
        self.attn, self.window, self.group = "full", None, None
        if not self.qwen and raw.get("sliding_window") is not None:
            self.attn, self.window = "sliding", raw["sliding_window"]
        a = ext.get("attention")
        if a:
            if a["kind"] == "full":
                self.attn, self.window = "full", None
            elif a["kind"] == "sliding":
                self.window = a.get("window", self.window)
                self.attn = "sliding"
            else:
                self.attn = "grouped"
                self.window, self.group = a["window"], a["group_size"]

    def sparse(self, l):
        """Whether layer l has a MoE block (docs/semantics.md §2, qwen2_moe rule)."""
        if not self.qwen:
            return True
        return l not in self.mlp_only and (l + 1) % self.sparse_step == 0

    def experts(self, l):
        """E_l of docs/semantics.md §4; round(x) = floor(x + 0.5)."""
        s = self.schedule
        if not s:
            return self.E
        lo, hi = s["min_experts"], s["max_experts"]
        delta = hi - lo
        t = l / (self.L - 1) if self.L > 1 else 0.0
        tent = 1.0 - abs(2.0 * t - 1.0)
        kind = s["kind"]
        if kind == "uniform":
            return hi
        if kind == "descending":
            x = hi - delta * t
        elif kind == "ascending":
            x = lo + delta * t
        elif kind == "pyramid":
            x = lo + delta * tent
        elif kind == "hourglass":
            x = hi - delta * tent
        elif kind == "wave":
            # docs/semantics.md §4 in exact arithmetic at whole periods (sin = 0): the
            # phase from l mod period, not a rounded 2*pi*l/period.
            p = s["period"]
            x = lo + delta * (1.0 + math.sin(2.0 * math.pi * (l % p) / p)) / 2.0
        else:
            raise ValueError("unknown expert_schedule kind %r" % kind)
        return int(math.floor(x + 0.5))

    def block_prefix(self, l):
        return "model.layers.%d.%s." % (l, "mlp" if self.qwen else
                                        "block_sparse_moe")


def read_config(path):
    with open(path) as f:
        return Config(json.load(f))


def read_safetensors(path):
    """{name: float32 array} and the set of dtypes, from one .safetensors.

    Format: u64 little-endian header size N, N bytes of JSON {name: {dtype,
    shape, data_offsets}} (offsets relative to the end of the header), data.
    BF16 values become the f32 values with the same upper 16 bits.
    """
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    tensors, dtypes = {}, set()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin:base + end]
        dtype, shape = info["dtype"], tuple(info["shape"])
        if dtype == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            a = bits.view(np.float32)
        elif dtype == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        else:
            raise ValueError("%s: tensor %s has unsupported dtype %s" %
                             (path, name, dtype))
        tensors[name] = a.reshape(shape)
        dtypes.add(dtype)
    return tensors, dtypes


def read_tokens(spec):
    """[B, T] int64 ids from a comma list (one sequence) or a .npy file."""
    if spec.endswith(".npy"):
        t = np.load(spec)
    else:
        t = np.array([int(x) for x in spec.split(",") if x.strip()])
    t = np.asarray(t, dtype=np.int64)
    if t.ndim == 1:
        t = t[None, :]
    if t.ndim != 2:
        raise ValueError("tokens must be [T] or [B, T], got %s" % (t.shape,))
    return t


# ----------------------------------------------------------------------------
# The model (docs/semantics.md §2-§7)
# ----------------------------------------------------------------------------


# "bf16": the inputs of the matrix products are rounded to bf16 first, as
# the tensor-core GEMMs of a bf16 build on sm_90a do (docs/semantics.md,
# "Numeric conventions"): every product whose weight has N and K multiples
# of 8, except the router's logits; and so are the queries, keys and values
# of attention where the tensor-core kernel takes it (Dh a multiple of 16 up
# to 128, H / KVH dividing 64), and GMHA's summaries (rounded after the
# mean); there the softmax is the kernel's blocked one, its weights rounded
# to bf16 (flash_attention_bf16). Set by --gemm-inputs.
GEMM_INPUTS = "f32"


def to_bf16(x):
    """x rounded to the nearest bf16 (ties to even), as float64."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32).astype(np.float64)


def mm(x, w):
    """x · wᵀ for a weight w [N, K], under GEMM_INPUTS."""
    if GEMM_INPUTS == "bf16" and w.shape[0] % 8 == 0 and w.shape[1] % 8 == 0:
        x = to_bf16(x)
    return x @ w.T


def silu(x):
    return x / (1.0 + np.exp(-x))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def swiglu(x, w1, w3, w2):
    """Expert(h) = W2·(silu(W1·h) ⊙ W3·h) (docs/semantics.md §2)."""
    return mm(silu(mm(x, w1)) * mm(x, w3), w2)


def rms_norm(x, w, eps):
    """x / sqrt(mean(x²) + eps) * w (docs/semantics.md §2)."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def softmax_f32(logits):
    """Row softmax in float32 (docs/semantics.md §2: the router's p is f32)."""
    z = logits.astype(np.float32)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True, dtype=np.float32)).astype(
        np.float32)


def rope_tables(T, Dh, theta):
    """cos and sin [T, Dh], rotate-half convention (docs/semantics.md §2).

    As Hugging Face: inv_freq = 1 / theta^(2i/Dh) in float32, angle =
    position · inv_freq in float32, then duplicated over both halves.
    """
    exponent = np.arange(0, Dh, 2, dtype=np.int64).astype(np.float32) / np.float32(Dh)
    inv_freq = (np.float32(1.0) / np.power(np.float32(theta), exponent)).astype(np.float32)
    angle = np.outer(np.arange(T, dtype=np.float32), inv_freq).astype(np.float32)
    angle = np.concatenate([angle, angle], axis=-1).astype(np.float64)
    return np.cos(angle), np.sin(angle)


def apply_rope(x, cos, sin):
    """x [B, T, heads, Dh]: x·cos + rotate_half(x)·sin."""
    half = x.shape[-1] // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[None, :, None, :] + rotated * sin[None, :, None, :]


def attention_mask(cfg, T):
    """[T, T] bool: may query i see key j (causal, sliding: i - W < j)."""
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    mask = j <= i
    if cfg.attn == "sliding":
        mask &= j > i - cfg.window
    return mask


def flash_attention_bf16(q, sources):
    """Softmax attention as the sm_90a tensor-core kernel computes it, for
    one head: q [T, Dh] (bf16 values); `sources` a list of (keys [N, Dh],
    values [N, Dh], mask [T, N]) walked in order, each in blocks of 64 keys
    under one online softmax. Scores and sums in f32, in log2 units
    (exp2(s · log2(e) / sqrt(Dh) − running max)); the weights rounded to
    bf16 before they multiply the values (the rounding this reproduces,
    which depends on each block's running max); f32 accumulation.
    """
    T, Dh = q.shape
    f32 = np.float32
    scale = f32(math.log2(math.e) / math.sqrt(Dh))
    m = np.full(T, -np.inf, f32)
    l = np.zeros(T, f32)
    acc = np.zeros((T, Dh), f32)
    for keys, vals, mask in sources:
        for j0 in range(0, keys.shape[0], 64):
            x = (q @ keys[j0:j0 + 64].T).astype(f32) * scale
            x = np.where(mask[:, j0:j0 + 64], x, f32(-np.inf))
            m_new = np.maximum(m, x.max(axis=1, initial=-np.inf))
            m_use = np.where(m_new == -np.inf, f32(0), m_new)
            alpha = np.exp2(m - m_use).astype(f32)
            p = np.exp2(x - m_use[:, None]).astype(f32)
            l = (l * alpha + p.sum(axis=1, dtype=f32)).astype(f32)
            acc = (acc * alpha[:, None]
                   + (to_bf16(p) @ vals[j0:j0 + 64]).astype(f32)).astype(f32)
            m = m_new
    return acc.astype(np.float64) / np.where(l > 0, l, 1)[:, None]


def grouped_attention(q, k, v, G, W, bf16=False):
    """GMHA of docs/semantics.md §7 for one sequence and one head: q, k, v [T, Dh].

    Query i in group g = i // G sees local keys max(g·G, i−W+1) ≤ j ≤ i and
    one summary per earlier group g' < g (mean of its keys after RoPE and of
    its values), all in one softmax with the 1/sqrt(Dh) scale. With `bf16`,
    the operands and the summaries (means of the unrounded keys and values)
    are rounded to bf16 and the softmax is the tensor-core kernel's
    (flash_attention_bf16: the summaries first, then the local keys).
    """
    T, Dh = q.shape
    nG = T // G  # complete groups; only those before a query are seen
    ks = k[:nG * G].reshape(nG, G, Dh).mean(axis=1)
    vs = v[:nG * G].reshape(nG, G, Dh).mean(axis=1)
    if bf16:
        q, k, v, ks, vs = (to_bf16(x) for x in (q, k, v, ks, vs))
    i = np.arange(T)[:, None]
    g = i // G
    j = np.arange(T)[None, :]
    local = (j <= i) & (j >= np.maximum(g * G, i - W + 1))
    summary = np.arange(nG)[None, :] < g
    if bf16:
        return flash_attention_bf16(q, [(ks, vs, summary), (k, v, local)])
    keys = np.concatenate([k, ks], axis=0)
    vals = np.concatenate([v, vs], axis=0)
    mask = np.concatenate([local, summary], axis=1)
    s = q @ keys.T / math.sqrt(Dh)
    s = np.where(mask, s, -np.inf)
    s = np.exp(s - s.max(axis=1, keepdims=True))
    return (s / s.sum(axis=1, keepdims=True)) @ vals


def attention(cfg, w, prefix, h, B, T):
    """Self-attention of docs/semantics.md §2 and §7 on h [B·T, D]."""
    H, KVH, Dh = cfg.H, cfg.KVH, cfg.Dh

    def proj(name, heads):
        y = mm(h, w[prefix + "self_attn.%s.weight" % name])
        if cfg.qwen:
            y = y + w[prefix + "self_attn.%s.bias" % name]
        return y.reshape(B, T, heads, Dh)

    cos, sin = rope_tables(T, Dh, cfg.theta)
    q = apply_rope(proj("q_proj", H), cos, sin)
    k = apply_rope(proj("k_proj", KVH), cos, sin)
    v = proj("v_proj", KVH)
    tensor_cores = (GEMM_INPUTS == "bf16" and Dh % 16 == 0 and Dh <= 128
                    and 64 % (H // KVH) == 0)
    if tensor_cores and cfg.attn != "grouped":
        q, k, v = to_bf16(q), to_bf16(k), to_bf16(v)
    o = np.empty((B, T, H, Dh))
    mask = attention_mask(cfg, T)
    for b in range(B):
        for hd in range(H):
            kv = hd * KVH // H  # head i uses kv-head ⌊i·KVH/H⌋
            if cfg.attn == "grouped":
                o[b, :, hd] = grouped_attention(q[b, :, hd], k[b, :, kv],
                                                v[b, :, kv], cfg.group,
                                                cfg.window, tensor_cores)
                continue
            if tensor_cores:
                o[b, :, hd] = flash_attention_bf16(
                    q[b, :, hd], [(k[b, :, kv], v[b, :, kv], mask)])
                continue
            s = q[b, :, hd] @ k[b, :, kv].T / math.sqrt(Dh)
            s = np.where(mask, s, -np.inf)
            s = np.exp(s - s.max(axis=1, keepdims=True))
            o[b, :, hd] = (s / s.sum(axis=1, keepdims=True)) @ v[b, :, kv]
    return mm(o.reshape(B * T, H * Dh), w[prefix + "self_attn.o_proj.weight"])


def route(cfg, p, El, cap, where, warnings):
    """The routing of docs/semantics.md §3 for rows of f32 probabilities p [R, El].

    `cap` [R] is an extra per-row cap on the count (ADR simple tokens) or
    None. Returns (chosen [R, El] bool, weights [R, El] f64, count [R]).
    Ties go to the lower expert index (a stable sort).
    """
    R = p.shape[0]
    order = np.argsort(-p, axis=1, kind="stable")
    ps = np.take_along_axis(p, order, axis=1)
    if cfg.policy == "top_k":
        count = np.full(R, min(cfg.k, El))
        normalize = cfg.normalize_topk
        limit = count.copy()
    elif cfg.policy == "top_p":
        thr = np.float32(cfg.threshold)
        cum = np.cumsum(ps, axis=1, dtype=np.float32)
        above = cum > thr  # strictly greater
        count = np.where(above.any(axis=1), above.argmax(axis=1) + 1, El)
        normalize = cfg.normalize_dyn
        limit = np.full(R, El if cfg.max_experts is None else min(cfg.max_experts, El))
        if cap is not None:
            limit = np.minimum(limit, cap)
        # Prefix sum j near the threshold: K is j+1 or j+2; does it matter?
        near = np.abs(cum - thr) < BOUNDARY_MARGIN
        for r, j in zip(*np.nonzero(near)):
            if min(j + 1, limit[r]) != min(j + 2, limit[r]):
                warnings.append("%s row %d: top_p prefix sum %.8g of %d experts "
                                "is within %g of the threshold %g" %
                                (where, r, cum[r, j], j + 1, BOUNDARY_MARGIN,
                                 cfg.threshold))
    elif cfg.policy == "threshold":
        thr = np.float32(cfg.threshold)
        count = np.maximum(1, (p > thr).sum(axis=1))
        normalize = cfg.normalize_dyn
        limit = np.full(R, El if cfg.max_experts is None else min(cfg.max_experts, El))
        near = (np.abs(p - thr) < BOUNDARY_MARGIN).any(axis=1)
        for r in np.nonzero(near)[0]:
            warnings.append("%s row %d: a probability is within %g of the "
                            "threshold %g" % (where, r, BOUNDARY_MARGIN,
                                              cfg.threshold))
    else:
        raise ValueError("unknown routing policy %r" % cfg.policy)
    count = np.minimum(count, limit)
    if cap is not None:
        count = np.minimum(count, cap)
    count = count.astype(np.int64)

    # A near-tie across the edge of the chosen set could swap experts.
    for r in range(R):
        c = count[r]
        if 0 < c < El and ps[r, c - 1] - ps[r, c] < BOUNDARY_MARGIN:
            warnings.append("%s row %d: experts %d and %d are within %g in "
                            "probability at the edge of the chosen set" %
                            (where, r, order[r, c - 1], order[r, c],
                             BOUNDARY_MARGIN))

    ranked = np.arange(El)[None, :] < count[:, None]
    chosen = np.zeros((R, El), dtype=bool)
    np.put_along_axis(chosen, order, ranked, axis=1)
    weights = np.where(chosen, p.astype(np.float64), 0.0)
    if normalize:
        weights = weights / weights.sum(axis=1, keepdims=True)
    return chosen, weights, count


def moe_block(cfg, w, l, h, warnings):
    """The MoE block of layer l on h [N, D] (docs/semantics.md §2, §3, §5, §6).

    Returns (y [N, D], stats entry of docs/semantics.md §8).
    """
    m = cfg.block_prefix(l)
    N, D = h.shape
    El = cfg.experts(l)
    heads = cfg.heads
    dr = D // heads
    where = "layer %d" % l

    # ADR (§6): complexity on the un-split token; sub-tokens inherit (ours).
    complexity = simple = None
    cap = None
    if cfg.adr:
        level = cfg.adr["level_threshold"]
        z = mm(h, w[m + "complexity_gate.weight"]) + w[m + "complexity_gate.bias"]
        complexity = sigmoid(z)[:, 0]
        simple = complexity < level
        for n in np.nonzero(np.abs(complexity - level) < BOUNDARY_MARGIN)[0]:
            warnings.append("%s token %d: complexity %.8g is within %g of the "
                            "level threshold %g" % (where, n, complexity[n],
                                                    BOUNDARY_MARGIN, level))
        cap = np.where(np.repeat(simple, heads),
                       cfg.adr["simple_max_experts"], El)

    # MH-MoE (§5): sub-token n·heads + j is u[n, j·dr:(j+1)·dr].
    u = h
    if cfg.multi_head:
        u = mm(h, w[m + "multi_head.weight"]) + w[m + "multi_head.bias"]
    sub = u.reshape(N * heads, dr)

    logits = (sub @ w[m + "gate.weight"].T).astype(np.float32)
    p = softmax_f32(logits)
    chosen, weights, count = route(cfg, p, El, cap, where, warnings)

    names = (("gate_proj", "up_proj", "down_proj") if cfg.qwen
             else ("w1", "w3", "w2"))
    routed = np.zeros_like(sub)
    for e in range(El):
        rows = np.nonzero(chosen[:, e])[0]
        if len(rows) == 0:
            continue
        ws = [w[m + "experts.%d.%s.weight" % (e, n)] for n in names]
        routed[rows] += weights[rows, e:e + 1] * swiglu(sub[rows], *ws)
    y = routed.reshape(N, D)
    if cfg.multi_head:
        y = mm(y, w[m + "merge.weight"]) + w[m + "merge.bias"]

    if cfg.qwen:  # the shared expert of qwen2_moe, on the un-split token
        gate = sigmoid(mm(h, w[m + "shared_expert_gate.weight"]))
        y = y + gate * swiglu(h, *[w[m + "shared_expert.%s.weight" % n]
                                   for n in names])
    if cfg.dual:  # DSSE (§6)
        y = y + swiglu(h, *[w[m + "shallow_expert.%s.weight" % n]
                            for n in ("w1", "w3", "w2")])
        deep = [w[m + "deep_expert.%s.weight" % n] for n in ("w1", "w3", "w2")]
        if complexity is None:
            y = y + swiglu(h, *deep)
        else:  # complex tokens only, scaled by c
            rows = np.nonzero(~simple)[0]
            y[rows] += complexity[rows, None] * swiglu(h[rows], *deep)

    stats = {
        "layer": l,
        "experts": El,
        "tokens_per_expert": [int(x) for x in chosen.sum(axis=0)],
        "experts_per_token_mean": float(count.mean()) if len(count) else 0.0,
        "experts_per_token_histogram":
            [int(x) for x in np.bincount(count, minlength=El + 1)],
        "simple_token_fraction":
            float(simple.mean()) if simple is not None and N else 0.0,
    }
    return y, stats


def forward(cfg, weights, tokens):
    """Logits [B, T, V] (float64), stats {"layers": [...]} and warnings."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    B, T = tokens.shape
    if tokens.size and (tokens.min() < 0 or tokens.max() >= cfg.V):
        raise ValueError("token ids must be in [0, %d)" % cfg.V)
    warnings, layers = [], []
    x = w["model.embed_tokens.weight"][tokens.reshape(-1)]
    for l in range(cfg.L):
        p = "model.layers.%d." % l
        h = rms_norm(x, w[p + "input_layernorm.weight"], cfg.eps)
        x = x + attention(cfg, w, p, h, B, T)
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], cfg.eps)
        if cfg.sparse(l):
            y, stats = moe_block(cfg, w, l, h, warnings)
            layers.append(stats)
        else:  # qwen2_moe dense SwiGLU MLP
            y = swiglu(h, *[w[p + "mlp.%s.weight" % n]
                            for n in ("gate_proj", "up_proj", "down_proj")])
        x = x + y
    x = rms_norm(x, w["model.norm.weight"], cfg.eps)
    head = w["model.embed_tokens.weight"] if cfg.tie else w["lm_head.weight"]
    logits = mm(x, head).reshape(B, T, cfg.V)
    return logits, {"layers": layers}, warnings


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------


def compare_stats(ref, got):
    """Lines describing every difference between two stats objects."""
    diffs = []
    rl, gl = ref.get("layers", []), got.get("layers", [])
    if len(rl) != len(gl):
        diffs.append("stats: %d layers, expected %d" % (len(gl), len(rl)))
    for r, g in zip(rl, gl):
        for key in ("layer", "experts", "tokens_per_expert",
                    "experts_per_token_histogram"):
            if r[key] != g.get(key):
                diffs.append("stats layer %s: %s is %s, expected %s" %
                             (r["layer"], key, g.get(key), r[key]))
        for key in ("experts_per_token_mean", "simple_token_fraction"):
            gv = g.get(key)
            if not isinstance(gv, (int, float)) or abs(gv - r[key]) > 1e-6:
                diffs.append("stats layer %s: %s is %s, expected %s" %
                             (r["layer"], key, gv, r[key]))
    return diffs


def report_stats(ref, path):
    """Prints how moec's statistics in `path` compare with `ref`; True if
    they match exactly."""
    with open(path) as f:
        diffs = compare_stats(ref, json.load(f))
    for line in diffs[:20]:
        print("  " + line)
    print("%s stats: %s" % ("PASS" if not diffs else "FAIL",
                            "match exactly" if not diffs else
                            "%d differences" % len(diffs)))
    return not diffs


def validate_outputs(cfg, tokens, logits, stats):
    """Problems with the form of logits and stats (docs/contracts.md contracts)."""
    problems = []
    B, T = tokens.shape
    if logits.dtype != np.float32:
        problems.append("logits dtype %s, expected float32" % logits.dtype)
    if logits.shape != (B, T, cfg.V):
        problems.append("logits shape %s, expected %s" %
                        (list(logits.shape), [B, T, cfg.V]))
    if not np.isfinite(logits).all():
        problems.append("logits has non-finite values")
    if stats is None:
        return problems
    if not isinstance(stats, dict) or set(stats) != {"layers"}:
        return problems + ['stats: expected {"layers": [...]}']
    moe_layers = [l for l in range(cfg.L) if cfg.sparse(l)]
    layers = stats["layers"]
    if [e.get("layer") if isinstance(e, dict) else None
            for e in layers] != moe_layers:
        problems.append("stats: layers %s, expected the MoE layers %s" %
                        ([e.get("layer") for e in layers
                          if isinstance(e, dict)], moe_layers))
    keys = {"layer", "experts", "tokens_per_expert", "experts_per_token_mean",
            "experts_per_token_histogram", "simple_token_fraction"}
    units = B * T * cfg.heads  # routed (sub-)tokens per layer
    for e in layers:
        if not isinstance(e, dict) or set(e) != keys:
            problems.append("stats: layer entry keys %s, expected %s" %
                            (sorted(e) if isinstance(e, dict) else e,
                             sorted(keys)))
            continue
        l, El = e["layer"], cfg.experts(e["layer"])
        where = "stats layer %s: " % l
        tpe, hist = e["tokens_per_expert"], e["experts_per_token_histogram"]
        ints = lambda xs: isinstance(xs, list) and all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 0
            for x in xs)
        if e["experts"] != El:
            problems.append(where + "experts %s, expected E_l = %d" %
                            (e["experts"], El))
        if not ints(tpe) or len(tpe) != El:
            problems.append(where + "tokens_per_expert must be %d counts" % El)
            continue
        if not ints(hist) or len(hist) != El + 1:
            problems.append(where + "experts_per_token_histogram must be %d "
                            "counts" % (El + 1))
            continue
        if sum(hist) != units:
            problems.append(where + "histogram counts %d units, expected %d" %
                            (sum(hist), units))
        routed = sum(k * n for k, n in enumerate(hist))
        if sum(tpe) != routed:
            problems.append(where + "tokens_per_expert sum %d != %d (from the "
                            "histogram)" % (sum(tpe), routed))
        mean = e["experts_per_token_mean"]
        if not isinstance(mean, (int, float)) or (
                units and abs(mean - routed / units) > 1e-6):
            problems.append(where + "experts_per_token_mean %s, expected %s" %
                            (mean, routed / units if units else 0))
        f = e["simple_token_fraction"]
        if not isinstance(f, (int, float)) or not 0 <= f <= 1 or (
                not cfg.adr and f != 0):
            problems.append(where + "simple_token_fraction %s out of range" % f)
    return problems


def generate(cfg, weights, tokens, steps, eos):
    """Greedy continuation: ids [B, N], the logits of the generated positions
    [B, N, V] (NaN for steps not run) and the stats of the last pass."""
    B = tokens.shape[0]
    ids = np.zeros((B, steps), dtype=np.int64)
    out = np.full((B, steps, cfg.V), np.nan)
    seq, finished, stats, margins = tokens, np.zeros(B, bool), None, []
    for step in range(steps):
        logits, stats, _ = forward(cfg, weights, seq)
        last = logits[:, -1]
        out[:, step] = last
        top2 = np.sort(last, axis=1)[:, -2:]
        margins.append(float((top2[:, 1] - top2[:, 0]).min()))
        nxt = np.argmax(last, axis=1)  # the first maximum: the lowest id
        if eos is not None:
            nxt = np.where(finished, eos, nxt)
            finished |= nxt == eos
        ids[:, step] = nxt
        if eos is not None and finished.all():
            ids[:, step + 1:] = eos
            break
        seq = np.concatenate([seq, nxt[:, None]], axis=1)
    return ids, out, stats, min(margins)


def filtered_distribution(logits, temperature, top_k, top_p):
    """The probabilities of docs/semantics.md §9 over the vocabulary."""
    z = logits.astype(np.float64) / temperature
    order = sorted(range(len(z)), key=lambda i: (-z[i], i))
    if top_k:
        order = order[:top_k]
    p = np.exp(z[order] - z[order[0]])
    keep, mass = 0, 0.0
    while keep < len(order) and mass < top_p * p.sum():
        mass += p[keep]
        keep += 1
    keep = max(keep, 1)
    dist = np.zeros(len(z))
    dist[order[:keep]] = p[:keep] / p[:keep].sum()
    return dist


def check_sampling(args):
    logits, ids = np.load(args.logits), np.load(args.ids)
    first = logits[:, 0]
    if not (first == first[0]).all():
        print("FAIL sampling: the sequences' first-step logits differ (give "
              "the same prompt to every sequence)")
        return 1
    dist = filtered_distribution(first[0], args.temperature, args.top_k,
                                 args.top_p)
    samples = ids[:, 0]
    outside = [int(i) for i in samples if dist[i] == 0]
    counts = np.bincount(samples, minlength=len(dist)) / len(samples)
    tv = 0.5 * float(np.abs(counts - dist).sum())
    bound = 4 / math.sqrt(len(samples))
    ok = not outside and tv <= bound
    print("%s sampling: %d samples, support %d ids, %d outside it, total "
          "variation %.4f (bound %.4f)" % ("PASS" if ok else "FAIL",
                                           len(samples), (dist > 0).sum(),
                                           len(outside), tv, bound))
    return 0 if ok else 1


def check_generation(args, cfg, weights, dtypes):
    tokens = read_tokens(args.tokens)
    ids, logits, stats, margin = generate(cfg, weights, tokens, args.steps,
                                          args.eos)
    ok = True
    if args.ids:
        got = np.load(args.ids)
        same = got.shape == ids.shape and (got == ids).all()
        print("%s ids: %s%s" % (
            "PASS" if same else "FAIL",
            "equal to the greedy reference" if same else
            "got %s, expected %s" % (got.tolist(), ids.tolist()),
            "" if same or margin > BOUNDARY_MARGIN else
            " (note: a top-2 logit gap of %.2e: a tie f32 may break)" % margin))
        ok &= bool(same)
    if args.logits:
        got = np.load(args.logits).astype(np.float64)
        ran = ~np.isnan(logits)
        if got.shape != logits.shape or (np.isnan(got) != ~ran).any():
            print("FAIL logits: shape %s, expected %s with NaN exactly where "
                  "no step ran" % (list(got.shape), list(logits.shape)))
            ok = False
        else:
            dtype = "bf16" if "BF16" in dtypes else "f32"
            tol = TOLERANCE[dtype] if args.tolerance is None else args.tolerance
            err = float(np.abs(got[ran] - logits[ran]).max() /
                        np.abs(logits[ran]).max())
            print("%s logits: max relative error %.3e (tolerance %g)" %
                  ("PASS" if err <= tol else "FAIL", err, tol))
            ok &= err <= tol
    if args.stats:
        ok &= report_stats(stats, args.stats)
    return 0 if ok else 1


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("run", "compare", "tokens", "validate",
                                "generate", "sampling", "-h", "--help"):
        argv.insert(0, "run")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("run", help="logits and stats of the reference")
    cmp_ = sub.add_parser("compare", help="check moec's logits and stats")
    for s in (run, cmp_):
        s.add_argument("config")
        s.add_argument("weights")
        s.add_argument("--tokens", required=True,
                       help="comma list (one sequence) or .npy [T] / [B, T]")
        s.add_argument("--logits", help="run: write; compare: read (.npy)")
        s.add_argument("--stats", help="run: write; compare: read (JSON)")
    run.add_argument("--summary", action="store_true",
                     help="print shape, finiteness and range of the logits")
    cmp_.add_argument("--tolerance", type=float,
                      help="max relative error (default from the weights' "
                           "dtype: 1e-4 f32, 2e-2 bf16)")
    for s_ in (run, cmp_):
        s_.add_argument("--gemm-inputs", choices=("f32", "bf16"), default="f32",
                        help="bf16: model a bf16 build on sm_90a tensor cores, "
                             "whose matrix products (but the router's) and "
                             "causal attention round their inputs to bf16")
    cmp_.add_argument("--logits-positions", type=int,
                      help="moec's logits are of the last P positions")
    gen = sub.add_parser("generate", help="check moec's greedy generation")
    gen.add_argument("config")
    gen.add_argument("weights")
    gen.add_argument("--tokens", required=True)
    gen.add_argument("--steps", type=int, required=True)
    gen.add_argument("--eos", type=int)
    gen.add_argument("--ids", help="moec's --output-ids")
    gen.add_argument("--logits", help="moec's logits of the generated steps")
    gen.add_argument("--stats", help="moec's statistics")
    gen.add_argument("--tolerance", type=float)
    smp = sub.add_parser("sampling", help="check moec's sampled ids")
    smp.add_argument("config")
    smp.add_argument("--logits", required=True)
    smp.add_argument("--ids", required=True)
    smp.add_argument("--temperature", type=float, default=1.0)
    smp.add_argument("--top-k", type=int, default=0)
    smp.add_argument("--top-p", type=float, default=1.0)
    val = sub.add_parser("validate", help="check the form of logits and stats")
    val.add_argument("config")
    val.add_argument("--tokens", required=True)
    val.add_argument("--logits", required=True)
    val.add_argument("--stats")
    tok = sub.add_parser("tokens", help="write random token ids as .npy")
    tok.add_argument("config")
    tok.add_argument("out")
    tok.add_argument("--shape", default="1,16", help="B,T")
    tok.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    global GEMM_INPUTS
    GEMM_INPUTS = getattr(args, "gemm_inputs", "f32")

    cfg = read_config(args.config)
    if args.mode == "tokens":
        B, T = (int(x) for x in args.shape.split(","))
        ids = np.random.default_rng(args.seed).integers(0, cfg.V, (B, T))
        np.save(args.out, ids.astype(np.int64))
        return 0
    if args.mode == "validate":
        tokens = read_tokens(args.tokens)
        stats = None
        if args.stats:
            with open(args.stats) as f:
                stats = json.load(f)
        problems = validate_outputs(cfg, tokens, np.load(args.logits), stats)
        for line in problems:
            print("FAIL " + line)
        if not problems:
            print("OK logits %s float32 finite%s" % (
                list(np.load(args.logits).shape),
                ", stats of %d MoE layers in the contract format" %
                len(stats["layers"]) if stats is not None else ""))
        return 1 if problems else 0

    if args.mode == "sampling":
        return check_sampling(args)
    weights, dtypes = read_safetensors(args.weights)
    if args.mode == "generate":
        return check_generation(args, cfg, weights, dtypes)
    tokens = read_tokens(args.tokens)
    logits, stats, warnings = forward(cfg, weights, tokens)
    for line in warnings:
        print("warning: " + line, file=sys.stderr if args.mode == "run" else
              sys.stdout)

    if args.mode == "run":
        if args.logits:
            np.save(args.logits, logits.astype(np.float32))
        if args.stats:
            with open(args.stats, "w") as f:
                json.dump(stats, f, indent=1)
                f.write("\n")
        if args.summary or not (args.logits or args.stats):
            print("logits shape %s finite %s max|logit| %.4g" %
                  (list(logits.shape), bool(np.isfinite(logits).all()),
                   float(np.abs(logits).max()) if logits.size else 0.0))
        return 0

    if not args.logits:
        ap.error("compare needs --logits (moec's output)")
    try:
        got = np.load(args.logits)
    except (OSError, ValueError) as e:
        print("FAIL logits: cannot read %s: %s" % (args.logits, e))
        return 1
    ok = True
    dtype = "bf16" if "BF16" in dtypes else "f32"
    tol = args.tolerance if args.tolerance is not None else TOLERANCE[dtype]
    if args.logits_positions:
        logits = logits[:, logits.shape[1] - args.logits_positions:]
    if got.shape != logits.shape:
        print("FAIL logits: shape %s, expected %s" % (list(got.shape),
                                                      list(logits.shape)))
        ok = False
    else:
        err = float(np.abs(got.astype(np.float64) - logits).max() /
                    np.abs(logits).max())
        if not np.isfinite(err):
            err = float("inf")
        verdict = "PASS" if err <= tol else "FAIL"
        ok &= verdict == "PASS"
        print("%s logits: max relative error %.3e (tolerance %g, %s weights)"
              % (verdict, err, tol, dtype))
    if args.stats:
        ok &= report_stats(stats, args.stats)
    if warnings:
        print("note: %d routing decisions within %g of a threshold (see the "
              "warnings); a mismatch there may be f32 rounding" %
              (len(warnings), BOUNDARY_MARGIN))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
