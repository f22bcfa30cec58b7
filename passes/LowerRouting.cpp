//===- LowerRouting.cpp - moe.router to tensor IR -------------------------===//

#include "dialect/LoweringUtils.h"
#include "dialect/MoeOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

#include <limits>

namespace mlir::moe {
#define GEN_PASS_DEF_LOWERROUTING
#include "passes/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr auto kParallel = utils::IteratorType::parallel;
constexpr auto kReduction = utils::IteratorType::reduction;

struct RouterLowering : OpRewritePattern<RouterOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(RouterOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    RoutingPolicyAttrInterface policy = op.getPolicy();
    int64_t numExperts = op.getNumExperts();
    int64_t k = policy.getMaxExpertsPerToken(numExperts);
    Type f32 = b.getF32Type(), i32 = b.getI32Type();
    OpFoldResult tokens = tensor::getMixedSize(b, loc, op.getLogits(), 0);
    SmallVector<OpFoldResult> te{tokens, b.getIndexAttr(numExperts)};
    SmallVector<OpFoldResult> tk{tokens, b.getIndexAttr(k)};

    GenericBuilder rowReduce{b, loc, {kParallel, kReduction}};
    GenericBuilder elementwise2{b, loc, {kParallel, kParallel}};
    GenericBuilder pairwise{b, loc, {kParallel, kParallel, kReduction}};

    // Softmax over experts, in f32.
    auto toF32 = [&](OpBuilder &nb, Location nl, Value v) -> Value {
      return v.getType().isF32() ? v : arith::ExtFOp::create(nb, nl, f32, v);
    };
    Value max = rowReduce.build(
        op.getLogits(), {{0, 1}},
        filledTensor(
            b, loc, {tokens},
            b.getF32FloatAttr(-std::numeric_limits<float>::infinity())),
        {{0}}, [&](OpBuilder &nb, Location nl, ValueRange a) {
          linalg::YieldOp::create(nb, nl,
                                  Value(arith::MaximumFOp::create(
                                      nb, nl, toF32(nb, nl, a[0]), a[1])));
        })[0];
    Value exps = elementwise2.build(
        ValueRange{op.getLogits(), max}, {{0, 1}, {0}},
        Value(tensor::EmptyOp::create(b, loc, te, f32)), {{0, 1}},
        [&](OpBuilder &nb, Location nl, ValueRange a) {
          Value shifted =
              arith::SubFOp::create(nb, nl, toF32(nb, nl, a[0]), a[1]);
          linalg::YieldOp::create(nb, nl,
                                  Value(math::ExpOp::create(nb, nl, shifted)));
        })[0];
    Value sums = rowReduce.build(
        exps, {{0, 1}}, filledTensor(b, loc, {tokens}, b.getF32FloatAttr(0)),
        {{0}}, [&](OpBuilder &nb, Location nl, ValueRange a) {
          linalg::YieldOp::create(
              nb, nl, Value(arith::AddFOp::create(nb, nl, a[1], a[0])));
        })[0];
    Value probs = elementwise2.build(
        ValueRange{exps, sums}, {{0, 1}, {0}},
        Value(tensor::EmptyOp::create(b, loc, te, f32)), {{0, 1}},
        [&](OpBuilder &nb, Location nl, ValueRange a) {
          linalg::YieldOp::create(
              nb, nl, Value(arith::DivFOp::create(nb, nl, a[0], a[1])));
        })[0];

    // rank[t, e] = #experts that come before e: more probable, or equally
    // probable with a lower index.
    Value ranks = pairwise.build(
        ValueRange{probs, probs}, {{0, 1}, {0, 2}},
        filledTensor(b, loc, te, b.getI32IntegerAttr(0)), {{0, 1}},
        [&](OpBuilder &nb, Location nl, ValueRange a) {
          Value mine = a[0], other = a[1];
          Value before = arith::CmpFOp::create(
              nb, nl, arith::CmpFPredicate::OGT, other, mine);
          Value tie = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OEQ,
                                            other, mine);
          Value lower =
              arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ult,
                                    linalg::IndexOp::create(nb, nl, 2),
                                    linalg::IndexOp::create(nb, nl, 1));
          Value first = arith::OrIOp::create(
              nb, nl, before, arith::AndIOp::create(nb, nl, tie, lower));
          Value one = arith::ExtUIOp::create(nb, nl, i32, first);
          linalg::YieldOp::create(
              nb, nl, Value(arith::AddIOp::create(nb, nl, a[2], one)));
        })[0];

    // The expert of rank j < K and its probability, per token.
    ValueRange sorted = pairwise.build(
        ValueRange{ranks, probs}, {{0, 2}, {0, 2}},
        ValueRange{filledTensor(b, loc, tk, b.getI32IntegerAttr(-1)),
                   filledTensor(b, loc, tk, b.getF32FloatAttr(0))},
        {{0, 1}, {0, 1}}, [&](OpBuilder &nb, Location nl, ValueRange a) {
          Value hit = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq,
                                            a[0], indexAsI32(nb, nl, 1));
          Value expert = indexAsI32(nb, nl, 2);
          linalg::YieldOp::create(
              nb, nl,
              ValueRange{arith::SelectOp::create(nb, nl, hit, expert, a[2]),
                         arith::SelectOp::create(nb, nl, hit, a[1], a[3])});
        });
    Value sortedIds = sorted[0], sortedProbs = sorted[1];

    // Counts from the policy, lowered by the per-token caps.
    Value counts = policy.buildExpertCounts(b, loc, sortedProbs, numExperts);
    if (Value caps = op.getCaps()) {
      GenericBuilder elementwise1{b, loc, {kParallel}};
      counts = elementwise1.build(
          ValueRange{counts, caps}, {{0}, {0}},
          Value(tensor::EmptyOp::create(b, loc, ArrayRef<OpFoldResult>{tokens},
                                        i32)),
          {{0}}, [&](OpBuilder &nb, Location nl, ValueRange a) {
            Value zero = arith::ConstantIntOp::create(nb, nl, 0, 32);
            Value cap = arith::MaxSIOp::create(nb, nl, a[1], zero);
            linalg::YieldOp::create(
                nb, nl, Value(arith::MinSIOp::create(nb, nl, a[0], cap)));
          })[0];
    }

    // Renormalisation divides by the sum of the used weights.
    bool normalize = policy.normalizesWeights();
    Value denominators;
    if (normalize)
      denominators = rowReduce.build(
          ValueRange{sortedProbs, counts}, {{0, 1}, {0}},
          filledTensor(b, loc, {tokens}, b.getF32FloatAttr(0)), {{0}},
          [&](OpBuilder &nb, Location nl, ValueRange a) {
            Value used = arith::CmpIOp::create(
                nb, nl, arith::CmpIPredicate::slt, indexAsI32(nb, nl, 1), a[1]);
            Value sum = arith::AddFOp::create(nb, nl, a[2], a[0]);
            linalg::YieldOp::create(
                nb, nl,
                Value(arith::SelectOp::create(nb, nl, used, sum, a[2])));
          })[0];

    SmallVector<Value> ins{sortedIds, sortedProbs, counts};
    SmallVector<SmallVector<unsigned>> inDims{{0, 1}, {0, 1}, {0}};
    if (normalize) {
      ins.push_back(denominators);
      inDims.push_back({0});
    }
    ValueRange routed = elementwise2.build(
        ins, inDims,
        ValueRange{tensor::EmptyOp::create(b, loc, tk, i32),
                   tensor::EmptyOp::create(b, loc, tk, f32)},
        {{0, 1}, {0, 1}}, [&](OpBuilder &nb, Location nl, ValueRange a) {
          Value used = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::slt,
                                             indexAsI32(nb, nl, 1), a[2]);
          Value weight = a[1];
          if (normalize)
            weight = arith::DivFOp::create(nb, nl, weight, a[3]);
          Value none = arith::ConstantIntOp::create(nb, nl, -1, 32);
          Value zero = arith::ConstantFloatOp::create(nb, nl, nb.getF32Type(),
                                                      APFloat(0.0f));
          linalg::YieldOp::create(
              nb, nl,
              ValueRange{arith::SelectOp::create(nb, nl, used, a[0], none),
                         arith::SelectOp::create(nb, nl, used, weight, zero)});
        });

    SmallVector<Value> results{routed[0], routed[1], counts};
    for (auto [value, type] : llvm::zip_equal(results, op.getResultTypes()))
      if (value.getType() != type)
        value = tensor::CastOp::create(b, loc, type, value);
    rewriter.replaceOp(op, results);
    return success();
  }
};

struct LowerRoutingPass : moe::impl::LowerRoutingBase<LowerRoutingPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateLowerRoutingPatterns(patterns);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

void mlir::moe::populateLowerRoutingPatterns(RewritePatternSet &patterns) {
  patterns.add<RouterLowering>(patterns.getContext());
}
