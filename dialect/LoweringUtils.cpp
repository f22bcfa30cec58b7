//===- LoweringUtils.cpp - helpers for lowering moe ops to linalg ---------===//

#include "dialect/LoweringUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

using namespace mlir;

AffineMap moe::projectionMap(MLIRContext *ctx, unsigned numDims,
                             ArrayRef<unsigned> dims) {
  SmallVector<AffineExpr> exprs;
  for (unsigned d : dims)
    exprs.push_back(getAffineDimExpr(d, ctx));
  return AffineMap::get(numDims, 0, exprs, ctx);
}

Value moe::filledTensor(OpBuilder &b, Location loc,
                        ArrayRef<OpFoldResult> sizes, TypedAttr value) {
  Value empty = tensor::EmptyOp::create(b, loc, sizes, value.getType());
  Value scalar = arith::ConstantOp::create(b, loc, value);
  return linalg::FillOp::create(b, loc, scalar, empty).getResult(0);
}

ValueRange moe::GenericBuilder::build(ValueRange ins,
                                      ArrayRef<SmallVector<unsigned>> inDims,
                                      ValueRange outs,
                                      ArrayRef<SmallVector<unsigned>> outDims,
                                      BodyFn body) {
  unsigned numLoops = iterators.size();
  SmallVector<AffineMap> maps;
  for (ArrayRef<unsigned> dims : inDims)
    maps.push_back(projectionMap(b.getContext(), numLoops, dims));
  for (ArrayRef<unsigned> dims : outDims)
    maps.push_back(projectionMap(b.getContext(), numLoops, dims));
  return linalg::GenericOp::create(b, loc, TypeRange(outs), ins, outs, maps,
                                   iterators, body)
      .getResults();
}

Value moe::indexAsI32(OpBuilder &b, Location loc, unsigned dim) {
  return arith::IndexCastOp::create(b, loc, b.getI32Type(),
                                    linalg::IndexOp::create(b, loc, dim));
}

Value moe::sigmoid(OpBuilder &b, Location loc, Value x) {
  Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x));
  Value one =
      arith::ConstantOp::create(b, loc, b.getFloatAttr(x.getType(), 1.0));
  return arith::DivFOp::create(b, loc, one,
                               arith::AddFOp::create(b, loc, one, e));
}

Value moe::castToType(OpBuilder &b, Location loc, Value v, Type type) {
  if (v.getType() == type)
    return v;
  return tensor::CastOp::create(b, loc, type, v);
}

/// `type` (a scalar or a vector type) with its element type replaced.
static Type withElementType(Type type, Type element) {
  if (auto vector = dyn_cast<VectorType>(type))
    return vector.clone(element);
  return element;
}

Value moe::multiplyAdd(OpBuilder &b, Location loc, Value a, Value x, Value c) {
  auto contract = arith::FastMathFlags::contract;
  Value product = arith::MulFOp::create(b, loc, a, x, contract);
  return arith::AddFOp::create(b, loc, product, c, contract);
}

void moe::contractFmas(Operation *root) {
  SmallVector<math::FmaOp> fmas;
  root->walk([&](math::FmaOp fma) { fmas.push_back(fma); });
  for (math::FmaOp fma : fmas) {
    OpBuilder b(fma);
    fma.replaceAllUsesWith(
        multiplyAdd(b, fma.getLoc(), fma.getA(), fma.getB(), fma.getC()));
    fma.erase();
  }
}

Value moe::groupOfRows(OpBuilder &b, Location loc, Value offsets,
                       int64_t numGroups, OpFoldResult rows) {
  Value ends = tensor::ExtractSliceOp::create(
      b, loc, offsets, ArrayRef<OpFoldResult>{b.getIndexAttr(1)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(numGroups)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
  Value zeros = filledTensor(b, loc, {rows}, b.getI32IntegerAttr(0));
  GenericBuilder gen{
      b, loc, {utils::IteratorType::parallel, utils::IteratorType::reduction}};
  return gen.build(
      ValueRange{ends}, {{1}}, ValueRange{zeros}, {{0}},
      [](OpBuilder &nb, Location nl, ValueRange a) {
        Value done = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::sle,
                                           a[0], indexAsI32(nb, nl, 0));
        Value one = arith::ExtUIOp::create(nb, nl, nb.getI32Type(), done);
        linalg::YieldOp::create(
            nb, nl, Value(arith::AddIOp::create(nb, nl, a[1], one)));
      })[0];
}

void moe::approximateKernelMath(ArrayRef<Operation *> kernels) {
  if (kernels.empty())
    return;
  RewritePatternSet approximations(kernels.front()->getContext());
  populateMathPolynomialApproximationPatterns(
      approximations,
      [](StringRef name) { return name == math::ExpOp::getOperationName(); });
  FrozenRewritePatternSet frozen(std::move(approximations));
  for (Operation *kernel : kernels) {
    walkAndApplyPatterns(kernel, frozen);
    contractFmas(kernel);
  }
}

Value moe::extendToF32(OpBuilder &b, Location loc, Value v) {
  if (getElementTypeOrSelf(v.getType()).isF32())
    return v;
  return arith::ExtFOp::create(b, loc,
                               withElementType(v.getType(), b.getF32Type()), v);
}

Value moe::truncateFromF32(OpBuilder &b, Location loc, Value v, Type to) {
  if (to.isF32())
    return v;
  return arith::TruncFOp::create(b, loc, withElementType(v.getType(), to), v);
}

Value moe::buildSwiglu(OpBuilder &b, Location loc, Value gate, Value up) {
  Type type = gate.getType();
  Value one = arith::ConstantOp::create(
      b, loc, type,
      isa<VectorType>(type)
          ? TypedAttr(DenseElementsAttr::get(cast<ShapedType>(type),
                                             b.getF32FloatAttr(1.0f)))
          : TypedAttr(b.getF32FloatAttr(1.0f)));
  Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, gate));
  Value silu = arith::DivFOp::create(b, loc, gate,
                                     arith::AddFOp::create(b, loc, one, e));
  return arith::MulFOp::create(b, loc, silu, up);
}
