//===- MapAllocsToGpu.cpp - host allocations into GPU memory --------------===//
//
// GPU only: the host code's buffers become GPU allocations, and the copies
// between them (bufferization's) GPU copies, which the host could not do on
// device memory.
//
//===----------------------------------------------------------------------===//

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

/// A fresh token for an async op that gpu-to-llvm wants with exactly one
/// dependency.
Value readyToken(PatternRewriter &rewriter, Location loc) {
  auto tokenType = gpu::AsyncTokenType::get(rewriter.getContext());
  return gpu::WaitOp::create(rewriter, loc, tokenType, ValueRange())
      .getAsyncToken();
}

/// gpu-to-llvm lowers managed allocations in synchronous form only, and
/// device allocations and deallocations in asynchronous form only, with one
/// dependency; each async op is waited for at once.
struct AllocToGpu : OpRewritePattern<memref::AllocOp> {
  AllocToGpu(MLIRContext *ctx, bool hostShared)
      : OpRewritePattern(ctx), hostShared(hostShared) {}

  LogicalResult matchAndRewrite(memref::AllocOp op,
                                PatternRewriter &rewriter) const override {
    if (inGpuModule(op))
      return failure();
    Location loc = op.getLoc();
    Type tokenType;
    SmallVector<Value, 1> dependencies;
    if (!hostShared) {
      tokenType = gpu::AsyncTokenType::get(op.getContext());
      dependencies.push_back(readyToken(rewriter, loc));
    }
    auto alloc = gpu::AllocOp::create(rewriter, loc, op.getType(), tokenType,
                                      dependencies, op.getDynamicSizes(),
                                      op.getSymbolOperands(), hostShared);
    if (!hostShared)
      gpu::WaitOp::create(rewriter, loc, Type(), alloc.getAsyncToken());
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
    Location loc = op.getLoc();
    auto tokenType = gpu::AsyncTokenType::get(op.getContext());
    Value done = gpu::DeallocOp::create(rewriter, loc, tokenType,
                                        ValueRange{readyToken(rewriter, loc)},
                                        op.getMemref())
                     .getAsyncToken();
    rewriter.replaceOpWithNewOp<gpu::WaitOp>(op, Type(), ValueRange{done});
    return success();
  }
};

/// A host memref.copy between buffers that are GPU memory after this pass.
struct CopyToGpu : OpRewritePattern<memref::CopyOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(memref::CopyOp op,
                                PatternRewriter &rewriter) const override {
    if (inGpuModule(op))
      return failure();
    Location loc = op.getLoc();
    auto tokenType = gpu::AsyncTokenType::get(op.getContext());
    Value done = gpu::MemcpyOp::create(rewriter, loc, tokenType,
                                       ValueRange{readyToken(rewriter, loc)},
                                       op.getTarget(), op.getSource())
                     .getAsyncToken();
    rewriter.replaceOpWithNewOp<gpu::WaitOp>(op, Type(), ValueRange{done});
    return success();
  }
};

struct MapAllocsToGpuPass : moe::impl::MapAllocsToGpuBase<MapAllocsToGpuPass> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<AllocToGpu>(&getContext(), hostShared);
    patterns.add<DeallocToGpu, CopyToGpu>(&getContext());
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace
