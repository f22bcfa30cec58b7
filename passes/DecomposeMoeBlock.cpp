//===- DecomposeMoeBlock.cpp - moe.moe_block to routing and expert ops ----===//
//
// Every matrix product of the block becomes a moe.grouped_matmul: the routed
// experts are groups selected per row by the dispatch, and the dense
// projections (MH-MoE, gates, shared experts) are a single group covering all
// rows. The backends then need one fast kernel, not two.
//
//===----------------------------------------------------------------------===//

#include "dialect/DenseBuilder.h"
#include "dialect/LoweringUtils.h"
#include "dialect/MoeOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_DECOMPOSEMOEBLOCK
#include "passes/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr auto kParallel = utils::IteratorType::parallel;

/// Builds the pieces of one block, all in f32, on `[rows, width]` tensors.
struct BlockBuilder : DenseBuilder {
  /// An i32 vector, `onValue` where `gate[t] >= threshold` and `offValue`
  /// elsewhere: the ADR level rule.
  Value byLevel(Value gate, double threshold, int64_t onValue,
                int64_t offValue) {
    auto type = cast<RankedTensorType>(gate.getType()).clone(b.getI32Type());
    return map(gate, type, [&](OpBuilder &nb, Location nl, Value c) {
      Value level = arith::ConstantFloatOp::create(
          nb, nl, nb.getF32Type(), APFloat(static_cast<float>(threshold)));
      Value complex =
          arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OGE, c, level);
      return arith::SelectOp::create(
                 nb, nl, complex,
                 arith::ConstantIntOp::create(nb, nl, onValue, 32),
                 arith::ConstantIntOp::create(nb, nl, offValue, 32))
          .getResult();
    });
  }

  /// Repeats each element of a `[T]` vector `heads` times: `[T * heads]`,
  /// the sub-tokens of MH-MoE inheriting their token's value.
  Value repeatPerHead(Value v, int64_t heads) {
    if (heads == 1)
      return v;
    auto type = cast<RankedTensorType>(v.getType());
    Value init = tensor::EmptyOp::create(
        b, loc, {rows(v), b.getIndexAttr(heads)}, type.getElementType());
    GenericBuilder gen{b, loc, {kParallel, kParallel}};
    Value spread = gen.build(v, {{0}}, init, {{0, 1}},
                             [&](OpBuilder &nb, Location nl, ValueRange a) {
                               linalg::YieldOp::create(nb, nl, a[0]);
                             })[0];
    int64_t t = type.getDimSize(0);
    auto flat = RankedTensorType::get(
        {ShapedType::isDynamic(t) ? ShapedType::kDynamic : t * heads},
        type.getElementType());
    return tensor::CollapseShapeOp::create(
        b, loc, flat, spread, ArrayRef<ReassociationIndices>{{0, 1}});
  }

  /// What a set of expert groups produced: the combined output, and the
  /// routing that the statistics report.
  struct Experts {
    Value output;  // [T, D]
    Value counts;  // [T] i32: experts used per token
    Value offsets; // [E + 1] i32: group offsets of the dispatched rows
  };

  /// The routed experts of `x : [T, Dr]`: router, dispatch, the SwiGLU
  /// grouped GEMM, the down grouped GEMM and the weighted combine.
  Experts routedExperts(Value x, Value gate, Value w1, Value w3, Value w2,
                        RoutingPolicyAttrInterface policy, Value caps) {
    int64_t e = cast<RankedTensorType>(gate.getType()).getDimSize(0);
    int64_t k = policy.getMaxExpertsPerToken(e);
    int64_t t = cast<RankedTensorType>(x.getType()).getDimSize(0);
    Type i32 = b.getI32Type();
    auto slotsI32 = RankedTensorType::get({t, k}, i32);
    Value logits = linear(x, gate);
    b.getContext()
        ->getLoadedDialect<MoeDialect>()
        ->getRoutingLogitsAttrHelper()
        .setAttr(logits.getDefiningOp(), b.getUnitAttr());
    auto router = RouterOp::create(b, loc,
                                   TypeRange{slotsI32, slotsI32.clone(f32()),
                                             RankedTensorType::get({t}, i32)},
                                   logits, caps, policy);
    Value ids = router.getExpertIds(), weights = router.getWeights(),
          counts = router.getCounts();
    return expertGroups(x, ids, weights, counts, e, w1, w3, w2);
  }

  /// Dispatches the rows of `x` to `numGroups` SwiGLU experts by `ids` /
  /// `counts`, runs them and combines the results with `weights`.
  Experts expertGroups(Value x, Value ids, Value weights, Value counts,
                       int64_t numGroups, Value w1, Value w3, Value w2) {
    Type i32 = b.getI32Type();
    int64_t width = cast<RankedTensorType>(x.getType()).getDimSize(1);
    auto rowsTy = RankedTensorType::get({ShapedType::kDynamic, width}, f32());
    auto dispatch = DispatchOp::create(
        b, loc,
        TypeRange{rowsTy, RankedTensorType::get({numGroups + 1}, i32),
                  RankedTensorType::get({ShapedType::kDynamic}, i32),
                  ids.getType()},
        x, ids, counts);
    Value rowsV = dispatch.getRows(), offsets = dispatch.getGroupOffsets();
    int64_t f = cast<RankedTensorType>(w1.getType()).getDimSize(1);
    Value hidden = GroupedMatmulOp::create(
        b, loc, rowsType(rowsV, f), rowsV, w1, w3, offsets,
        /*row_scale=*/Value(), Epilogue::swiglu);
    Value out = GroupedMatmulOp::create(b, loc, rowsTy, hidden, w2,
                                        /*up_weight=*/Value(), offsets,
                                        /*row_scale=*/Value(), Epilogue::none);
    Value combined = CombineOp::create(b, loc, x.getType(), out, weights,
                                       dispatch.getSlotToRow(), counts);
    return {combined, counts, offsets};
  }

  /// ADR's deep expert as a dynamic group of one expert: only the tokens
  /// whose `enter[t]` is 1 are dispatched to it, and their outputs are scaled
  /// by `gate`.
  /// Rows per group from the `[G + 1]` group offsets: `[G]` i32.
  Value groupSizes(Value offsets) {
    int64_t g = cast<RankedTensorType>(offsets.getType()).getDimSize(0) - 1;
    Value init = tensor::EmptyOp::create(
        b, loc, ArrayRef<OpFoldResult>{b.getIndexAttr(g)}, b.getI32Type());
    GenericBuilder gen{b, loc, {kParallel}};
    return gen.build(
        ValueRange{}, {}, init, {{0}},
        [&](OpBuilder &nb, Location nl, ValueRange) {
          Value i = linalg::IndexOp::create(nb, nl, 0);
          Value next = arith::AddIOp::create(
              nb, nl, i, arith::ConstantIndexOp::create(nb, nl, 1));
          Value end =
              tensor::ExtractOp::create(nb, nl, offsets, ValueRange{next});
          Value begin =
              tensor::ExtractOp::create(nb, nl, offsets, ValueRange{i});
          linalg::YieldOp::create(
              nb, nl, Value(arith::SubIOp::create(nb, nl, end, begin)));
        })[0];
  }

  Value gatedDeepExpert(Value x, Value gate, Value enter, Value w1, Value w3,
                        Value w2) {
    int64_t t = cast<RankedTensorType>(x.getType()).getDimSize(0);
    auto slotType = RankedTensorType::get({t, 1}, b.getI32Type());
    Value ids = filledTensor(b, loc, {rows(x), b.getIndexAttr(1)},
                             b.getI32IntegerAttr(0));
    ids = ids.getType() == slotType
              ? ids
              : tensor::CastOp::create(b, loc, slotType, ids).getResult();
    Value weights =
        tensor::ExpandShapeOp::create(b, loc, slotType.clone(f32()), gate,
                                      ArrayRef<ReassociationIndices>{{0, 1}},
                                      tensor::getMixedSizes(b, loc, ids));
    return expertGroups(x, ids, weights, enter, /*numGroups=*/1, asGroup(w1),
                        asGroup(w3), asGroup(w2))
        .output;
  }
};

