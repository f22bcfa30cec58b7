//===- ModelAbi.h - the compiled-model ABI, defined once --------*- C++ -*-===//
//
// What an object emitted by `moec compile` provides and the model runtime
// calls. The compiler (importer/, codegen/HostCodegen.cpp) writes it, the
// runtime (runtime/model/Model.cpp) reads it; both take the names below from
// here. Plain C++17: compiled models' runtime includes it without LLVM.
//
//   extern "C" void forward_packed(void **args);
//     args[0]: the results, a pack of memref descriptors: the logits
//              F32 [B, P, V] of the last P positions of each sequence,
//              then the kNumStatsResults I32 vectors of the
//              routing statistics (every MoE layer's segment one after the
//              other: experts per (sub-)token [B·T·heads], rows per expert
//              [E_l], ADR level per token [B·T]);
//     args[1]: the descriptor of the I32 [B, T] token ids;
//     args[2]: the weight table, `void *table[]`: the address of each
//              weight, in manifest order, each dense and row-major in the
//              manifest's dtype and shape;
//     args[3]: the address of an int64_t P in [1, T]: the positions whose
//              logits are computed (T: all; 1: the last, as generation
//              needs). The routing statistics cover every token whatever P.
//   extern "C" void prefill_packed(void **args);
//     forward_packed's arguments and results, then
//     args[4]: the descriptor of the F32 [n] KV cache, n =
//              cache_size(B, C) for B sequences of at most C tokens;
//     args[5]: the address of an int64_t C >= T.
//     It also writes what the decode steps need of the prompt into the cache
//     (docs/contracts.md §4.3 gives the layout).
//   extern "C" void decode_packed(void **args);
//     One token per sequence at position p, against the cache:
//     args[0]: the results as forward_packed's with T = P = 1 (the logits
//              F32 [B, 1, V] and the statistics of the B tokens);
//     args[1]: the descriptor of the I32 [B, 1] token ids;
//     args[2]: the weight table;
//     args[3]: the cache, which a prefill_packed or decode_packed with the
//              same B and C filled up to position p - 1;
//     args[4]: the address of an int64_t C;
//     args[5]: the address of an int64_t p in [1, C): the tokens each
//              sequence holds before this one.
//   extern "C" void cache_size_packed(void **args);
//     args[0]: the address of an int64_t that receives n, the cache's F32
//              elements for args[1] -> int64_t B sequences of args[2] ->
//              int64_t C tokens at most.
//   extern "C" const char moec_model_manifest[];
//     JSON, with the keys of namespace `manifest` below:
//     {"format": kManifestFormat,
//      "target": "cpu" | "cuda" (which device library the model needs),
//      "vocab_size": V,
//      "params": [{"name", "dtype": "F32" | "BF16", "shape": [...]}, ...]
//                (the weight table's order),
//      "stats": [{"layer", "experts", "heads"}, ...] (one per MoE layer)}.
//     The runtime reads every key; a key only a reader of the object would
//     want does not belong here.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_MODEL_MODELABI_H
#define MOEC_RUNTIME_MODEL_MODELABI_H

namespace moec::abi {

/// The model function the importer builds; the object exports
/// `<kEntry>_packed`.
inline constexpr const char kEntry[] = "forward";
inline constexpr const char kPackedEntry[] = "forward_packed";
/// The entries of generation: a forward pass that also fills the KV cache,
/// a decode step against it, and the cache's size. Each is exported as
/// `<name>_packed`.
inline constexpr const char kPrefillEntry[] = "prefill";
inline constexpr const char kDecodeEntry[] = "decode";
inline constexpr const char kCacheSizeEntry[] = "cache_size";
/// Every entry, in the order above.
inline constexpr const char *kEntries[] = {kEntry, kPrefillEntry,
                                           kDecodeEntry, kCacheSizeEntry};
inline constexpr const char kManifestSymbol[] = "moec_model_manifest";
/// Changes whenever the layout above does.
inline constexpr const char kManifestFormat[] = "moec-model-6";
inline constexpr unsigned kNumStatsResults = 3;

/// The manifest's keys, written by the importer (importer/ModelImporter.cpp)
/// and read by the model runtime (runtime/model/Model.cpp).
namespace manifest {
inline constexpr const char kFormat[] = "format";
inline constexpr const char kTarget[] = "target";
inline constexpr const char kVocabSize[] = "vocab_size";
inline constexpr const char kParams[] = "params";
inline constexpr const char kName[] = "name";
inline constexpr const char kDtype[] = "dtype";
inline constexpr const char kShape[] = "shape";
inline constexpr const char kStats[] = "stats";
inline constexpr const char kLayer[] = "layer";
inline constexpr const char kExperts[] = "experts";
inline constexpr const char kHeads[] = "heads";
/// The values of kTarget.
inline constexpr const char kTargetCpu[] = "cpu";
inline constexpr const char kTargetCuda[] = "cuda";
/// The values of kDtype.
inline constexpr const char kF32[] = "F32";
inline constexpr const char kBF16[] = "BF16";
} // namespace manifest

} // namespace moec::abi

#endif // MOEC_RUNTIME_MODEL_MODELABI_H
