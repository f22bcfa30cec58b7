//===- MoeDialect.h - The moe dialect ---------------------------*- C++ -*-===//

#ifndef MOEC_DIALECT_MOEDIALECT_H
#define MOEC_DIALECT_MOEDIALECT_H

#include "mlir/IR/Dialect.h"
#include "mlir/IR/Operation.h"

#include "dialect/MoeDialect.h.inc"

#endif // MOEC_DIALECT_MOEDIALECT_H
