//===- LoweringUtils.h - helpers for lowering moe ops to linalg -*- C++ -*-===//
//
// Small builders shared by the routing-policy lowerings, moe-lower-routing
// and convert-moe-to-linalg.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_DIALECT_LOWERINGUTILS_H
#define MOEC_DIALECT_LOWERINGUTILS_H

#include "mlir/IR/AffineMap.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/OpDefinition.h"

namespace mlir::moe {

/// The map from `numDims` loop dimensions to the ones listed in `dims`,
/// e.g. (d0, d1, d2) -> (d0, d2) for numDims = 3, dims = {0, 2}.
AffineMap projectionMap(MLIRContext *ctx, unsigned numDims,
                        ArrayRef<unsigned> dims);

/// A tensor of `sizes` filled with `value` (tensor.empty + linalg.fill).
Value filledTensor(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                   TypedAttr value);

} // namespace mlir::moe

#endif // MOEC_DIALECT_LOWERINGUTILS_H
