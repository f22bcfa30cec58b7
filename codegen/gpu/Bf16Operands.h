//===- Bf16Operands.h - bf16 copies of tensor-core kernel operands -*- C++ -*-===//
//
// The tensor-core kernels of the CUDA pipeline multiply bf16; the model's
// activations are f32. Bf16Operands gives each f32 operand one bf16 copy,
// shared by every kernel that reads it, made as cheaply as the IR allows.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_GPU_BF16OPERANDS_H
#define MOEC_CODEGEN_GPU_BF16OPERANDS_H

#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/ADT/DenseMap.h"

#include <functional>

namespace mlir::moe {

class Bf16Operands {
public:
  /// `readsBf16(use)`: whether `use` is the operand of a kernel lowered by
  /// the caller, which reads it as bf16.
  explicit Bf16Operands(std::function<bool(OpOperand &)> readsBf16)
      : readsBf16(std::move(readsBf16)) {}

  /// `t` with bf16 elements: itself; where every reader of `t` reads it as
  /// bf16 and `t` is an elementwise generic's result (an RMS norm's scaling,
  /// RoPE), that generic yielding bf16 instead; otherwise a generic
  /// truncating its f32 elements. Placed after `t`'s definition, so that it
  /// serves every reader.
  Value get(ImplicitLocOpBuilder &b, Value t);
  /// `old`, whose copy may be cached, was replaced by `replacement`.
  void replaced(Value old, Value replacement);
  /// Erases the f32 generics replaced by bf16 twins, read by nothing now.
  void eraseNarrowed();

private:
  std::function<bool(OpOperand &)> readsBf16;
  llvm::DenseMap<Value, Value> copies;
  SmallVector<Operation *> narrowed;
};

} // namespace mlir::moe

#endif // MOEC_CODEGEN_GPU_BF16OPERANDS_H
