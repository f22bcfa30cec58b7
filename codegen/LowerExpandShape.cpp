//===- LowerExpandShape.cpp - dynamic memref.expand_shape to a cast -------===//
//
// LLVM 22's expand-strided-metadata crashes on a memref.expand_shape that
// splits one dimension into several dynamic ones (e.g. the [B * T] token
// rows of a model into [B, T]). When the source is contiguous, the expanded
// view is a reinterpret_cast with row-major strides, which this pass emits
// instead.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_LOWEREXPANDSHAPE
#include "codegen/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Whether some reassociation group has more than one dynamic size.
bool hasMultiDynamicGroup(memref::ExpandShapeOp op) {
  ArrayRef<int64_t> shape = op.getResultType().getShape();
  for (const ReassociationIndices &group : op.getReassociationIndices())
    if (llvm::count_if(group, [&](int64_t d) {
          return ShapedType::isDynamic(shape[d]);
        }) > 1)
      return true;
  return false;
}

struct ExpandShapeToReinterpretCast : OpRewritePattern<memref::ExpandShapeOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(memref::ExpandShapeOp op,
                                PatternRewriter &rewriter) const override {
    MemRefType source = op.getSrcType(), result = op.getResultType();
    if (!hasMultiDynamicGroup(op))
      return rewriter.notifyMatchFailure(op, "expand-strided-metadata copes");
    if (!source.getLayout().isIdentity() || !result.getLayout().isIdentity())
      return rewriter.notifyMatchFailure(op, "not a contiguous buffer");

    Location loc = op.getLoc();
    SmallVector<OpFoldResult> sizes = op.getMixedOutputShape();
    SmallVector<OpFoldResult> strides(sizes.size());
    OpFoldResult stride = rewriter.getIndexAttr(1);
    for (int64_t i = sizes.size() - 1; i >= 0; --i) {
      strides[i] = stride;
      std::optional<int64_t> a = getConstantIntValue(stride);
      std::optional<int64_t> b = getConstantIntValue(sizes[i]);
      if (a && b) {
        stride = rewriter.getIndexAttr(*a * *b);
      } else {
        stride = arith::MulIOp::create(
                     rewriter, loc,
                     getValueOrCreateConstantIndexOp(rewriter, loc, stride),
                     getValueOrCreateConstantIndexOp(rewriter, loc, sizes[i]))
                     .getResult();
      }
    }
    rewriter.replaceOpWithNewOp<memref::ReinterpretCastOp>(
        op, result, op.getSrc(), rewriter.getIndexAttr(0), sizes, strides);
    return success();
  }
};

struct LowerExpandShapePass
    : moe::impl::LowerExpandShapeBase<LowerExpandShapePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<ExpandShapeToReinterpretCast>(&getContext());
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace
