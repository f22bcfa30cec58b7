//===- Generation.h - sampling and generation sessions ----------*- C++ -*-===//
//
// Token-by-token generation on a compiled model (docs/semantics.md §9): a
// Sampler turns one position's logits into the next id (greedy, or
// temperature / top-k / top-p sampling with a seeded generator), a Session
// holds B sequences that grow by one token per decode step, and generate()
// is the loop the command line runs (--generate).
//
// A session owns a KV cache: its prefill runs the compiled model's prefill
// entry (a forward pass that fills the cache, with the LM head on the last
// position only), each decode step the decode entry (one token per
// sequence against the cache).
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_MODEL_GENERATION_H
#define MOEC_RUNTIME_MODEL_GENERATION_H

#include "runtime/model/Model.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace moec::runtime {

struct SamplingOptions {
  /// 0: greedy (the default); > 0: sampling at this temperature.
  double temperature = 0;
  /// Keep the k most likely ids (0: all).
  int64_t topK = 0;
  /// Keep the smallest set of most likely ids whose probability reaches p.
  double topP = 1;
  uint64_t seed = 0;

  /// Empty if the options are valid for a vocabulary of `vocab` ids, else a
  /// one-line reason naming the option.
  std::string validate(int64_t vocab) const;
};

class Sampler {
public:
  explicit Sampler(const SamplingOptions &options);

  /// The next id from one position's `vocab` logits.
  int32_t sample(const float *logits, int64_t vocab);

private:
  SamplingOptions options;
  std::mt19937_64 rng;
  /// Scratch: ids by decreasing logit, and their probabilities.
  std::vector<int32_t> order;
  std::vector<double> probs;
};

/// B sequences of one model, extended a token at a time.
class Session {
public:
  /// At most `maxBatch` sequences of at most `maxLength` tokens each.
  Session(CompiledModel &model, int64_t maxBatch, int64_t maxLength);

  /// Starts over with the I32 [B, T] `prompt`. False with a one-line
  /// `error` when the prompt does not fit the session.
  bool prefill(const HostTensor &prompt, std::string &error);

  /// Appends `tokens[b]` to sequence b (B ids, each in [0, V)). False with a
  /// one-line `error` past the maximum length or before a prefill.
  bool decode(const int32_t *tokens, std::string &error);

  /// The logits of each sequence's last position after the last prefill or
  /// decode, F32 [B, V] row-major; null before a prefill.
  const float *lastLogits() const;

  /// Forgets the sequences (the next call must be a prefill).
  void reset();

  const CompiledModel &model() const { return compiled; }
  int64_t batch() const { return rows; }
  int64_t length() const { return len; }
  int64_t maxLength() const { return capacity; }
  /// The bytes of its KV cache (0 before the first prefill).
  int64_t cacheBytes() const { return cache ? cache->bytes() : 0; }

  /// The routing statistics (docs/semantics.md §8) of every token fed to
  /// the model so far; null before a prefill.
  nlohmann::json statistics() const;

private:
  /// Keeps a pass's logits and statistics.
  void keep(CompiledModel::Outputs outputs);

  CompiledModel &compiled;
  int64_t maxRows, capacity;
  int64_t rows = 0, len = 0;
  /// Created by the first prefill, for that many sequences.
  std::unique_ptr<CompiledModel::Cache> cache;
  /// The last pass's logits, F32 [B, 1, V].
  std::optional<HostTensor> logits;
  /// Running routing counts of every pass since the prefill.
  std::optional<CompiledModel::RoutingTally> stats;
};

struct GenerateOptions {
  int64_t steps = 0;          // N, the tokens to generate per sequence
  std::optional<int32_t> eos; // stop a sequence at this id
  SamplingOptions sampling;
  bool keepLogits = false; // collect the logits of the generated positions
  /// Called after each step with the steps done (progress reports).
  std::function<void(int64_t)> onStep;
};

struct GenerateResult {
  HostTensor ids;                   // I32 [B, N]
  std::optional<HostTensor> logits; // F32 [B, N, V], with keepLogits
  nlohmann::json stats;
  double prefillSeconds = 0, decodeSeconds = 0;
  int64_t decodeSteps = 0; // steps run after the prefill
  int64_t cacheBytes = 0;  // the KV cache of the generation
  int64_t cacheLength = 0; // the tokens per sequence it was sized for
};

/// Generates `options.steps` tokens after each sequence of the I32 [B, T]
/// `prompt`. Null with a one-line `error` for a bad request.
std::optional<GenerateResult> generate(CompiledModel &model,
                                       const HostTensor &prompt,
                                       const GenerateOptions &options,
                                       std::string &error);

} // namespace moec::runtime

#endif // MOEC_RUNTIME_MODEL_GENERATION_H
