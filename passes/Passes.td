//===- Passes.td - moe-level transformations ---------------*- tablegen -*-===//

#ifndef MOEC_PASSES_PASSES_TD
#define MOEC_PASSES_PASSES_TD

include "mlir/Pass/PassBase.td"

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
