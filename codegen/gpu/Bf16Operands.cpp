//===- Bf16Operands.cpp - bf16 copies of tensor-core kernel operands ------===//

#include "codegen/gpu/Bf16Operands.h"
#include "dialect/LoweringUtils.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

/// `t`'s elements truncated to bf16, one elementwise generic.
Value truncateAll(ImplicitLocOpBuilder &b, Value t) {
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, b.getLoc(), t);
  Value init = tensor::EmptyOp::create(b, sizes, b.getBF16Type());
  auto dims = llvm::to_vector(
      llvm::seq<unsigned>(0, cast<RankedTensorType>(t.getType()).getRank()));
  GenericBuilder generic{
      b, b.getLoc(),
      SmallVector<utils::IteratorType>(dims.size(),
                                       utils::IteratorType::parallel)};
  return generic.build(
      t, {dims}, init, {dims},
      [&](OpBuilder &nb, Location loc, ValueRange args) {
        linalg::YieldOp::create(
            nb, loc, truncateFromF32(nb, loc, args[0], nb.getBF16Type()));
      })[0];
}

/// `producer`'s twin yielding its value truncated to bf16, when its one
/// init only gives the shape (its payload does not read it); null otherwise.
Value narrowedGeneric(ImplicitLocOpBuilder &b, linalg::GenericOp producer) {
  if (producer->getNumResults() != 1 || producer.getNumDpsInits() != 1 ||
      !producer.getMatchingBlockArgument(producer.getDpsInitOperand(0))
           .use_empty())
    return {};
  Value oldInit = producer.getDpsInitOperand(0)->get();
  Value init = tensor::EmptyOp::create(
      b, tensor::getMixedSizes(b, b.getLoc(), oldInit), b.getBF16Type());
  auto narrowed = linalg::GenericOp::create(
      b, TypeRange{init.getType()}, producer.getDpsInputs(), ValueRange{init},
      producer.getIndexingMapsArray(), producer.getIteratorTypesArray(),
      [&](OpBuilder &nb, Location loc, ValueRange args) {
        IRMapping mapping;
        Block &body = *producer.getBlock();
        mapping.map(body.getArguments().drop_back(), args.drop_back());
        for (Operation &op : body.without_terminator())
          nb.clone(op, mapping);
        Value v = mapping.lookupOrDefault(body.getTerminator()->getOperand(0));
        linalg::YieldOp::create(
            nb, loc, truncateFromF32(nb, loc, v, nb.getBF16Type()));
      });
  return narrowed.getResult(0);
}

} // namespace

Value Bf16Operands::get(ImplicitLocOpBuilder &b, Value t) {
  if (cast<RankedTensorType>(t.getType()).getElementType().isBF16())
    return t;
  Value &copy = copies[t];
  if (copy)
    return copy;
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointAfterValue(t);
  auto producer = t.getDefiningOp<linalg::GenericOp>();
  bool onlyBf16Readers = llvm::all_of(
      t.getUses(), [&](OpOperand &use) { return readsBf16(use); });
  if (producer && onlyBf16Readers && (copy = narrowedGeneric(b, producer)))
    narrowed.push_back(producer);
  if (!copy)
    copy = truncateAll(b, t);
  return copy;
}

void Bf16Operands::eraseNarrowed() {
  for (Operation *op : narrowed)
    if (op->use_empty())
      op->erase();
}

void Bf16Operands::replaced(Value old, Value replacement) {
  auto it = copies.find(old);
  if (it == copies.end())
    return;
  Value copy = it->second;
  copies.erase(it);
  copies[replacement] = copy;
}
