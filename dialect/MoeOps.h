//===- MoeOps.h - moe operations --------------------------------*- C++ -*-===//

#ifndef MOEC_DIALECT_MOEOPS_H
#define MOEC_DIALECT_MOEOPS_H

#include "dialect/MoeAttrs.h"
#include "dialect/MoeDialect.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/LLVMIR/LLVMTypes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define GET_OP_CLASSES
#include "dialect/MoeOps.h.inc"

#endif // MOEC_DIALECT_MOEOPS_H
