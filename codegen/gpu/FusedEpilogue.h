//===- FusedEpilogue.h - elementwise consumers in a GEMM epilogue -*- C++ -*-=//
//
// The elementwise linalg generics that consume a tensor-core grouped
// matmul's result (a bias, a residual add, the shared expert added to the
// routed experts' sum), applied by the GEMM kernel to each output element
// in registers instead of by kernels of their own, each a pass over memory.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_GPU_FUSEDEPILOGUE_H
#define MOEC_CODEGEN_GPU_FUSEDEPILOGUE_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/PatternMatch.h"

#include <string>

namespace mlir::moe {

/// A chain of generics g1, g2, ... where g1 reads the product [rows, N] and
/// each next one reads its predecessor's result, each the only reader of
/// the value before it. A generic joins the chain when it is elementwise
/// over the product's [rows, N] (two parallel loops, identity output map,
/// a payload of pure scalar ops and constants) and reads its other operands
/// at the output element (identity map), at its column (a bias) or at its
/// row. An element operand produced by an unweighted `moe.combine` read by
/// nothing else is gathered in the epilogue too: its per-token sum over the
/// slots' rows, in slot order, as the combine would compute it.
class FusedEpilogue {
public:
  /// How the kernel reads an operand at output element (row, col).
  enum class Access { Element, Column, Row, Combine };
  struct Operand {
    Access access;
    /// The tensor read, or a combine's rows.
    Value tensor;
    /// For Combine: the combine's slot_to_row [T, K] and counts [T].
    Value slotToRow, counts;
  };

  /// The chain reading `product`; empty when its reader does not qualify.
  static FusedEpilogue collect(Value product);

  bool empty() const { return stages.empty(); }
  /// The value the fused kernel's output replaces: the last generic's.
  Value result() const;
  /// The tensors the kernel reads, in kernel-argument order.
  SmallVector<Value> tensors() const;
  /// Identifies the payload and operand types, for kernel sharing.
  std::string key() const;
  /// Erases the fused generics and combines, once result() is replaced.
  void erase(RewriterBase &rewriter) const;

  /// Emits the chain inside the kernel, whose arguments `buffers` are the
  /// buffers of tensors() in order.
  class Emitter {
  public:
    Emitter(const FusedEpilogue &epilogue, ValueRange buffers);
    /// Loads what output row `row` reads whatever its column: the row
    /// operands, and the rows and slot count of a combine's token.
    void beginRow(OpBuilder &b, Location loc, Value row);
    /// The chain applied to `value` (the product's element at the row of
    /// the last beginRow and column `col`).
    Value apply(OpBuilder &b, Location loc, Value value, Value col);

  private:
    Value load(OpBuilder &b, Location loc, unsigned operand, Value col);
    Value gatherCombine(OpBuilder &b, Location loc, unsigned operand,
                        Value col);

    const FusedEpilogue &epilogue;
    SmallVector<Value> buffers;
    /// Per operand: its first buffer (a combine has three).
    SmallVector<unsigned> firstBuffer;
    Value row;
    /// Per operand: its value at the row (Row), or the combine's count and
    /// slot rows (Combine); empty otherwise.
    SmallVector<SmallVector<Value>> rowValues;
  };

private:
  struct Stage {
    linalg::GenericOp op;
    /// Per payload argument: the operand it reads (an index into
    /// `operands`), or -1 for the chain's value.
    SmallVector<int> argOperand;
  };
  bool append(linalg::GenericOp op, Value chained);

  SmallVector<Stage> stages;
  SmallVector<Operand> operands;
};

} // namespace mlir::moe

#endif // MOEC_CODEGEN_GPU_FUSEDEPILOGUE_H
