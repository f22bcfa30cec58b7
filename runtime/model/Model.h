//===- Model.h - a compiled model with its weights bound --------*- C++ -*-===//
//
// The object `moec compile` emits provides `forward_packed(void **)` and the
// JSON manifest `moec_model_manifest` (codegen/HostCodegen.h). CompiledModel
// binds the weights the manifest names, calls the forward pass and turns its
// routing results into the statistics of docs/semantics.md §8. The command line
// (ModelMain.cpp) and the C API (moec_model.h) are thin layers over it.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_MODEL_MODEL_H
#define MOEC_RUNTIME_MODEL_MODEL_H

#include "runtime/model/Device.h"
#include "runtime/model/Tensors.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace moec::runtime {

class CompiledModel {
public:
  /// Binds the weights in `weightsPath` (a .safetensors file or a sharded
  /// checkpoint's index). Null with a one-line `error` on failure.
  static std::unique_ptr<CompiledModel> load(const std::string &weightsPath,
                                             std::string &error);

  int64_t vocabSize() const { return vocab; }

  /// Whether the `count` ids are all in [0, vocabSize()); if not, `error`
  /// names the first bad one and its position.
  bool checkTokenIds(const int32_t *ids, int64_t count,
                     std::string &error) const;

  struct Outputs {
    HostTensor logits; // F32 [B, P, V]: the last P positions of each sequence
    /// Three I32 vectors, the MoE layers' segments one after the other:
    /// experts per (sub-)token, rows per expert, ADR level per token.
    std::vector<HostTensor> stats;
  };

  /// Runs the model on I32 [B, T] token ids, each in [0, vocabSize()), with
  /// the logits of the last `positions` positions of each sequence (all of
  /// them outside [1, T]).
  Outputs forward(HostTensor &tokens, int64_t positions = 0);

  /// The KV cache (runtime/model/ModelAbi.h) of B sequences of at most C
  /// tokens, on the model's device: prefill() fills it and decode() extends
  /// it. It must not outlive its model.
  class Cache {
  public:
    ~Cache();
    int64_t batch() const { return rows; }
    int64_t capacity() const { return positions; }
    /// The memory it holds (docs/contracts.md §4.3 gives its layout).
    int64_t bytes() const { return elements * int64_t(sizeof(float)); }

  private:
    friend class CompiledModel;
    Cache(Device &device, int64_t rows, int64_t positions, int64_t elements)
        : device(device), rows(rows), positions(positions), elements(elements) {
    }
    Device &device;
    int64_t rows, positions, elements;
    std::optional<HostTensor> host; // a CPU model's cache
    void *onDevice = nullptr;       // a GPU model's
    MemRefDescriptor descriptor{1}; // F32 [n]
  };

  /// A cache for `batch` sequences of at most `capacity` tokens; null with
  /// a one-line `error` when the device cannot hold it.
  std::unique_ptr<Cache> createCache(int64_t batch, int64_t capacity,
                                     std::string &error);

  /// forward() on I32 [B, T] tokens (B and T within the cache's sizes)
  /// that also fills `cache` with what the decode steps after it need.
  Outputs prefill(HostTensor &tokens, int64_t positions, Cache &cache);

  /// One decode step: the I32 [B, 1] tokens at position `position` (the
  /// tokens each sequence holds in `cache` so far, below its capacity);
  /// logits F32 [B, 1, V] and the statistics of the B tokens.
  Outputs decode(HostTensor &tokens, int64_t position, Cache &cache);

  struct BenchResult {
    double seconds = 0;    // the `runs` timed passes
    bool replayed = false; // recorded once and replayed (a CUDA graph)
  };

  /// Runs the forward pass once untimed, then `runs` times timed, and
  /// returns the last run's outputs. A device that can record the pass (a
  /// GPU: a CUDA graph) records it once and replays it; otherwise each run
  /// is a forward() call, with its copies.
  Outputs bench(HostTensor &tokens, int64_t positions, int runs,
                BenchResult &result);

  /// The docs/semantics.md §8 statistics of one forward pass.
  nlohmann::json statistics(const Outputs &outputs) const;

  /// Running totals of the routing statistics, for passes added one by one.
  class RoutingTally;
  RoutingTally routingTally() const;

  ~CompiledModel();

private:
  CompiledModel() = default;

  /// Copies the parameters to the device (a GPU model): `table` then holds
  /// their device addresses. False with a one-line `error`.
  bool uploadParams(std::string &error);

  struct Pass;
  /// The arguments of a forward pass on `tokens` (uploaded to the device);
  /// with a cache, of a prefill, or of a decode step at `position` >= 0.
  std::unique_ptr<Pass> preparePass(HostTensor &tokens, int64_t positions,
                                    Cache *cache = nullptr,
                                    int64_t position = -1);
  /// The outputs of a pass that ran, as host tensors; its device buffers are
  /// freed.
  Outputs finishPass(Pass &pass);

  /// The forward pass's results `results`, in device memory, as host
  /// tensors; the device buffers are freed.
  Outputs downloadResults(const ResultPack &results, size_t count);

  nlohmann::json manifest;
  int64_t vocab = 0;
  /// The weights file, kept mapped: parameters whose bytes are already laid
  /// out as the model wants them are used in place, not copied.
  std::unique_ptr<safetensors::Checkpoint> weights;
  std::vector<HostTensor> params;
  std::unique_ptr<Device> device;
  /// The weight table the forward pass reads: the parameters' addresses on
  /// the device.
  std::vector<void *> table;
};

/// The routing statistics (docs/semantics.md §8) of every token of the
/// passes added so far, kept as running counts per MoE layer, so its size
/// does not grow with the passes (a long generation adds one per step).
class CompiledModel::RoutingTally {
public:
  /// Adds one pass's packed statistics (its Outputs::stats).
  void add(const std::vector<HostTensor> &stats);
  nlohmann::json json() const;

private:
  friend class CompiledModel;
  struct Layer {
    nlohmann::json layer;
    int64_t experts = 0, heads = 0;
    std::vector<int64_t> histogram, tokensPerExpert;
    double sum = 0; // experts over every sub-token
    int64_t subTokens = 0, tokens = 0, simple = 0;
  };
  std::vector<Layer> layers;
};

} // namespace moec::runtime

#endif // MOEC_RUNTIME_MODEL_MODEL_H
