//===- Passes.td - moe-level transformations ---------------*- tablegen -*-===//

#ifndef MOEC_PASSES_PASSES_TD
#define MOEC_PASSES_PASSES_TD

include "mlir/Pass/PassBase.td"

def DecomposeMoeBlock : Pass<"moe-decompose-moe-block"> {
  let summary = "Decompose moe.moe_block into routing, dispatch, grouped "
                "GEMMs and combine";
  let description = [{
    Rewrites each `moe.moe_block` into the kernel-level moe ops plus a few
    elementwise linalg generics, computing in f32 (the result is converted
    back to the block's element type at the end):

    * the routed experts: `moe.router` on the gate logits, `moe.dispatch`,
      a SwiGLU `moe.grouped_matmul` (gate and up projections in one pass),
      the down `moe.grouped_matmul` and `moe.combine`;
    * `multi_head`: the head projection (`x·Whᵀ + bh`), `moe.split_tokens`
      before routing, `moe.merge_tokens` after combining, and the merge
      projection (`o·Wmᵀ + bm`);
    * `shared_expert` (Qwen2-MoE): a dense SwiGLU expert whose output rows
      are scaled by `sigmoid(h·gateᵀ)`;
    * `shallow_expert` / `deep_expert` (dual-scale shared experts): two dense
      SwiGLU experts added to every token;
    * `adaptive_routing`: the complexity `c = sigmoid(h·wᵀ + b)`. Tokens with
      `c < level_threshold` pass `simple_max_experts` as their `caps` to the
      router (with MH-MoE every sub-token inherits its token's cap); the
      others keep the policy's count and are the only rows dispatched to the
      deep expert, a one-expert dynamic group whose output is weighted by
      `c`.

    Every matrix product becomes a `moe.grouped_matmul`; the dense ones are a
    single group covering all rows, so the backends need one GEMM kernel.

    Before:
    ```mlir
    %y = moe.moe_block %h gate(%wg : tensor<8x64xf32>)
        experts(%w1, %w3, %w2 : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>)
        policy(#moe.top_k<k = 2>) : tensor<?x64xf32> -> tensor<?x64xf32>
    ```
    After (abridged):
    ```mlir
    %logits = moe.grouped_matmul %h, %wg1 offsets(%all) : ... -> tensor<?x8xf32>
    %ids, %w, %n = moe.router %logits policy(#moe.top_k<k = 2>) : ...
    %rows, %off, %r2t, %s2r = moe.dispatch %h, %ids, %n : ...
    %a = moe.grouped_matmul %rows, %w1, %w3 offsets(%off) epilogue(swiglu) : ...
    %b = moe.grouped_matmul %a, %w2 offsets(%off) : ...
    %y = moe.combine %b, %w, %s2r, %n : ...
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def FuseRoutingWeights : Pass<"moe-fuse-routing-weights"> {
  let summary = "Apply routing weights in the expert GEMM's epilogue instead "
                "of in moe.combine";
  let description = [{
    When the rows that a `moe.combine` gathers come straight from a
    `moe.grouped_matmul` (used only there, without a row scale) and its
    `slot_to_row` from a `moe.dispatch`, the routing weight of each row
    becomes the matmul's `scale`, applied to the accumulator before the
    store, and the combine turns into a plain per-token sum. The weight of
    each row is gathered by `moe.row_weights` (row `r` belongs to exactly one
    slot of token `row_to_token[r]`), so no scatter is needed.

    The scatter-add half of combine stays a gather: on the CPU a scatter from
    parallel GEMM tiles would need atomic float adds, and would make the sum
    order, and so the last bits of the result, depend on the schedule.

    Before:
    ```mlir
    %y = moe.grouped_matmul %a, %w2 offsets(%off) : ...
    %out = moe.combine %y, %w, %s2r, %n : ...
    ```
    After:
    ```mlir
    %rw = moe.row_weights %w, %s2r, %r2t : ... -> tensor<?xf32>
    %y = moe.grouped_matmul %a, %w2 offsets(%off) scale(%rw) : ...
    %out = moe.combine %y, %s2r, %n : ...
    ```
  }];
}

def LowerRouting : Pass<"moe-lower-routing"> {
  let summary = "Lower moe.router to a softmax, a stable ranking and the "
                "policy's expert counts";
  let description = [{
    Rewrites each `moe.router` into linalg on tensors, in f32:

    1. the softmax of the logits over the experts;
    2. each expert's rank among its token's experts (higher probability
       first, ties to the lower expert index), and from it the K best
       experts per token in order, with their probabilities;
    3. the number of experts each token uses, built by the routing policy
       (`RoutingPolicyAttrInterface::buildExpertCounts`), lowered further by
       the optional `caps`;
    4. ids and weights: slots past a token's count get id -1 and weight 0;
       the used weights are renormalised when the policy says so.

    Nothing depends on the policy but step 3, so a new policy needs no change
    here.

    Before:
    ```mlir
    %ids, %w, %n = moe.router %logits policy(#moe.top_k<k = 2>)
        : tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>
    ```
    After (abridged):
    ```mlir
    %max = linalg.generic ... // softmax: max, exp, sum, divide
    %rank = linalg.generic {iterator_types = ["parallel", "parallel", "reduction"]} ...
    %ids0, %sorted = linalg.generic ... // the expert of each rank < K
    %n = linalg.fill ins(%c2_i32 : i32) ...   // top_k: every token uses 2
    %ids, %w = linalg.generic ... // mask unused slots, renormalise
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

#endif // MOEC_PASSES_PASSES_TD
