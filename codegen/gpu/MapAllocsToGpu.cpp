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

#include <type_traits>

namespace mlir::moe {
#define GEN_PASS_DEF_MAPALLOCSTOGPU
#include "codegen/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

bool inGpuModule(Operation *op) {
  return op->getParentOfType<gpu::GPUModuleOp>() != nullptr;
}

/// Creates a GPU deallocation or copy: with `waited`, in the async form with
/// one dependency that gpu-to-llvm lowers, on a fresh stream waited for at
/// once; otherwise in the synchronous form, for gpu-async-region to chain.
template <typename GpuOp, typename... Args>
GpuOp createGpuOp(PatternRewriter &rewriter, Location loc, bool waited,
                  Args &&...args) {
  if (!waited)
    return GpuOp::create(rewriter, loc, Type(), ValueRange(),
                         std::forward<Args>(args)...);
  auto tokenType = gpu::AsyncTokenType::get(rewriter.getContext());
  Value ready = gpu::WaitOp::create(rewriter, loc, tokenType, ValueRange())
                    .getAsyncToken();
  auto op = GpuOp::create(rewriter, loc, tokenType, ValueRange{ready},
                          std::forward<Args>(args)...);
  gpu::WaitOp::create(rewriter, loc, Type(), ValueRange{op.getAsyncToken()});
  return op;
}

/// Managed memory (`hostShared`): gpu-to-llvm lowers its allocation in the
/// synchronous form only and its deallocation in the async form only, so
/// each op is waited for at once. Device memory: every op synchronous, which
/// the CUDA pipeline's gpu-async-region then puts on one stream in program
/// order (gpu-to-llvm lowers device allocations only in the async form).
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

/// A host memref.dealloc or memref.copy of buffers that are GPU memory after
/// this pass, as the GPU op `To` on the same operands (dealloc: the buffer;
/// copy: target, source).
template <typename From, typename To>
struct HostOpToGpu : OpRewritePattern<From> {
  HostOpToGpu(MLIRContext *ctx, bool hostShared)
      : OpRewritePattern<From>(ctx), hostShared(hostShared) {}

  LogicalResult matchAndRewrite(From op,
                                PatternRewriter &rewriter) const override {
    if (inGpuModule(op))
      return failure();
    if constexpr (std::is_same_v<From, memref::CopyOp>)
      createGpuOp<To>(rewriter, op.getLoc(), hostShared, op.getTarget(),
                      op.getSource());
    else
      createGpuOp<To>(rewriter, op.getLoc(), hostShared, op.getMemref());
    rewriter.eraseOp(op);
    return success();
  }

  bool hostShared;
};

struct MapAllocsToGpuPass : moe::impl::MapAllocsToGpuBase<MapAllocsToGpuPass> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<AllocToGpu, HostOpToGpu<memref::DeallocOp, gpu::DeallocOp>,
                 HostOpToGpu<memref::CopyOp, gpu::MemcpyOp>>(&getContext(),
                                                             hostShared);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace
