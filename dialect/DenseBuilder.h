//===- DenseBuilder.h - builders for dense tensor computations --*- C++ -*-===//
//
// Builds the dense pieces of a model on `[rows, width]` tensors in f32:
// elementwise maps, biases, gates and matrix products. Every matrix product
// is a one-group moe.grouped_matmul, so dense layers and routed experts go
// through the same GEMM lowering. Shared by moe-decompose-moe-block and the
// model importer.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_DIALECT_DENSEBUILDER_H
#define MOEC_DIALECT_DENSEBUILDER_H

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"

namespace mlir::moe {

struct DenseBuilder {
  OpBuilder &b;
  Location loc;

  Type f32() { return b.getF32Type(); }

  OpFoldResult rows(Value x) { return tensor::getMixedSize(b, loc, x, 0); }

  /// A `[rows(x), width]` f32 tensor type.
  RankedTensorType rowsType(Value x, int64_t width, Type element = {});

  /// `x` with its elements converted to f32.
  Value toF32(Value x);

  /// An elementwise generic over a tensor of type `resultType`, the rank of
  /// `x`, that yields `fn(x[i])`.
  Value map(Value x, RankedTensorType resultType,
            function_ref<Value(OpBuilder &, Location, Value)> fn);

  /// `a + b` elementwise for two f32 `[rows, width]` tensors.
  Value add(Value lhs, Value rhs);

  /// `acc + rhs` like `add`, computed into `acc` itself (the generic's init),
  /// so that bufferization updates `acc`'s buffer in place: a residual
  /// stream that is one buffer through every layer.
  Value accumulate(Value acc, Value rhs);

  /// Group offsets `[0, rows(x)]`: one group holding every row.
  Value singleGroup(Value x);

  /// `[N, K]` as the single group `[1, N, K]` of a grouped matmul.
  Value asGroup(Value w);

  /// `x · wᵀ` for `w : [N, K]`, rows scaled by `scale` when given.
  Value linear(Value x, Value w, Value scale = {});

  /// `x · wᵀ + bias` for `bias : [N]` (or `[1]` broadcast, for N = 1).
  Value affine(Value x, Value w, Value bias);

  /// The dense SwiGLU expert `(silu(x·w1ᵀ) ⊙ x·w3ᵀ)·w2ᵀ` on every row, each
  /// output row scaled by `scale` when given.
  Value swiglu(Value x, Value w1, Value w3, Value w2, Value scale = {});

  /// `sigmoid(x · wᵀ + bias)` for a one-row `w : [1, D]`, as a `[rows]`
  /// vector; no bias when `bias` is null.
  Value sigmoidGate(Value x, Value w, Value bias);
};

} // namespace mlir::moe

#endif // MOEC_DIALECT_DENSEBUILDER_H
