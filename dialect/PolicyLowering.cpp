//===- PolicyLowering.cpp - routing policies as tensor IR -----------------===//
//
// Each routing policy builds its own per-token expert count from the sorted
// probabilities; moe-lower-routing does everything else (softmax, sorting,
// caps, weights), so a new policy only writes this function.
//
//===----------------------------------------------------------------------===//

#include "dialect/LoweringUtils.h"
#include "dialect/MoeAttrs.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace mlir::moe;

/// tensor<T x i32> filled with `value`, T the first dimension of `like`.
static Value filledCounts(OpBuilder &b, Location loc, Value like,
                          int64_t value) {
  return filledTensor(b, loc, {tensor::getMixedSize(b, loc, like, 0)},
                      b.getI32IntegerAttr(value));
}

/// Per-token count `1 + #{j : values[t, j] <predicate> limit}`, at most
/// `cap`, as tensor<T x i32>. The comparison is in f32, like the
/// probabilities, so `limit` is rounded to f32 first.
static Value countFromOne(OpBuilder &b, Location loc, Value values,
                          arith::CmpFPredicate predicate,
                          const APFloat &limitValue, int64_t cap) {
  Value ones = filledCounts(b, loc, values, 1);
  auto limit = static_cast<float>(limitValue.convertToDouble());
  return linalg::GenericOp::create(
             b, loc, ones.getType(), ValueRange{values}, ValueRange{ones},
             ArrayRef<AffineMap>{projectionMap(b.getContext(), 2, {0, 1}),
                                 projectionMap(b.getContext(), 2, {0})},
             ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                           utils::IteratorType::reduction},
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value bound = arith::ConstantFloatOp::create(
                   nb, nl, nb.getF32Type(), APFloat(limit));
               Value hit =
                   arith::CmpFOp::create(nb, nl, predicate, args[0], bound);
               Value one =
                   arith::ExtUIOp::create(nb, nl, nb.getI32Type(), hit);
               Value next = arith::AddIOp::create(nb, nl, args[1], one);
               Value most = arith::ConstantIntOp::create(nb, nl, cap, 32);
               linalg::YieldOp::create(
                   nb, nl, Value(arith::MinSIOp::create(nb, nl, next, most)));
             })
      .getResult(0);
}

bool TopKAttr::normalizesWeights() const { return getNormalize(); }

Value TopKAttr::buildExpertCounts(OpBuilder &b, Location loc,
                                  Value sortedProbs,
                                  int64_t numExperts) const {
  return filledCounts(b, loc, sortedProbs, getMaxExpertsPerToken(numExperts));
}

bool TopPAttr::normalizesWeights() const { return getNormalize(); }

Value TopPAttr::buildExpertCounts(OpBuilder &b, Location loc,
                                  Value sortedProbs,
                                  int64_t numExperts) const {
  MLIRContext *ctx = b.getContext();
  int64_t k = getMaxExpertsPerToken(numExperts);
  auto dims = [&](unsigned n, ArrayRef<unsigned> ds) {
    return projectionMap(ctx, n, ds);
  };
  auto par = utils::IteratorType::parallel;
  auto red = utils::IteratorType::reduction;

  // prefix[t, j] = p[t, 0] + ... + p[t, j], summed in order.
  Value zeros = filledTensor(b, loc, tensor::getMixedSizes(b, loc, sortedProbs),
                             b.getF32FloatAttr(0));
  Value prefix =
      linalg::GenericOp::create(
          b, loc, zeros.getType(), ValueRange{sortedProbs}, ValueRange{zeros},
          ArrayRef<AffineMap>{dims(3, {0, 2}), dims(3, {0, 1})},
          ArrayRef<utils::IteratorType>{par, par, red},
          [&](OpBuilder &nb, Location nl, ValueRange args) {
            Value i = linalg::IndexOp::create(nb, nl, 2);
            Value j = linalg::IndexOp::create(nb, nl, 1);
            Value inPrefix =
                arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ule, i, j);
            Value sum = arith::AddFOp::create(nb, nl, args[1], args[0]);
            linalg::YieldOp::create(
                nb, nl,
                Value(arith::SelectOp::create(nb, nl, inPrefix, sum, args[1])));
          })
          .getResult(0);

  // K = the smallest k whose prefix sum exceeds the threshold: one more than
  // the number of prefixes that do not, capped at the slots available.
  return countFromOne(b, loc, prefix, arith::CmpFPredicate::OLE,
                      getThreshold(), k);
}

bool ThresholdAttr::normalizesWeights() const { return getNormalize(); }

Value ThresholdAttr::buildExpertCounts(OpBuilder &b, Location loc,
                                       Value sortedProbs,
                                       int64_t numExperts) const {
  // The rows are sorted, so the experts above the threshold are a prefix and
  // counting them after the first, which is always kept, gives
  // max(1, #{p > threshold}). With K = 1 there is nothing after the first
  // (and tensor.extract_slice rejects offset 1 of a size-1 dimension).
  int64_t k = getMaxExpertsPerToken(numExperts);
  if (k == 1)
    return filledCounts(b, loc, sortedProbs, 1);
  Value tail = tensor::ExtractSliceOp::create(
      b, loc, sortedProbs,
      ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(1)},
      ArrayRef<OpFoldResult>{tensor::getMixedSize(b, loc, sortedProbs, 0),
                             b.getIndexAttr(k - 1)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
  return countFromOne(b, loc, tail, arith::CmpFPredicate::OGT, getThreshold(),
                      k);
}
