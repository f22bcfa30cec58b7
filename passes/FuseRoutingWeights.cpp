//===- FuseRoutingWeights.cpp - routing weights into the expert GEMM ------===//
//
// moe.combine multiplies each expert output row by its routing weight while
// gathering the rows back per token. Applying the weight as the row scale of
// the grouped matmul that produced the rows instead does the multiply in the
// GEMM's epilogue, in registers, and leaves the combine a plain sum.
//
//===----------------------------------------------------------------------===//

#include "dialect/MoeOps.h"
#include "passes/Passes.h"

#include "mlir/IR/Dominance.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_FUSEROUTINGWEIGHTS
#include "passes/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

struct FuseWeightsIntoGroupedMatmul : OpRewritePattern<CombineOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(CombineOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.getWeights())
      return rewriter.notifyMatchFailure(op, "already unweighted");
    auto matmul = op.getRows().getDefiningOp<GroupedMatmulOp>();
    if (!matmul || matmul.getRowScale() || !matmul->hasOneUse())
      return rewriter.notifyMatchFailure(
          op, "rows do not come from an unscaled grouped matmul used once");
    // Row weights need the row-to-token map of the dispatch that made the
    // slots.
    auto dispatch = op.getSlotToRow().getDefiningOp<DispatchOp>();
    if (!dispatch)
      return rewriter.notifyMatchFailure(op, "slot_to_row is not a dispatch's");

    // The weights are read before the matmul now.
    if (!DominanceInfo(op).properlyDominates(op.getWeights(), matmul))
      return rewriter.notifyMatchFailure(op, "weights defined after the rows");

    Location loc = op.getLoc();
    Value rowToToken = dispatch.getRowToToken();
    rewriter.setInsertionPoint(matmul);
    auto rowWeightsType = RankedTensorType::get(
        cast<RankedTensorType>(rowToToken.getType()).getShape(),
        rewriter.getF32Type());
    Value rowWeights =
        RowWeightsOp::create(rewriter, loc, rowWeightsType, op.getWeights(),
                             op.getSlotToRow(), rowToToken);
    rewriter.modifyOpInPlace(
        matmul, [&] { matmul.getRowScaleMutable().assign(rowWeights); });
    rewriter.modifyOpInPlace(op, [&] { op.getWeightsMutable().clear(); });
    return success();
  }
};

struct FuseRoutingWeightsPass
    : moe::impl::FuseRoutingWeightsBase<FuseRoutingWeightsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateFuseRoutingWeightsPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::moe::populateFuseRoutingWeightsPatterns(
    RewritePatternSet &patterns) {
  patterns.add<FuseWeightsIntoGroupedMatmul>(patterns.getContext());
}
