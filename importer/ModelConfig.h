//===- ModelConfig.h - a model description, parsed and validated -*- C++
//-*-===//
//
// The Hugging Face style config.json of docs/semantics.md §1: model_type
// mixtral or qwen2_moe with their standard keys, plus moec's optional "moec"
// extension object. Parsing validates every key moec uses, so that later stages
// can trust the numbers; errors name the file and the key.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTER_MODELCONFIG_H
#define MOEC_IMPORTER_MODELCONFIG_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace moec {

enum class ModelType { Mixtral, Qwen2Moe };
/// TopK and TopP are docs/semantics.md §3; Threshold is #moe.threshold (every
/// expert with p > threshold, at least one).
enum class RoutingPolicy { TopK, TopP, Threshold };
enum class AttentionKind { Full, Sliding, Grouped };

/// "moec": {"routing": ...}; without it, top-k with the model's k.
struct RoutingConfig {
  RoutingPolicy policy = RoutingPolicy::TopK;
  double threshold = 0.0;            // top_p, threshold
  std::optional<int64_t> maxExperts; // top_p, threshold
  bool normalize = false; // top_p, threshold; top_k follows the model
};

/// "moec": {"expert_schedule": ...}: E_l per layer (docs/semantics.md §4).
struct ExpertScheduleConfig {
  std::string kind; // uniform|descending|ascending|pyramid|hourglass|wave
  int64_t minExperts = 0;
  int64_t maxExperts = 0;
  std::optional<int64_t> period; // wave only
};

/// "moec": {"shared_experts": ...}: the dual-scale shared experts.
struct DualScaleConfig {
  int64_t shallowIntermediateSize = 0;
  int64_t deepIntermediateSize = 0;
};

/// "moec": {"adaptive_routing": ...}.
struct AdaptiveRoutingConfig {
  double levelThreshold = 0.0;
  int64_t simpleMaxExperts = 0;
};

/// Attention: "full" unless sliding_window or "moec": {"attention": ...} say
/// otherwise.
struct AttentionConfig {
  AttentionKind kind = AttentionKind::Full;
  int64_t window = 0;    // sliding, grouped
  int64_t groupSize = 0; // grouped
};

struct ModelConfig {
  ModelType modelType = ModelType::Mixtral;
  int64_t hiddenSize = 0;
  int64_t numLayers = 0;
  int64_t numHeads = 0;
  int64_t numKVHeads = 0;
  int64_t headDim = 0;
  int64_t vocabSize = 0;
  double rmsNormEps = 1e-5;
  double ropeTheta = 1e6;
  bool tieWordEmbeddings = false;

  // Routed experts (before any expert schedule).
  int64_t numExperts = 0;
  int64_t expertsPerToken = 0;
  int64_t expertIntermediateSize = 0;
  bool normalizeTopK = true;

  // qwen2_moe only.
  int64_t denseIntermediateSize = 0; // intermediate_size: dense MLPs
  int64_t sharedExpertIntermediateSize = 0;
  int64_t decoderSparseStep = 1;
  std::vector<int64_t> mlpOnlyLayers;

  // The "moec" extension.
  RoutingConfig routing;
  std::optional<ExpertScheduleConfig> expertSchedule;
  std::optional<int64_t> multiHeadHeads;
  std::optional<DualScaleConfig> dualScale;
  std::optional<AdaptiveRoutingConfig> adaptiveRouting;
  AttentionConfig attention;

  /// Whether layer `l` has a MoE block (else a dense SwiGLU MLP, qwen2_moe).
  bool isSparseLayer(int64_t layer) const;

  /// An upper bound on the number of weight elements (every matrix and
  /// vector a layer may have), which parsing has checked to be at most
  /// kMaxWeightElements.
  int64_t weightElementBound() const;

  /// The MoE block's part of a layer's weight names: "block_sparse_moe"
  /// (model.layers.<l>.block_sparse_moe.gate.weight) or "mlp" (qwen2_moe).
  std::string moeBlockName() const;
};

/// The most layers a config may have: @forward makes one call per layer
/// (2048 layers compile in about 12 s on two cores), and the deepest
/// published MoE models have about 100.
inline constexpr int64_t kMaxLayers = int64_t(1) << 11;
/// The most weights a config may describe: 2^46 elements are 128 TiB in
/// bf16, the whole 47-bit user address space of 64-bit Linux.
inline constexpr int64_t kMaxWeightElements = int64_t(1) << 46;

/// Parses and validates `text`, the contents of the config file `fileName`
/// (used in messages). Warnings (unknown keys) go to `warnings`, one line
/// each. The error, if any, is one line naming the file and the key.
llvm::Expected<ModelConfig>
parseModelConfig(llvm::StringRef text, llvm::StringRef fileName,
                 std::vector<std::string> &warnings);

/// Reads and parses the file at `path`.
llvm::Expected<ModelConfig> readModelConfig(llvm::StringRef path,
                                            std::vector<std::string> &warnings);

} // namespace moec

#endif // MOEC_IMPORTER_MODELCONFIG_H
