//===- LoweringUtils.h - helpers for lowering moe ops to linalg -*- C++ -*-===//
//
// Small builders shared by the routing-policy lowerings, moe-lower-routing,
// convert-moe-to-linalg and moe-tile-grouped-matmul.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_DIALECT_LOWERINGUTILS_H
#define MOEC_DIALECT_LOWERINGUTILS_H

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"
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

/// Builds linalg generics over one loop nest, with each operand's indexing
/// map given as the list of loop dimensions it is indexed by.
struct GenericBuilder {
  OpBuilder &b;
  Location loc;
  SmallVector<utils::IteratorType> iterators;

  using BodyFn = function_ref<void(OpBuilder &, Location, ValueRange)>;

  /// A generic with `ins` and `outs` accessed through `inDims` / `outDims`.
  ValueRange build(ValueRange ins, ArrayRef<SmallVector<unsigned>> inDims,
                   ValueRange outs, ArrayRef<SmallVector<unsigned>> outDims,
                   BodyFn body);
};

/// The group of each of `rows` rows under group `offsets` (i32, G + 1
/// entries: group g holds rows offsets[g] .. offsets[g + 1]): the number of
/// groups that end at or before the row, G past the last group. An i32
/// tensor of `rows` elements, one parallel generic (no search, no
/// data-dependent control flow).
Value groupOfRows(OpBuilder &b, Location loc, Value offsets, int64_t numGroups,
                  OpFoldResult rows);

/// `1 / (1 + exp(-x))` for a float scalar `x`.
Value sigmoid(OpBuilder &b, Location loc, Value x);

/// `linalg.index dim` as an i32, inside a generic's body.
Value indexAsI32(OpBuilder &b, Location loc, unsigned dim);

/// `v` as a tensor of `type` (a tensor.cast to a more or less static shape),
/// or `v` itself when it has that type already.
Value castToType(OpBuilder &b, Location loc, Value v, Type type);

/// `a * b + c` on float scalars or vectors, as a multiply and an add that
/// may be contracted: LLVM fuses them into an FMA on targets that have one
/// and keeps two instructions elsewhere, where `vector.fma` (llvm.fma)
/// would become a libm `fmaf` call per lane.
Value multiplyAdd(OpBuilder &b, Location loc, Value a, Value x, Value c);

/// Rewrites every `math.fma` nested in `root` (MLIR's polynomial
/// approximations emit them) into multiplyAdd, for the same reason.
void contractFmas(Operation *root);

/// Expands the `math.exp` ops nested in each of `kernels` into MLIR's vector
/// polynomial (within a few ulp of libm's expf; LLVM would otherwise call
/// expf once per lane), then contracts its fmas (contractFmas).
void approximateKernelMath(ArrayRef<Operation *> kernels);

/// `v`, a float scalar or vector, widened to f32 elements (unchanged if it
/// has them already): the moe kernels accumulate in f32.
Value extendToF32(OpBuilder &b, Location loc, Value v);

/// `v`, an f32 scalar or vector, narrowed to elements of type `to`
/// (unchanged if `to` is f32).
Value truncateFromF32(OpBuilder &b, Location loc, Value v, Type to);

/// The SwiGLU epilogue on f32 scalars or vectors: silu(gate) * up, with
/// silu(a) = a * sigmoid(a) = a / (1 + exp(-a)).
Value buildSwiglu(OpBuilder &b, Location loc, Value gate, Value up);

} // namespace mlir::moe

#endif // MOEC_DIALECT_LOWERINGUTILS_H
