//===- FusedEpilogue.cpp - elementwise consumers in a GEMM epilogue -------===//

#include "codegen/gpu/FusedEpilogue.h"
#include "dialect/LoweringUtils.h"
#include "dialect/MoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/SetVector.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Whether `v`, used in the payload `body`, is available to a copy of the
/// payload in a kernel: defined in the payload, or a constant.
bool availableInKernel(Value v, Block &body) {
  if (v.getParentBlock() == &body)
    return true;
  Operation *def = v.getDefiningOp();
  return def && matchPattern(def, m_Constant());
}

/// A payload of scalar ops without effects or regions (no linalg.index: the
/// kernel knows no loop indices), yielding one value.
bool isScalarPayload(Block &body) {
  for (Operation &op : body.without_terminator()) {
    if (op.getNumRegions() != 0 || !isMemoryEffectFree(&op) ||
        isa<linalg::IndexOp>(op))
      return false;
    if (!llvm::all_of(op.getOperands(),
                      [&](Value v) { return availableInKernel(v, body); }))
      return false;
  }
  Operation *yield = body.getTerminator();
  return yield->getNumOperands() == 1 &&
         availableInKernel(yield->getOperand(0), body);
}

/// The access of an operand of a generic over (row, col) through `map`.
std::optional<FusedEpilogue::Access> accessOf(AffineMap map) {
  MLIRContext *ctx = map.getContext();
  if (map.isIdentity())
    return FusedEpilogue::Access::Element;
  if (map == projectionMap(ctx, 2, {1}))
    return FusedEpilogue::Access::Column;
  if (map == projectionMap(ctx, 2, {0}))
    return FusedEpilogue::Access::Row;
  return std::nullopt;
}

/// `combine` when the epilogue can gather it: unweighted (the rows carry
/// their weights), an f32 sum read by `reader` only.
CombineOp gatherableCombine(Value v, Operation *reader) {
  auto combine = v.getDefiningOp<CombineOp>();
  if (!combine || combine.getWeights() ||
      !cast<RankedTensorType>(combine.getType()).getElementType().isF32())
    return {};
  auto slots = cast<RankedTensorType>(combine.getSlotToRow().getType());
  if (slots.isDynamicDim(1) ||
      !llvm::all_of(combine->getUsers(),
                    [&](Operation *user) { return user == reader; }))
    return {};
  return combine;
}

/// A structural description of `body` (op names, attributes, operands by
/// position, constants by value, result types).
void describePayload(Block &body, llvm::raw_ostream &os) {
  llvm::DenseMap<Value, std::string> names;
  for (BlockArgument arg : body.getArguments())
    names[arg] = "a" + std::to_string(arg.getArgNumber());
  unsigned position = 0;
  for (Operation &op : body) {
    os << op.getName() << op.getAttrDictionary() << "(";
    for (Value v : op.getOperands()) {
      auto it = names.find(v);
      if (it != names.end()) {
        os << it->second << ",";
        continue;
      }
      Attribute value;
      matchPattern(v, m_Constant(&value));
      os << value << ",";
    }
    os << ")";
    for (OpResult r : op.getResults()) {
      os << r.getType() << ";";
      names[r] = "v" + std::to_string(position) + "." +
                 std::to_string(r.getResultNumber());
    }
    ++position;
  }
}

} // namespace

