//===- HostOpEffects.cpp - memory effects of GPU ops in host code ---------===//
//
// moe-tile-grouped-matmul-sm90 puts kernel launches and TMA descriptor
// creation into host functions before bufferization; the ownership-based
// buffer deallocation that follows refuses ops whose memory effects are
// unknown, which these two upstream ops are. Their effects, declared here:
// a launch reads and writes each buffer it is given, and writes an unnamed
// resource so that nothing erases it as dead; creating a descriptor has no
// effect on memory the program sees (it reads the buffer's address and
// shape, not its data, and the runtime owns the descriptor it allocates), so
// gpu-async-region need not synchronise the stream before it.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Interfaces/SideEffectInterfaces.h"

using namespace mlir;

namespace {

using EffectList =
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>;

struct LaunchFuncEffects
    : MemoryEffectOpInterface::ExternalModel<LaunchFuncEffects,
                                             gpu::LaunchFuncOp> {
  void getEffects(Operation *op, EffectList &effects) const {
    for (OpOperand &operand : op->getOpOperands()) {
      if (!isa<BaseMemRefType>(operand.get().getType()))
        continue;
      effects.emplace_back(MemoryEffects::Read::get(), &operand);
      effects.emplace_back(MemoryEffects::Write::get(), &operand);
    }
    effects.emplace_back(MemoryEffects::Write::get());
  }
};

struct TmaCreateDescriptorEffects
    : MemoryEffectOpInterface::ExternalModel<TmaCreateDescriptorEffects,
                                             nvgpu::TmaCreateDescriptorOp> {
  void getEffects(Operation *, EffectList &) const {}
};

} // namespace

void mlir::moe::registerGpuHostOpEffects(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, gpu::GPUDialect *) {
    gpu::LaunchFuncOp::attachInterface<LaunchFuncEffects>(*ctx);
  });
  registry.addExtension(+[](MLIRContext *ctx, nvgpu::NVGPUDialect *) {
    nvgpu::TmaCreateDescriptorOp::attachInterface<TmaCreateDescriptorEffects>(
        *ctx);
  });
}
