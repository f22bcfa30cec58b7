//===- InlineLayers.cpp - layer functions inlined into the forward pass ---===//
//
// GPU only. The importer makes each distinct decoder layer one private
// function, called once per layer with `no_inline` so that the CPU compiles
// it once. On the GPU its kernels are outlined once per function all the
// same, and what remains of a layer function is host code that launches
// them; inlining it into the forward pass (after outlining, so every call
// site launches the same kernels) leaves one straight-line host function,
// which gpu-async-region can put on one stream. The flags the call sites
// pass as constants (whether a prefill fills the KV cache) then fold: an
// `scf.if` left in the entry would split its stream.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Transforms/InliningUtils.h"

namespace mlir::moe {
#define GEN_PASS_DEF_INLINELAYERS
#include "codegen/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// The marker the importer puts on layer functions.
constexpr llvm::StringLiteral kLayersAttr = "moe.layers";

void cloneBody(OpBuilder &, Region *src, Block *inlineBlock,
               Block *postInsertBlock, IRMapping &mapper, bool shouldClone) {
  Region *into = inlineBlock->getParent();
  if (shouldClone)
    src->cloneInto(into, postInsertBlock->getIterator(), mapper);
  else
    into->getBlocks().splice(postInsertBlock->getIterator(), src->getBlocks(),
                             src->begin(), src->end());
}

/// Replaces `op`, an `scf.if` without results on a constant condition, by
/// the region the condition selects.
void foldConstantIf(scf::IfOp op) {
  BoolAttr condition;
  if (op.getNumResults() ||
      !matchPattern(op.getCondition(), m_Constant(&condition)))
    return;
  Region &taken =
      condition.getValue() ? op.getThenRegion() : op.getElseRegion();
  if (!taken.empty()) {
    Block &body = taken.front();
    body.getTerminator()->erase();
    op->getBlock()->getOperations().splice(op->getIterator(),
                                           body.getOperations());
  }
  op.erase();
}

/// Layer functions hold host code only, every op of which may be inlined,
/// including those of dialects without an inliner interface of their own
/// (the TMA descriptors of moe-tile-grouped-matmul-sm90 and their casts).
struct LayerInliner : InlinerInterface {
  using InlinerInterface::InlinerInterface;
  bool isLegalToInline(Operation *, Operation *, bool) const override {
    return true;
  }
  bool isLegalToInline(Region *, Region *, bool, IRMapping &) const override {
    return true;
  }
  bool isLegalToInline(Operation *, Region *, bool,
                       IRMapping &) const override {
    return true;
  }
};

struct InlineLayersPass : moe::impl::InlineLayersBase<InlineLayersPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SmallVector<func::CallOp> calls;
    module.walk([&](func::CallOp call) {
      auto callee = symbols.lookup<func::FuncOp>(call.getCallee());
      if (callee && callee->hasAttr(kLayersAttr))
        calls.push_back(call);
    });
    LayerInliner interface(&getContext());
    llvm::SetVector<func::FuncOp> inlined, callers;
    for (func::CallOp call : calls) {
      auto callee = symbols.lookup<func::FuncOp>(call.getCallee());
      callers.insert(call->getParentOfType<func::FuncOp>());
      call.removeNoInlineAttr();
      if (failed(inlineCall(interface, cloneBody, call, callee,
                            &callee.getBody()))) {
        call.emitOpError() << "cannot inline layer function @"
                           << callee.getSymName();
        return signalPassFailure();
      }
      call.erase();
      inlined.insert(callee);
    }
    for (func::FuncOp callee : inlined)
      if (SymbolTable::symbolKnownUseEmpty(callee, module))
        callee.erase();
    // The branches on the flags the inlined call sites passed.
    SmallVector<scf::IfOp> branches;
    for (func::FuncOp caller : callers)
      if (caller)
        caller.walk([&](scf::IfOp op) { branches.push_back(op); });
    for (scf::IfOp op : branches)
      foldConstantIf(op);
  }
};

} // namespace
