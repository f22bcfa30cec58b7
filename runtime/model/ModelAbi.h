//===- ModelAbi.h - the compiled-model ABI, defined once --------*- C++ -*-===//
//
// What an object emitted by `moec compile` provides and the model runtime
// calls. The compiler (importer/, codegen/HostCodegen.cpp) writes it, the
// runtime (runtime/model/Model.cpp) reads it; both take the names below from
// here. Plain C++17: compiled models' runtime includes it without LLVM.
//
//   extern "C" void forward_packed(void **args);
//     args[0]: the results, a pack of memref descriptors: the logits
//              F32 [B, T, V], then the kNumStatsResults I32 vectors of the
//              routing statistics (every MoE layer's segment one after the
//              other: experts per (sub-)token [B·T·heads], rows per expert
//              [E_l], ADR level per token [B·T]);
//     args[1]: the descriptor of the I32 [B, T] token ids;
//     args[2]: the weight table, `void *table[]`: the address of each
//              weight, in manifest order, each dense and row-major in the
//              manifest's dtype and shape.
//   extern "C" const char moec_model_manifest[];
//     JSON: {"format": kManifestFormat, "entry", "vocab_size",
//     "hidden_size", "num_layers", "params": [{"name", "dtype", "shape"}],
//     "stats": [{"layer", "experts", "heads"}]} (one per MoE layer).
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_MODEL_MODELABI_H
#define MOEC_RUNTIME_MODEL_MODELABI_H

namespace moec::abi {

/// The model function the importer builds; the object exports
/// `<kEntry>_packed`.
inline constexpr const char kEntry[] = "forward";
inline constexpr const char kPackedEntry[] = "forward_packed";
inline constexpr const char kManifestSymbol[] = "moec_model_manifest";
/// Changes whenever the layout above does.
inline constexpr const char kManifestFormat[] = "moec-model-2";
inline constexpr unsigned kNumStatsResults = 3;

} // namespace moec::abi

#endif // MOEC_RUNTIME_MODEL_MODELABI_H
