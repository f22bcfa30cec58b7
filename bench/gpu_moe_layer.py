#!/usr/bin/env python3
"""The MoE layer forward on a GPU at Mixtral-8x7B shapes: moec against
PyTorch, torch._grouped_mm, a Triton fused-MoE kernel and cuBLAS.

Usage: bench/gpu_moe_layer.py --library libmoe_layer_sm90.so
           [--variant NAME=libmoe_layer_sm90_NAME.so ...]
           [--runtime libmoec_cuda_runtime.so] [--tokens 128,512,...]
           [--runs 10] [--skip-hf]

The layer is Mixtral's sparse block (D = 4096, F = 14336, E = 8, bf16):
router, top-2 (or top-p at 0.5), SwiGLU experts, weighted combine. Rows:

* moec: bench/inputs/gpu-moe-layer.mlir lowered by moe-to-cuda-pipeline
  (the sm_90a tensor-core grouped GEMM) and linked as LIBRARY by
  scripts/gpu-prepare.sh; each call runs on its own stream and returns
  after synchronising it, so it is timed on the host clock (its host
  overhead included);
* moec NAME (each --variant): the same layer built with other
  moe-to-cuda-pipeline options (scripts/gpu-prepare.sh builds `scatter`,
  combine-scatter=true: the down projection adds each row into its token's
  output with atomic adds, instead of a gather kernel after it; and `w256`,
  tile-cols=256: two warpgroups per CTA on 128 x 256 tiles), timed and
  checked the same way;
* hf: Hugging Face's eager MixtralSparseMoeBlock (a loop over experts);
* grouped_mm: the rows sorted by expert and torch._grouped_mm for the
  gate/up and down projections;
* triton: a fused-MoE kernel written the way vLLM's fused_moe works (token
  ids sorted by expert and padded to the block size, one kernel per GEMM,
  the routing weight fused into the second), with SiLU-and-mul between;
* dense: one torch.matmul pair of the same FLOPs (cuBLAS) on as many rows
  as the routing gives, the efficiency baseline: efficiency = dense / moec.

The torch rows are timed with CUDA events. Each row is the median of
--runs calls after warm-up, on inputs rotated among three, so no call finds
its activations in L2. The routing of every method is computed from the
same bf16 inputs in f32; the moec output is checked against an f32
reference (max abs. error / max abs. value). Prints a Markdown table.
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F_

from moec_cuda import CompiledLibrary, memref, memref_type

D, F, E, TOP_K, TOP_P = 4096, 14336, 8, 2, 0.5


class Moec(CompiledLibrary):
    """The compiled layer: `call(name, x, weights)` -> device result."""

    def call(self, name, x, weights, keep=False):
        args = [memref(x)] + [memref(w) for w in weights]
        result = memref_type(x.dim())()
        self.invoke(name, result, args)
        out = None
        if keep:
            out = torch.empty_like(x)
            self.copy_out(result, out)
        self.free(result)
        return out


def routing(x, gate, policy):
    """Per-token expert mask [T, E] and combine weights [T, E], in f32."""
    probs = torch.softmax(x.float() @ gate.float().t(), dim=-1)
    if policy == "top2":
        top, ids = probs.topk(TOP_K, dim=-1)
        top = top / top.sum(-1, keepdim=True)
        weights = torch.zeros_like(probs).scatter(1, ids, top)
        return weights > 0, weights
    # top-p (semantics.md §3): the K most probable experts, K the smallest k
    # whose prefix sum exceeds the threshold; ties to the lower index.
    sorted_p, order = probs.sort(dim=-1, descending=True, stable=True)
    before = sorted_p.cumsum(-1) - sorted_p
    keep = before <= TOP_P
    keep[:, 0] = True
    mask = torch.zeros_like(keep).scatter(1, order, keep)
    weights = torch.where(mask, probs, 0.0)
    return mask, weights


def reference(x, w, policy):
    gate, w1, w3, w2 = w
    mask, weights = routing(x, gate, policy)
    out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    xf = x.float()
    for e in range(E):
        rows = mask[:, e].nonzero().flatten()
        if rows.numel() == 0:
            continue
        h = F_.silu(xf[rows] @ w1[e].float().t()) * (xf[rows] @ w3[e].float().t())
        out[rows] += weights[rows, e, None] * (h @ w2[e].float().t())
    return out


def grouped_mm_layer(x, w, policy, w13t, w2t):
    gate = w[0]
    mask, weights = routing(x, gate, policy)
    token, expert = mask.nonzero(as_tuple=True)        # token-major pairs
    order = expert.argsort(stable=True)
    token, expert = token[order], expert[order]
    offs = torch.bincount(expert, minlength=E).cumsum(0).to(torch.int32)
    h = torch._grouped_mm(x[token], w13t, offs=offs)
    h = F_.silu(h[:, :F]) * h[:, F:]
    y = torch._grouped_mm(h, w2t, offs=offs)
    y = y * weights[token, expert, None].to(y.dtype)
    return torch.zeros_like(x).index_add_(0, token, y)


def hf_block(w):
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock
    cfg = MixtralConfig(hidden_size=D, intermediate_size=F, num_local_experts=E,
                        num_experts_per_tok=TOP_K)
    block = MixtralSparseMoeBlock(cfg).to("cuda", torch.bfloat16).eval()
    gate, w1, w3, w2 = w
    with torch.no_grad():
        for name, p in block.named_parameters():
            if name.endswith("gate.weight"):
                p.copy_(gate)
            elif ".w1." in name or ".w3." in name or ".w2." in name:
                e = int(name.split(".")[1])
                p.copy_({"w1": w1, "w3": w3, "w2": w2}[name.split(".")[2]][e])
            elif name.endswith("gate_up_proj"):   # transformers 5: fused
                fused = torch.cat([w1, w3], dim=1)
                p.copy_(fused if p.shape == fused.shape else fused.transpose(1, 2))
            elif name.endswith("down_proj"):
                p.copy_(w2 if p.shape == w2.shape else w2.transpose(1, 2))
            else:
                raise RuntimeError("unknown HF parameter " + name)

    def run(x):
        out = block(x.unsqueeze(0))
        return (out[0] if isinstance(out, tuple) else out).squeeze(0)
    return run


def triton_layer():
    import triton
    import triton.language as tl

    @triton.jit
    def fused_moe_kernel(a_ptr, b_ptr, c_ptr, w_ptr, sorted_ids, block_expert,
                         num_pairs, pair_token, N, K, stride_am, stride_be,
                         stride_bn, stride_cm, GATHER: tl.constexpr,
                         MUL_WEIGHT: tl.constexpr,
                         BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                         GROUP_M: tl.constexpr):
        pid = tl.program_id(0)
        num_m = tl.cdiv(tl.load(num_pairs + 1), BM)
        num_n = tl.cdiv(N, BN)
        group = pid // (GROUP_M * num_n)
        first_m = group * GROUP_M
        size_m = tl.minimum(num_m - first_m, GROUP_M)
        pid_m = first_m + (pid % size_m)
        pid_n = (pid % (GROUP_M * num_n)) // size_m
        if pid_m >= num_m:
            return
        pairs = tl.load(num_pairs)
        offs_m = pid_m * BM + tl.arange(0, BM)
        pair = tl.load(sorted_ids + offs_m).to(tl.int64)  # [pairs, 2F] > 2^31
        valid = pair < pairs
        expert = tl.load(block_expert + pid_m)
        offs_n = pid_n * BN + tl.arange(0, BN)
        offs_k = tl.arange(0, BK)
        # The first GEMM reads each pair's token row, the second its own row.
        if GATHER:
            row = tl.load(pair_token + pair, mask=valid, other=0).to(tl.int64)
        else:
            row = pair
        a = a_ptr + row[:, None] * stride_am + offs_k[None, :]
        b = b_ptr + expert * stride_be + offs_n[None, :] * stride_bn + offs_k[:, None]
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k in range(0, tl.cdiv(K, BK)):
            kmask = offs_k < K - k * BK
            av = tl.load(a, mask=valid[:, None] & kmask[None, :], other=0.0)
            bv = tl.load(b, mask=kmask[:, None] & (offs_n[None, :] < N), other=0.0)
            acc += tl.dot(av, bv)
            a += BK
            b += BK
        if MUL_WEIGHT:
            acc *= tl.load(w_ptr + pair, mask=valid, other=0.0)[:, None]
        c = c_ptr + pair[:, None] * stride_cm + offs_n[None, :]
        tl.store(c, acc.to(c_ptr.dtype.element_ty),
                 mask=valid[:, None] & (offs_n[None, :] < N))

    def align(mask, bm):
        """vLLM's moe_align_block_size: pair ids sorted by expert, each
        expert's run padded to the block size with the sentinel num_pairs."""
        token, expert = mask.nonzero(as_tuple=True)
        pairs = token.numel()
        order = expert.argsort(stable=True)
        counts = torch.bincount(expert, minlength=E)
        padded = (counts + bm - 1) // bm * bm
        starts = padded.cumsum(0) - padded
        total = int(padded.sum())
        ids = torch.full((total,), pairs, dtype=torch.int32, device=mask.device)
        rank = torch.arange(pairs, device=mask.device) - (counts.cumsum(0) - counts)[expert[order]]
        ids[starts[expert[order]] + rank] = order.to(torch.int32)
        block_expert = torch.repeat_interleave(
            torch.arange(E, device=mask.device, dtype=torch.int32), padded // bm)
        return token, expert, ids, block_expert, torch.tensor(
            [pairs, total], dtype=torch.int32, device=mask.device)

    def gemm(a, b, c, weights, ids, block_expert, sizes, pair_token, bm):
        n, k = b.shape[1], b.shape[2]
        grid = (triton.cdiv(ids.numel(), bm) * triton.cdiv(n, 128),)
        fused_moe_kernel[grid](a, b, c, weights, ids, block_expert, sizes,
                               pair_token, n, k, a.stride(0), b.stride(0),
                               b.stride(1), c.stride(0),
                               GATHER=pair_token is not None,
                               MUL_WEIGHT=weights is not None, BM=bm, BN=128,
                               BK=64, GROUP_M=8, num_warps=8, num_stages=4)

    def run(x, w, policy, w13):
        gate, _, _, w2 = w
        mask, weights = routing(x, gate, policy)
        bm = 64 if x.shape[0] < 1024 else 128
        token, expert, ids, block_expert, sizes = align(mask, bm)
        pairs = token.numel()
        pair_weights = weights[token, expert].contiguous()
        pair_token = token.to(torch.int32)
        h = torch.empty(pairs, 2 * F, dtype=x.dtype, device=x.device)
        gemm(x, w13, h, None, ids, block_expert, sizes, pair_token, bm)
        act = F_.silu(h[:, :F]) * h[:, F:]
        y = torch.empty(pairs, D, dtype=x.dtype, device=x.device)
        gemm(act, w2, y, pair_weights, ids, block_expert, sizes, None, bm)
        return torch.zeros_like(x).index_add_(0, token, y)
    return run


def time_cuda(fn, inputs, runs):
    """Median ms of fn(x) over `runs` calls, CUDA events, rotating inputs."""
    for x in inputs:
        fn(x)
    times = []
    for i in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(inputs[i % len(inputs)])
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def time_host(fn, inputs, runs):
    """Median ms of fn(x) on the host clock (fn synchronises itself)."""
    for x in inputs:
        fn(x)
    torch.cuda.synchronize()
    times = []
    for i in range(runs):
        start = time.perf_counter()
        fn(inputs[i % len(inputs)])
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--library", required=True)
    p.add_argument("--variant", action="append", default=[],
                   help="NAME=LIBRARY, another build of the layer")
    p.add_argument("--runtime", required=True)
    p.add_argument("--tokens", default="128,512,2048,4096,16384")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--skip-hf", action="store_true")
    args = p.parse_args()
    torch.manual_seed(0)
    dev, bf16 = "cuda", torch.bfloat16
    gate = torch.randn(E, D, device=dev, dtype=bf16) / D ** 0.5
    w1 = torch.randn(E, F, D, device=dev, dtype=bf16) / D ** 0.5
    w3 = torch.randn(E, F, D, device=dev, dtype=bf16) / D ** 0.5
    w2 = torch.randn(E, D, F, device=dev, dtype=bf16) / F ** 0.5
    w = (gate, w1, w3, w2)
    w13 = torch.cat([w1, w3], dim=1)                       # [E, 2F, D]
    w13t, w2t = w13.transpose(1, 2), w2.transpose(1, 2)    # K-major views
    moec = Moec(args.library, args.runtime)
    variants = [(v.split("=", 1)[0], Moec(v.split("=", 1)[1], args.runtime))
                for v in args.variant]
    hf = None if args.skip_hf else hf_block(w)
    triton_run = triton_layer()

    print("GPU: %s; D=%d F=%d E=%d bf16; median of %d runs" % (
        torch.cuda.get_device_name(), D, F, E, args.runs))
    print("| policy | T | experts/token | moec ms | %shf ms | grouped_mm ms | "
          "triton ms | dense ms | efficiency | moec vs best other | moec error |"
          % "".join("moec %s ms | " % n for n, _ in variants))
    print("|---" * (11 + len(variants)) + "|")
    top2_ms = {}
    for policy, name in (("top2", "moe_top2"), ("top_p", "moe_top_p")):
        for t in map(int, args.tokens.split(",")):
            inputs = [torch.randn(t, D, device=dev, dtype=bf16) for _ in range(3)]
            mask, _ = routing(inputs[0], gate, policy)
            rows = int(mask.sum())
            got = moec.call(name, inputs[0], w, keep=True).float()
            ref = reference(inputs[0], w, policy)
            error = float((got - ref).abs().max() / ref.abs().max())
            ms = {"moec": time_host(lambda x: moec.call(name, x, w), inputs, args.runs)}
            # Other builds: their times, and the worst error of all.
            variant_ms = []
            for _, lib in variants:
                got_v = lib.call(name, inputs[0], w, keep=True).float()
                error = max(error, float((got_v - ref).abs().max() / ref.abs().max()))
                variant_ms.append(time_host(lambda x: lib.call(name, x, w),
                                            inputs, args.runs))
            with torch.no_grad():
                if hf and policy == "top2":
                    ms["hf"] = time_cuda(hf, inputs, args.runs)
                ms["grouped_mm"] = time_cuda(
                    lambda x: grouped_mm_layer(x, w, policy, w13t, w2t), inputs, args.runs)
                ms["triton"] = time_cuda(
                    lambda x: triton_run(x, w, policy, w13), inputs, args.runs)
                dense_in = [torch.randn(rows, D, device=dev, dtype=bf16) for _ in range(3)]
                dense_w1 = w13[0].t().contiguous()                  # [D, 2F]
                dense_w2 = w2[0].t().contiguous()                   # [F, D]
                ms["dense"] = time_cuda(
                    lambda x: (x @ dense_w1)[:, :F] @ dense_w2, dense_in, args.runs)
            others = [v for k, v in ms.items() if k not in ("moec", "dense")]
            if policy == "top2":
                top2_ms[t] = ms["moec"]
            print("| %s | %d | %.2f | %.3f | %s%s | %.3f | %.3f | %.3f | %.0f%% | %.2fx | %.1e |" % (
                policy, t, rows / t, ms["moec"],
                "".join("%.3f | " % v for v in variant_ms),
                "%.3f" % ms["hf"] if "hf" in ms else "-", ms["grouped_mm"],
                ms["triton"], ms["dense"], 100 * ms["dense"] / ms["moec"],
                min(others) / ms["moec"], error))
            if policy == "top_p" and t in top2_ms:
                print(("|  | top-p / top-2 time %.2f for %.2f / 2 experts: %.2f of "
                       "proportional " + "|" * (10 + len(variants))) % (
                          ms["moec"] / top2_ms[t], rows / t,
                          (ms["moec"] / top2_ms[t]) / (rows / t / 2)))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
