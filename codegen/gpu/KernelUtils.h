//===- KernelUtils.h - pieces the sm_90a kernel passes share ----*- C++ -*-===//
//
// moe-tile-grouped-matmul-sm90 and moe-tile-attention-sm90 both build each
// kernel as a gpu.func in a gpu.module of its own, on read-only buffers of
// tensor operands and views of dynamic shared memory.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_GPU_KERNELUTILS_H
#define MOEC_CODEGEN_GPU_KERNELUTILS_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::moe {

/// Shared memory.
gpu::AddressSpaceAttr workgroupSpace(MLIRContext *ctx);

/// A read-only buffer of tensor `t` (identity layout, `t`'s shape).
Value readBuffer(ImplicitLocOpBuilder &b, Value t);

/// An empty kernel `name` of argument types `types` and `threads` threads
/// per block, in a gpu.module of its own at the end of `module` (inserted
/// into `symbols`, which renames it on a clash); `b` is left at the start
/// of its body.
gpu::GPUFuncOp createKernel(ImplicitLocOpBuilder &b, ModuleOp module,
                            SymbolTable &symbols, StringRef name,
                            TypeRange types, int64_t threads);

} // namespace mlir::moe

#endif // MOEC_CODEGEN_GPU_KERNELUTILS_H
