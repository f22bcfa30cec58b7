//===- MoeAttrs.h - moe attributes ------------------------------*- C++ -*-===//

#ifndef MOEC_DIALECT_MOEATTRS_H
#define MOEC_DIALECT_MOEATTRS_H

#include "llvm/ADT/APFloat.h"
#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectImplementation.h"

#include <optional>

namespace mlir::moe {
class RoutingPolicyAttrInterface;

/// Field parsers and printers for the readable attribute parameters.
FailureOr<bool> parseBoolParameter(AsmParser &parser);
FailureOr<llvm::APFloat> parseFloatParameter(AsmParser &parser);
void printFloatParameter(AsmPrinter &printer, const llvm::APFloat &value);
} // namespace mlir::moe

#include "dialect/MoeEnums.h.inc"
#include "dialect/MoeInterfaces.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialect/MoeAttrs.h.inc"

#endif // MOEC_DIALECT_MOEATTRS_H
