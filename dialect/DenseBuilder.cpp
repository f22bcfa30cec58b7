//===- DenseBuilder.cpp - builders for dense tensor computations ----------===//

#include "dialect/DenseBuilder.h"
#include "dialect/LoweringUtils.h"
#include "dialect/MoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"

using namespace mlir;
using namespace mlir::moe;

static constexpr auto kParallel = utils::IteratorType::parallel;

RankedTensorType DenseBuilder::rowsType(Value x, int64_t width, Type element) {
  return RankedTensorType::get(
      {cast<RankedTensorType>(x.getType()).getDimSize(0), width},
      element ? element : f32());
}

Value DenseBuilder::toF32(Value x) {
  auto type = cast<RankedTensorType>(x.getType());
  if (type.getElementType().isF32())
    return x;
  return map(x, type.clone(f32()), [&](OpBuilder &nb, Location nl, Value v) {
    return arith::ExtFOp::create(nb, nl, nb.getF32Type(), v).getResult();
  });
}

Value DenseBuilder::map(Value x, RankedTensorType resultType,
                        function_ref<Value(OpBuilder &, Location, Value)> fn) {
  SmallVector<unsigned> dims = llvm::to_vector(
      llvm::seq<unsigned>(0, cast<RankedTensorType>(x.getType()).getRank()));
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, x);
  Value init =
      tensor::EmptyOp::create(b, loc, sizes, resultType.getElementType());
  GenericBuilder gen{b, loc,
                     SmallVector<utils::IteratorType>(dims.size(), kParallel)};
  Value result = gen.build(x, {dims}, init, {dims},
                           [&](OpBuilder &nb, Location nl, ValueRange a) {
                             linalg::YieldOp::create(nb, nl, fn(nb, nl, a[0]));
                           })[0];
  return result.getType() == resultType
             ? result
             : tensor::CastOp::create(b, loc, resultType, result).getResult();
}

Value DenseBuilder::add(Value lhs, Value rhs) {
  GenericBuilder gen{b, loc, {kParallel, kParallel}};
  return gen.build(ValueRange{lhs, rhs}, {{0, 1}, {0, 1}},
                   Value(tensor::EmptyOp::create(
                       b, loc, tensor::getMixedSizes(b, loc, lhs), f32())),
                   {{0, 1}}, [&](OpBuilder &nb, Location nl, ValueRange a) {
                     linalg::YieldOp::create(
                         nb, nl,
                         Value(arith::AddFOp::create(nb, nl, a[0], a[1])));
                   })[0];
}

Value DenseBuilder::accumulate(Value acc, Value rhs) {
  GenericBuilder gen{b, loc, {kParallel, kParallel}};
  return gen.build(rhs, {{0, 1}}, acc, {{0, 1}},
                   [&](OpBuilder &nb, Location nl, ValueRange a) {
                     linalg::YieldOp::create(
                         nb, nl,
                         Value(arith::AddFOp::create(nb, nl, a[1], a[0])));
                   })[0];
}

Value DenseBuilder::singleGroup(Value x) {
  Value n = getValueOrCreateConstantIndexOp(b, loc, rows(x));
  Value end = arith::IndexCastOp::create(b, loc, b.getI32Type(), n);
  // [0, rows] as a generic, not tensor.from_elements: its stores would run
  // on the host, into what is device memory on the GPU.
  Value init =
      tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{2}, b.getI32Type());
  GenericBuilder gen{b, loc, {kParallel}};
  return gen.build(
      ValueRange{}, {}, init, {{0}},
      [&](OpBuilder &nb, Location nl, ValueRange) {
        Value first = arith::CmpIOp::create(
            nb, nl, arith::CmpIPredicate::eq, indexAsI32(nb, nl, 0),
            arith::ConstantIntOp::create(nb, nl, 0, 32));
        linalg::YieldOp::create(
            nb, nl,
            Value(arith::SelectOp::create(
                nb, nl, first, arith::ConstantIntOp::create(nb, nl, 0, 32),
                end)));
      })[0];
}

Value DenseBuilder::asGroup(Value w) {
  auto type = cast<RankedTensorType>(w.getType());
  auto grouped = RankedTensorType::get(
      {1, type.getDimSize(0), type.getDimSize(1)}, type.getElementType());
  return tensor::ExpandShapeOp::create(
      b, loc, grouped, w, ArrayRef<ReassociationIndices>{{0, 1}, {2}});
}

Value DenseBuilder::linear(Value x, Value w, Value scale) {
  int64_t n = cast<RankedTensorType>(w.getType()).getDimSize(0);
  return GroupedMatmulOp::create(b, loc, rowsType(x, n), x, asGroup(w),
                                 /*up_weight=*/Value(), singleGroup(x), scale,
                                 Epilogue::none);
}

Value DenseBuilder::affine(Value x, Value w, Value bias) {
  Value product = linear(x, w);
  GenericBuilder gen{b, loc, {kParallel, kParallel}};
  Value init = tensor::EmptyOp::create(
      b, loc, tensor::getMixedSizes(b, loc, product), f32());
  return gen.build(ValueRange{product, bias}, {{0, 1}, {1}}, init, {{0, 1}},
                   [&](OpBuilder &nb, Location nl, ValueRange a) {
                     Value bv = a[1];
                     if (!bv.getType().isF32())
                       bv = arith::ExtFOp::create(nb, nl, nb.getF32Type(), bv);
                     linalg::YieldOp::create(
                         nb, nl,
                         Value(arith::AddFOp::create(nb, nl, a[0], bv)));
                   })[0];
}

Value DenseBuilder::swiglu(Value x, Value w1, Value w3, Value w2, Value scale) {
  int64_t f = cast<RankedTensorType>(w1.getType()).getDimSize(0);
  Value offsets = singleGroup(x);
  Value hidden = GroupedMatmulOp::create(
      b, loc, rowsType(x, f), x, asGroup(w1), asGroup(w3), offsets,
      /*row_scale=*/Value(), Epilogue::swiglu);
  int64_t d = cast<RankedTensorType>(w2.getType()).getDimSize(0);
  return GroupedMatmulOp::create(b, loc, rowsType(x, d), hidden, asGroup(w2),
                                 /*up_weight=*/Value(), offsets, scale,
                                 Epilogue::none);
}

Value DenseBuilder::sigmoidGate(Value x, Value w, Value bias) {
  Value logits = bias ? affine(x, w, bias) : linear(x, w);
  GenericBuilder gen{b, loc, {kParallel}};
  Value init = tensor::EmptyOp::create(b, loc, rows(x), f32());
  // logits[t, 0] is read through the map (t) -> (t, 0).
  auto zero = getAffineConstantExpr(0, b.getContext());
  auto t = getAffineDimExpr(0, b.getContext());
  SmallVector<AffineMap> maps{AffineMap::get(1, 0, {t, zero}, b.getContext()),
                              AffineMap::get(1, 0, {t}, b.getContext())};
  return linalg::GenericOp::create(
             b, loc, init.getType(), logits, init, maps,
             ArrayRef<utils::IteratorType>{kParallel},
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               linalg::YieldOp::create(nb, nl, sigmoid(nb, nl, a[0]));
             })
      .getResult(0);
}
