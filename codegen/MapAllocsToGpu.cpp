//===- MapAllocsToGpu.cpp - host allocations into GPU memory --------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MAPALLOCSTOGPU
#include "codegen/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

bool inGpuModule(Operation *op) {
  return op->getParentOfType<gpu::GPUModuleOp>() != nullptr;
}

struct AllocToGpu : OpRewritePattern<memref::AllocOp> {
  AllocToGpu(MLIRContext *ctx, bool hostShared)
      : OpRewritePattern(ctx), hostShared(hostShared) {}

  LogicalResult matchAndRewrite(memref::AllocOp op,
                                PatternRewriter &rewriter) const override {
    if (inGpuModule(op))
      return failure();
    auto alloc = gpu::AllocOp::create(
        rewriter, op.getLoc(), op.getType(), /*asyncToken=*/Type(),
        /*asyncDependencies=*/ValueRange(), op.getDynamicSizes(),
        op.getSymbolOperands(), hostShared);
    rewriter.replaceOp(op, alloc.getMemref());
    return success();
  }

  bool hostShared;
};

struct DeallocToGpu : OpRewritePattern<memref::DeallocOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(memref::DeallocOp op,
                                PatternRewriter &rewriter) const override {
    if (inGpuModule(op))
      return failure();
    rewriter.replaceOpWithNewOp<gpu::DeallocOp>(
        op, /*asyncToken=*/Type(), /*asyncDependencies=*/ValueRange(),
        op.getMemref());
    return success();
  }
};

struct MapAllocsToGpuPass
    : moe::impl::MapAllocsToGpuBase<MapAllocsToGpuPass> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<AllocToGpu>(&getContext(), hostShared);
    patterns.add<DeallocToGpu>(&getContext());
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace
