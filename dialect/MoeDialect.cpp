//===- MoeDialect.cpp - The moe dialect -----------------------------------===//

#include "dialect/MoeDialect.h"
#include "dialect/MoeAttrs.h"
#include "dialect/MoeOps.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace mlir::moe;

#include "dialect/MoeDialect.cpp.inc"

void MoeDialect::initialize() {
  registerAttributes();
  addOperations<
#define GET_OP_LIST
#include "dialect/MoeOps.cpp.inc"
      >();
}
