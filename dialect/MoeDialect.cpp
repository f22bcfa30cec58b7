//===- MoeDialect.cpp - The moe dialect -----------------------------------===//

#include "dialect/MoeDialect.h"
#include "dialect/MoeAttrs.h"
#include "dialect/MoeOps.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/Transforms/InliningUtils.h"

using namespace mlir;
using namespace mlir::moe;

#include "dialect/MoeDialect.cpp.inc"

namespace {

/// Every moe op may be inlined: none refers to its enclosing function. The
/// CUDA pipeline inlines the layer functions into the forward pass (which
/// still holds moe.weight) to put all its GPU work on one stream.
struct MoeInlinerInterface : DialectInlinerInterface {
  using DialectInlinerInterface::DialectInlinerInterface;

  bool isLegalToInline(Operation *, Region *, bool, IRMapping &) const final {
    return true;
  }
};

} // namespace

void MoeDialect::initialize() {
  registerAttributes();
  addOperations<
#define GET_OP_LIST
#include "dialect/MoeOps.cpp.inc"
      >();
  addInterfaces<MoeInlinerInterface>();
}
