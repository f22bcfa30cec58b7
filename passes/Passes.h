//===- Passes.h - moe-level transformations ---------------------*- C++ -*-===//

#ifndef MOEC_PASSES_PASSES_H
#define MOEC_PASSES_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"

namespace mlir {
class RewritePatternSet;

namespace moe {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

/// Patterns of moe-decompose-moe-block.
void populateDecomposeMoeBlockPatterns(RewritePatternSet &patterns);

/// Patterns of moe-fuse-routing-weights.
void populateFuseRoutingWeightsPatterns(RewritePatternSet &patterns);

/// Patterns of moe-lower-routing.
void populateLowerRoutingPatterns(RewritePatternSet &patterns);

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

} // namespace moe
} // namespace mlir

#endif // MOEC_PASSES_PASSES_H