bool FusedEpilogue::append(linalg::GenericOp op, Value chained) {
  auto type = dyn_cast<RankedTensorType>(chained.getType());
  if (!type || type.getRank() != 2 || op.getNumDpsInits() != 1 ||
      op.getNumLoops() != 2 || op.getNumReductionLoops() != 0 ||
      !isScalarPayload(*op.getBlock()))
    return false;
  auto resultType = cast<RankedTensorType>(op.getResult(0).getType());
  if (resultType.getDimSize(1) != type.getDimSize(1) ||
      !op.getMatchingIndexingMap(op.getDpsInitOperand(0)).isIdentity())
    return false;
  Stage stage{op, {}};
  SmallVector<Operand> added;
  for (OpOperand &operand : op->getOpOperands()) {
    BlockArgument arg = op.getMatchingBlockArgument(&operand);
    AffineMap map = op.getMatchingIndexingMap(&operand);
    if (operand.get() == chained) {
      if (!map.isIdentity())
        return false;
      stage.argOperand.push_back(-1);
      continue;
    }
    // An init read by nothing (a tensor.empty) is only the output's shape.
    if (op.isDpsInit(&operand) && arg.use_empty()) {
      stage.argOperand.push_back(-2);
      continue;
    }
    std::optional<Access> access = accessOf(map);
    if (!access || !isa<RankedTensorType>(operand.get().getType()))
      return false;
    Operand read{*access, operand.get(), Value(), Value()};
    if (*access == Access::Element) {
      if (CombineOp combine = gatherableCombine(operand.get(), op))
        read = {Access::Combine, combine.getRows(), combine.getSlotToRow(),
                combine.getCounts()};
    }
    stage.argOperand.push_back(operands.size() + added.size());
    added.push_back(read);
  }
  llvm::append_range(operands, added);
  stages.push_back(std::move(stage));
  return true;
}

FusedEpilogue FusedEpilogue::collect(Value product) {
  FusedEpilogue epilogue;
  Value chained = product;
  while (true) {
    if (chained.use_empty())
      break;
    // The launch moves to the last generic: it must stay in the product's
    // block (not run once per iteration of a loop around a consumer).
    auto reader = dyn_cast<linalg::GenericOp>(*chained.getUsers().begin());
    if (!reader || reader->getBlock() != product.getParentBlock() ||
        !llvm::all_of(chained.getUsers(),
                      [&](Operation *user) { return user == reader; }))
      break;
    if (!epilogue.append(reader, chained))
      break;
    chained = reader.getResult(0);
  }
  return epilogue;
}

Value FusedEpilogue::result() const {
  linalg::GenericOp last = stages.back().op;
  return last.getResult(0);
}

SmallVector<Value> FusedEpilogue::tensors() const {
  SmallVector<Value> values;
  for (const Operand &operand : operands) {
    values.push_back(operand.tensor);
    if (operand.access == Access::Combine) {
      values.push_back(operand.slotToRow);
      values.push_back(operand.counts);
    }
  }
  return values;
}

std::string FusedEpilogue::key() const {
  std::string key;
  llvm::raw_string_ostream os(key);
  for (const Stage &stage : stages) {
    os << "stage[";
    for (int index : stage.argOperand)
      os << index << ",";
    linalg::GenericOp op = stage.op;
    describePayload(*op.getBlock(), os);
    os << "]";
  }
  for (const Operand &operand : operands)
    os << static_cast<int>(operand.access) << ":" << operand.tensor.getType()
       << ";";
  return key;
}

void FusedEpilogue::erase(RewriterBase &rewriter) const {
  for (const Stage &stage : llvm::reverse(stages)) {
    // The combines this generic gathers have no other reader (it may read
    // one through several operands).
    llvm::SetVector<Operation *> combines;
    for (auto [position, index] : llvm::enumerate(stage.argOperand))
      if (index >= 0 && operands[index].access == Access::Combine)
        combines.insert(stage.op->getOperand(position).getDefiningOp());
    rewriter.eraseOp(stage.op);
    for (Operation *combine : combines)
      rewriter.eraseOp(combine);
  }
}

//===----------------------------------------------------------------------===//
// In the kernel
//===----------------------------------------------------------------------===//

FusedEpilogue::Emitter::Emitter(const FusedEpilogue &epilogue,
                                ValueRange buffers)
    : epilogue(epilogue), buffers(buffers) {
  unsigned buffer = 0;
  for (const Operand &operand : epilogue.operands) {
    firstBuffer.push_back(buffer);
    buffer += operand.access == Access::Combine ? 3 : 1;
  }
}

