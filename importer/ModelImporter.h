//===- ModelImporter.h - a model description to the moe dialect -*- C++ -*-===//
//
// Builds the forward pass of a ModelConfig:
//
//   func.func @forward(%tokens: tensor<?x?xi32>, %weights: !llvm.ptr)
//       -> (tensor<?x?xVxf32>, tensor<?xi32>, tensor<SxI32>, tensor<?xi32>)
//
// `tokens` is [B, T] (both dynamic); `weights` is the runtime's table of
// weight addresses, which moe.weight ops read at their slots. The entry
// function's `moe.weights` attribute lists the table's entries in order:
// each weight's Hugging Face tensor name and static type. Stacked expert
// weights ([E, F, D]) name their per-expert tensors with an `{e}`
// placeholder, which the runtime expands for e = 0 .. E-1. Activations are
// f32; weights are f32 or bf16. The three i32 vectors are the packed
// routing statistics of all MoE layers (runtime/model/ModelAbi.h).
//
// Each distinct kind of decoder layer (dense or MoE, its expert count E_l,
// attention, MH-MoE) is one private function, `@layer_moe_e8`, `@layer_mlp`,
// that @forward calls once per layer with the slot of that layer's first
// weight, so the compiler's work and the code grow with the kinds of layer,
// not the depth. Layer functions carry `moe.layers` (the layers they
// compute) and their calls `no_inline`; code generation keeps them out of
// line in LLVM too.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTER_MODELIMPORTER_H
#define MOEC_IMPORTER_MODELIMPORTER_H

#include "importer/ModelConfig.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace moec {

enum class WeightType { F32, BF16 };

/// The keys of each entry of the entry function's `moe.weights`: the
/// tensor's name and its type.
inline constexpr llvm::StringLiteral kWeightNameKey = "name";
inline constexpr llvm::StringLiteral kWeightTypeKey = "type";

/// Builds the module; `configName` becomes its location's file name.
mlir::OwningOpRef<mlir::ModuleOp> importModel(mlir::MLIRContext &context,
                                              const ModelConfig &config,
                                              WeightType weightType,
                                              llvm::StringRef configName);

/// The JSON manifest compiled into the model for the runtime
/// (runtime/model/ModelAbi.h): the format, `target` (a value of
/// moec::abi::manifest::kTarget*), the vocabulary size, the weight table's
/// parameters (name, element type, shape) and the statistics segments.
std::string modelManifest(mlir::ModuleOp module, const ModelConfig &config,
                          llvm::StringRef target);

} // namespace moec

#endif // MOEC_IMPORTER_MODELIMPORTER_H
