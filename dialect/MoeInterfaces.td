//===- MoeInterfaces.td - Routing policy interface ---------*- tablegen -*-===//
//
// A routing policy decides which experts each token uses and with what
// weight. Ops that route (moe.router, moe.moe_block) only talk to policies
// through this interface, so adding a policy never touches them.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_DIALECT_MOEINTERFACES_TD
#define MOEC_DIALECT_MOEINTERFACES_TD

include "mlir/IR/OpBase.td"

def Moe_RoutingPolicyAttrInterface
    : AttrInterface<"RoutingPolicyAttrInterface"> {
  let cppNamespace = "::mlir::moe";
  let description = [{
    A routing policy maps the softmax probabilities of one token over the
    `E` experts of a layer to a set of selected experts and their weights.

    Implementations state a static bound on how many experts a token can
    select (the width of the router's padded per-token outputs), whether that
    count varies between tokens, and which expert counts they accept.
  }];
  let methods = [
    InterfaceMethod<[{
        Returns the largest number of experts one token can select in a layer
        of `numExperts` experts.
      }],
      "int64_t", "getMaxExpertsPerToken", (ins "int64_t":$numExperts)>,
    InterfaceMethod<[{
        Returns true when tokens may select different numbers of experts.
      }],
      "bool", "hasDynamicExpertCount", (ins)>,
    InterfaceMethod<[{
        Checks that the policy can route among `numExperts` experts; reports
        through `emitError` and fails otherwise.
      }],
      "::llvm::LogicalResult", "verifyForExperts",
      (ins "int64_t":$numExperts,
           "::llvm::function_ref<::mlir::InFlightDiagnostic()>":$emitError)>,
    InterfaceMethod<[{
        Returns true when the selected experts' weights are renormalised to
        sum to one.
      }],
      "bool", "normalizesWeights", (ins)>,
    InterfaceMethod<[{
        Builds, for every token, the number of experts the policy selects
        (`tensor<T x i32>`), given `sortedProbs : tensor<T x K x f32>`, each
        token's K highest softmax probabilities in descending order (ties by
        lower expert index), K being `getMaxExpertsPerToken(numExperts)`.
        Emits tensor-level IR (linalg, tensor, arith) at the builder's
        insertion point.
      }],
      "::mlir::Value", "buildExpertCounts",
      (ins "::mlir::OpBuilder &":$builder, "::mlir::Location":$loc,
           "::mlir::Value":$sortedProbs, "int64_t":$numExperts)>,
    InterfaceMethod<[{
        Returns the simplest policy that routes exactly like this one among
        `numExperts` experts (this policy itself when there is none).
      }],
      "::mlir::moe::RoutingPolicyAttrInterface", "simplifyForExperts",
      (ins "int64_t":$numExperts),
      /*methodBody=*/"", /*defaultImplementation=*/[{ return $_attr; }]>,
  ];
}

#endif // MOEC_DIALECT_MOEINTERFACES_TD