void FusedEpilogue::Emitter::beginRow(OpBuilder &b, Location loc,
                                      Value rowIndex) {
  row = rowIndex;
  rowValues.assign(epilogue.operands.size(), {});
  for (auto [index, operand] : llvm::enumerate(epilogue.operands)) {
    unsigned buffer = firstBuffer[index];
    if (operand.access == Access::Row)
      rowValues[index] = {
          memref::LoadOp::create(b, loc, buffers[buffer], ValueRange{row})};
    if (operand.access == Access::Combine) {
      Value slotToRow = buffers[buffer + 1], counts = buffers[buffer + 2];
      auto slots = cast<MemRefType>(slotToRow.getType()).getDimSize(1);
      rowValues[index].push_back(
          memref::LoadOp::create(b, loc, counts, ValueRange{row}));
      for (int64_t j = 0; j < slots; ++j)
        rowValues[index].push_back(memref::LoadOp::create(
            b, loc, slotToRow,
            ValueRange{row, arith::ConstantIndexOp::create(b, loc, j)}));
    }
  }
}

/// The combine's sum at (row, col): zero, plus each used slot's row in
/// slot order (unused slots hold row -1 and are never read), as
/// convert-moe-to-linalg's combine adds them.
Value FusedEpilogue::Emitter::gatherCombine(OpBuilder &b, Location loc,
                                            unsigned operand, Value col) {
  Value rows = buffers[firstBuffer[operand]];
  ArrayRef<Value> values = rowValues[operand];
  Value count = values.front();
  Value partial = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0));
  for (auto [slot, slotRowValue] : llvm::enumerate(values.drop_front())) {
    Value slotRow = slotRowValue;
    Value used = arith::CmpIOp::create(
        b, loc, arith::CmpIPredicate::slt,
        arith::ConstantIntOp::create(b, loc, b.getI32Type(), slot), count);
    auto ifOp = scf::IfOp::create(
        b, loc, used,
        [&](OpBuilder &tb, Location tl) {
          Value r =
              arith::IndexCastOp::create(tb, tl, tb.getIndexType(), slotRow);
          Value v = extendToF32(
              tb, tl, memref::LoadOp::create(tb, tl, rows, ValueRange{r, col}));
          scf::YieldOp::create(
              tb, tl, Value(arith::AddFOp::create(tb, tl, partial, v)));
        },
        [&](OpBuilder &eb, Location el) {
          scf::YieldOp::create(eb, el, partial);
        });
    partial = ifOp.getResult(0);
  }
  return partial;
}

Value FusedEpilogue::Emitter::load(OpBuilder &b, Location loc,
                                   unsigned operand, Value col) {
  const Operand &read = epilogue.operands[operand];
  Value buffer = buffers[firstBuffer[operand]];
  switch (read.access) {
  case Access::Element:
    return memref::LoadOp::create(b, loc, buffer, ValueRange{row, col});
  case Access::Column:
    return memref::LoadOp::create(b, loc, buffer, ValueRange{col});
  case Access::Row:
    return rowValues[operand].front();
  case Access::Combine:
    return gatherCombine(b, loc, operand, col);
  }
  llvm_unreachable("unknown access");
}

Value FusedEpilogue::Emitter::apply(OpBuilder &b, Location loc, Value value,
                                    Value col) {
  for (const Stage &stage : epilogue.stages) {
    linalg::GenericOp op = stage.op;
    Block &body = *op.getBlock();
    IRMapping mapping;
    for (auto [arg, index] : llvm::zip(body.getArguments(), stage.argOperand)) {
      if (index == -1)
        mapping.map(arg, value);
      else if (index >= 0)
        mapping.map(arg, load(b, loc, index, col));
    }
    // Constants from outside the payload are copied into the kernel.
    auto mapConstants = [&](Operation &op) {
      for (Value v : op.getOperands())
        if (!mapping.contains(v) && v.getParentBlock() != &body)
          mapping.map(v, b.clone(*v.getDefiningOp())->getResult(0));
    };
    for (Operation &op : body.without_terminator()) {
      mapConstants(op);
      b.clone(op, mapping);
    }
    mapConstants(*body.getTerminator());
    value = mapping.lookup(body.getTerminator()->getOperand(0));
  }
  return value;
}