struct DecomposeMoeBlockPattern : OpRewritePattern<MoeBlockOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MoeBlockOp op,
                                PatternRewriter &rewriter) const override {
    BlockBuilder bb{{rewriter, op.getLoc()}};
    Value h = bb.toF32(op.getHidden());

    // ADR: complex tokens keep the policy's count and enter the deep expert;
    // simple ones are capped at simple_max_experts.
    Value complexity, caps, enterDeep;
    if (op.getComplexityWeight()) {
      double level = op.getLevelThresholdAttr().getValueAsDouble();
      int64_t k = op.getPolicy().getMaxExpertsPerToken(op.getNumExperts());
      complexity =
          bb.sigmoidGate(h, op.getComplexityWeight(), op.getComplexityBias());
      caps = bb.byLevel(complexity, level, k, *op.getSimpleMaxExperts());
      enterDeep = bb.byLevel(complexity, level, 1, 0);
    }

    // Routed experts, on sub-tokens with MH-MoE.
    Value routed;
    BlockBuilder::Experts experts;
    if (std::optional<int64_t> heads = op.getHeads()) {
      Value u = bb.affine(h, op.getHeadWeight(), op.getHeadBias());
      int64_t d = cast<RankedTensorType>(u.getType()).getDimSize(1);
      int64_t t = cast<RankedTensorType>(u.getType()).getDimSize(0);
      auto subType = RankedTensorType::get(
          {ShapedType::isDynamic(t) ? ShapedType::kDynamic : t * *heads,
           d / *heads},
          bb.f32());
      Value sub =
          SplitTokensOp::create(rewriter, op.getLoc(), subType, u, *heads);
      Value subCaps = caps ? bb.repeatPerHead(caps, *heads) : Value();
      experts = bb.routedExperts(sub, op.getGate(), op.getW1(), op.getW3(),
                                 op.getW2(), op.getPolicy(), subCaps);
      Value merged = MergeTokensOp::create(rewriter, op.getLoc(), u.getType(),
                                           experts.output, *heads);
      routed = bb.affine(merged, op.getMergeWeight(), op.getMergeBias());
    } else {
      experts = bb.routedExperts(h, op.getGate(), op.getW1(), op.getW3(),
                                 op.getW2(), op.getPolicy(), caps);
      routed = experts.output;
    }

    // Shared experts act on the whole token.
    Value sum = routed;
    if (op.getSharedW1()) {
      Value gate = bb.sigmoidGate(h, op.getSharedGate(), /*bias=*/Value());
      sum = bb.add(sum, bb.swiglu(h, op.getSharedW1(), op.getSharedW3(),
                                  op.getSharedW2(), gate));
    }
    if (op.getShallowW1()) {
      sum = bb.add(sum, bb.swiglu(h, op.getShallowW1(), op.getShallowW3(),
                                  op.getShallowW2()));
      Value deep =
          complexity
              ? bb.gatedDeepExpert(h, complexity, enterDeep, op.getDeepW1(),
                                   op.getDeepW3(), op.getDeepW2())
              : bb.swiglu(h, op.getDeepW1(), op.getDeepW3(), op.getDeepW2());
      sum = bb.add(sum, deep);
    }

    auto resultType = cast<RankedTensorType>(op.getResult().getType());
    Value result = sum;
    if (!resultType.getElementType().isF32())
      result =
          bb.map(sum, resultType, [&](OpBuilder &nb, Location nl, Value v) {
            return arith::TruncFOp::create(nb, nl, resultType.getElementType(),
                                           v)
                .getResult();
          });
    else if (result.getType() != resultType)
      result =
          tensor::CastOp::create(rewriter, op.getLoc(), resultType, result);
    SmallVector<Value> results{result};
    if (!op.getStats().empty()) {
      // Experts per (sub-)token, rows per expert, and the ADR level (every
      // token complex without ADR).
      Value level = enterDeep
                        ? enterDeep
                        : filledTensor(rewriter, op.getLoc(), {bb.rows(h)},
                                       rewriter.getI32IntegerAttr(1));
      for (auto [value, stat] :
           llvm::zip_equal(ValueRange{experts.counts,
                                      bb.groupSizes(experts.offsets), level},
                           op.getStats()))
        results.push_back(value.getType() == stat.getType()
                              ? value
                              : tensor::CastOp::create(rewriter, op.getLoc(),
                                                       stat.getType(), value)
                                    .getResult());
    }
    rewriter.replaceOp(op, results);
    return success();
  }
};

struct DecomposeMoeBlockPass
    : moe::impl::DecomposeMoeBlockBase<DecomposeMoeBlockPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateDecomposeMoeBlockPatterns(patterns);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

void mlir::moe::populateDecomposeMoeBlockPatterns(RewritePatternSet &patterns) {
  patterns.add<DecomposeMoeBlockPattern>(patterns.getContext());
}
