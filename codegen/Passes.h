//===- Passes.h - moe codegen passes ----------------------------*- C++ -*-===//

#ifndef MOEC_CODEGEN_PASSES_H
#define MOEC_CODEGEN_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir {
class RewritePatternSet;
class ConversionTarget;
class TypeConverter;

namespace moe {

#define GEN_PASS_DECL
#include "codegen/Passes.h.inc"

/// Patterns lowering moe kernel ops to linalg/tensor (convert-moe-to-linalg);
/// `staticRowBound` as the pass option.
void populateMoeToLinalgConversionPatterns(RewritePatternSet &patterns,
                                           bool staticRowBound = false);

/// Patterns lowering moe.dispatch to parallel generics (a chunked, stable
/// placement); with `staticRowBound`, the rows are sized by the T·K slots
/// instead of a read of offsets[E]. Part of convert-moe-to-linalg.
void populateDispatchToLinalgPatterns(RewritePatternSet &patterns,
                                      bool staticRowBound);

/// Marks a math op that convert-moe-to-linalg replaces by MLIR's polynomial
/// approximation once its patterns have run (hot scalar exps, which LLVM
/// would otherwise lower to a libm call).
inline constexpr llvm::StringLiteral kApproximateAttrName = "moe.approximate";

/// Patterns lowering moe.attention and moe.grouped_attention to an scf.forall
/// over (batch, query, head) with an online softmax per query; part of
/// convert-moe-to-linalg.
void populateAttentionToLinalgPatterns(RewritePatternSet &patterns);

/// Registers the moe dialect's lowering to the LLVM dialect (moe.weight's
/// buffer form, through `convert-to-llvm`'s dialect interface) and its
/// translation to LLVM IR (moe attributes on functions translate to
/// nothing). Tools that lower or translate moe modules call it.
void registerMoeToLLVMInterfaces(DialectRegistry &registry);

/// Declares the memory effects of the GPU ops that host code holds during
/// bufferization (gpu.launch_func, nvgpu.tma.create.descriptor), which the
/// buffer deallocation pipeline needs after moe-tile-grouped-matmul-sm90.
void registerGpuHostOpEffects(DialectRegistry &registry);

#define GEN_PASS_REGISTRATION
#include "codegen/Passes.h.inc"

} // namespace moe
} // namespace mlir

#endif // MOEC_CODEGEN_PASSES_H
