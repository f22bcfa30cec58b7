//===- KernelUtils.cpp - pieces the sm_90a kernel passes share ------------===//

#include "codegen/gpu/KernelUtils.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"

using namespace mlir;

gpu::AddressSpaceAttr moe::workgroupSpace(MLIRContext *ctx) {
  return gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
}

Value moe::readBuffer(ImplicitLocOpBuilder &b, Value t) {
  auto type = cast<RankedTensorType>(t.getType());
  return bufferization::ToBufferOp::create(
      b, MemRefType::get(type.getShape(), type.getElementType()), t,
      /*read_only=*/true);
}

gpu::GPUFuncOp moe::createKernel(ImplicitLocOpBuilder &b, ModuleOp module,
                                 SymbolTable &symbols, StringRef name,
                                 TypeRange types, int64_t threads) {
  b.setInsertionPointToEnd(module.getBody());
  auto gpuModule = gpu::GPUModuleOp::create(b, name);
  symbols.insert(gpuModule);
  b.setInsertionPointToStart(gpuModule.getBody());
  auto kernel = gpu::GPUFuncOp::create(b, name, b.getFunctionType(types, {}),
                                       TypeRange(), TypeRange());
  kernel->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  kernel.setKnownBlockSizeAttr(
      b.getDenseI32ArrayAttr({static_cast<int32_t>(threads), 1, 1}));
  b.setInsertionPointToStart(&kernel.getBody().front());
  return kernel;
}
