//===- Model.cpp - a compiled model with its weights bound ----------------===//

#include "runtime/model/Model.h"
#include "runtime/model/ModelAbi.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include <sys/mman.h>
#include <unistd.h>

// The symbols of runtime/model/ModelAbi.h (kManifestSymbol and the packed
// entries).
extern "C" const char moec_model_manifest[];
extern "C" void forward_packed(void **args);
extern "C" void prefill_packed(void **args);
extern "C" void decode_packed(void **args);
extern "C" void cache_size_packed(void **args);

using namespace moec::runtime;
namespace st = moec::safetensors;
namespace key = moec::abi::manifest;

/// Drops the mapped file pages of a tensor that was copied, so that the
/// weights are resident once, not twice (the pages come back from the file
/// if read again).
static void releasePages(const uint8_t *data, size_t size) {
  uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t begin =
      (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  uintptr_t end = (reinterpret_cast<uintptr_t>(data) + size) / page * page;
  if (end > begin)
    madvise(reinterpret_cast<void *>(begin), end - begin, MADV_DONTNEED);
}

std::unique_ptr<CompiledModel> CompiledModel::load(const std::string &path,
                                                   std::string &error) {
  std::unique_ptr<st::Checkpoint> file = st::Checkpoint::open(path, error);
  if (!file)
    return nullptr;
  std::unique_ptr<CompiledModel> model(new CompiledModel());
  model->manifest = nlohmann::json::parse(moec_model_manifest);
  if (model->manifest.value(key::kFormat, "") != abi::kManifestFormat) {
    error = "the compiled model's manifest is not " +
            std::string(abi::kManifestFormat) +
            " (an object from another moec version?)";
    return nullptr;
  }
  model->vocab = model->manifest.at(key::kVocabSize);
  model->device = createDevice();
  std::string target = model->manifest.value(key::kTarget, "");
  if (target != model->device->target()) {
    error = "the compiled model is for target '" + target +
            "', and the runtime linked with it runs '" +
            model->device->target() + "' models";
    return nullptr;
  }
  if (!model->device->ready(error))
    return nullptr;

  // `{e}` in a name stands for the expert index of a stacked [E, ...]
  // parameter. A parameter is used in place when the file holds it in the
  // compiled element type, suitably aligned, and (stacked) with its experts
  // back to back in order; otherwise it is copied and converted.
  const std::vector<st::DType> accepted{st::DType::F32, st::DType::BF16};
  for (const nlohmann::json &p : model->manifest.at(key::kParams)) {
    std::string name = p.at(key::kName);
    std::vector<int64_t> shape = p.at(key::kShape);
    ElementType type =
        p.at(key::kDtype) == key::kBF16 ? ElementType::BF16 : ElementType::F32;
    st::DType fileType =
        type == ElementType::BF16 ? st::DType::BF16 : st::DType::F32;
    size_t placeholder = name.find("{e}");
    bool stacked = placeholder != std::string::npos;
    std::vector<int64_t> slice(shape.begin() + (stacked ? 1 : 0), shape.end());
    std::vector<const st::TensorInfo *> parts;
    for (int64_t e = 0; e < (stacked ? shape[0] : 1); ++e) {
      std::string partName = name;
      if (stacked)
        partName.replace(placeholder, 3, std::to_string(e));
      const st::TensorInfo *info =
          st::bindTensor(*file, partName, accepted, slice, error);
      if (!info)
        return nullptr;
      parts.push_back(info);
    }
    bool inPlace =
        reinterpret_cast<uintptr_t>(parts[0]->data) % elementSize(type) == 0;
    for (size_t e = 0; e < parts.size() && inPlace; ++e)
      inPlace = parts[e]->dtype == fileType &&
                parts[e]->data == parts[0]->data + e * parts[0]->size;
    if (inPlace) {
      model->params.push_back(HostTensor::view(type, shape, parts[0]->data));
      continue;
    }
    HostTensor tensor(type, shape);
    for (size_t e = 0; e < parts.size(); ++e) {
      tensor.fill(e, *parts[e]);
      releasePages(parts[e]->data, parts[e]->size);
    }
    model->params.push_back(std::move(tensor));
  }
  model->weights = std::move(file);
  if (!model->uploadParams(error))
    return nullptr;
  return model;
}

bool CompiledModel::uploadParams(std::string &error) {
  if (device->hostMemory()) {
    for (HostTensor &p : params)
      table.push_back(p.data());
    return true;
  }
  const nlohmann::json &specs = manifest.at(key::kParams);
  for (size_t i = 0; i < params.size(); ++i) {
    HostTensor &p = params[i];
    size_t bytes = p.numElements() * elementSize(p.type());
    void *onDevice = device->upload(
        p.data(), bytes, "weight " + specs[i].at(key::kName).get<std::string>(),
        error);
    if (!onDevice)
      return false;
    table.push_back(onDevice);
  }
  // The host copies are not needed again.
  params.clear();
  weights.reset();
  return true;
}

CompiledModel::~CompiledModel() {
  if (device && !device->hostMemory())
    for (void *p : table)
      device->release(p);
}

CompiledModel::Outputs CompiledModel::downloadResults(const ResultPack &results,
                                                      size_t count) {
  std::vector<HostTensor> tensors;
  for (size_t i = 0; i < count; ++i) {
    MemRefDescriptor result = results.result(i);
    ElementType type = i == 0 ? ElementType::F32 : ElementType::I32;
    std::vector<int64_t> shape;
    for (unsigned d = 0; d < result.rank(); ++d)
      shape.push_back(result.size(d));
    HostTensor tensor(type, shape);
    size_t size = elementSize(type);
    device->download(tensor.data(),
                     static_cast<const char *>(result.aligned()) +
                         result.offset() * size,
                     tensor.numElements() * size);
    device->release(result.allocated());
    tensors.push_back(std::move(tensor));
  }
  Outputs out{std::move(tensors.front()), {}};
  for (size_t i = 1; i < tensors.size(); ++i)
    out.stats.push_back(std::move(tensors[i]));
  return out;
}

/// Ends the program after a device error a forward pass cannot return.
[[noreturn]] static void deviceFailure(const std::string &error) {
  std::fprintf(stderr, "moec model: error: %s\n", error.c_str());
  std::exit(1);
}

/// One forward pass's arguments: where its results go, and its tokens (in
/// device memory for a GPU model); of a prefill or a decode step, the cache's
/// capacity and the decode step's position.
struct CompiledModel::Pass {
  ResultPack results;
  MemRefDescriptor tokens;
  void *deviceTokens = nullptr;
  int64_t positions, capacity = 0, position = 0;
  void (*entry)(void **) = forward_packed;
  std::vector<void *> args;

  Pass(const std::vector<unsigned> &ranks, HostTensor &hostTokens,
       int64_t positions)
      : results(ranks), tokens(hostTokens.descriptor()), positions(positions) {}
};

/// The ranks of the forward pass's results: the logits [B, T, V], then the
/// three packed stats vectors.
static std::vector<unsigned> resultRanks() {
  std::vector<unsigned> ranks{3};
  ranks.insert(ranks.end(), moec::abi::kNumStatsResults, 1);
  return ranks;
}

std::unique_ptr<CompiledModel::Pass>
CompiledModel::preparePass(HostTensor &tokens, int64_t positions, Cache *cache,
                           int64_t position) {
  int64_t seqLen = tokens.shape()[1];
  if (positions < 1 || positions > seqLen)
    positions = seqLen;
  auto pass = std::make_unique<Pass>(resultRanks(), tokens, positions);
  if (!device->hostMemory()) {
    std::string error;
    pass->deviceTokens =
        device->upload(tokens.data(), tokens.numElements() * sizeof(int32_t),
                       "the tokens", error);
    // forward() has no error result; the device is out of memory.
    if (!pass->deviceTokens)
      deviceFailure(error);
    pass->tokens = MemRefDescriptor(pass->deviceTokens, tokens.shape());
  }
  // The argument lists of runtime/model/ModelAbi.h.
  pass->args = {pass->results.data(), pass->tokens.data(), table.data()};
  if (position < 0)
    pass->args.push_back(&pass->positions);
  if (cache) {
    pass->capacity = cache->capacity();
    pass->args.insert(pass->args.end(),
                      {cache->descriptor.data(), &pass->capacity});
    pass->entry = prefill_packed;
  }
  if (position >= 0) {
    pass->position = position;
    pass->args.push_back(&pass->position);
    pass->entry = decode_packed;
  }
  return pass;
}

CompiledModel::Cache::~Cache() {
  if (onDevice)
    device.release(onDevice);
}

std::unique_ptr<CompiledModel::Cache>
CompiledModel::createCache(int64_t batch, int64_t capacity,
                           std::string &error) {
  int64_t elements = 0;
  void *args[] = {&elements, &batch, &capacity};
  cache_size_packed(args);
  std::unique_ptr<Cache> cache(new Cache(*device, batch, capacity, elements));
  // Zeroed, though a step reads only what the steps before it wrote.
  if (device->hostMemory()) {
    cache->host.emplace(ElementType::F32, std::vector<int64_t>{elements});
    std::memset(cache->host->data(), 0, elements * sizeof(float));
  } else {
    cache->onDevice =
        device->allocateZeroed(elements * sizeof(float), "the KV cache", error);
    if (!cache->onDevice && elements)
      return nullptr;
  }
  cache->descriptor = MemRefDescriptor(
      cache->onDevice ? cache->onDevice : cache->host->data(), {elements});
  return cache;
}

CompiledModel::Outputs CompiledModel::prefill(HostTensor &tokens,
                                              int64_t positions, Cache &cache) {
  std::unique_ptr<Pass> pass = preparePass(tokens, positions, &cache);
  pass->entry(pass->args.data());
  return finishPass(*pass);
}

CompiledModel::Outputs CompiledModel::decode(HostTensor &tokens,
                                             int64_t position, Cache &cache) {
  std::unique_ptr<Pass> pass = preparePass(tokens, 1, &cache, position);
  pass->entry(pass->args.data());
  return finishPass(*pass);
}

CompiledModel::Outputs CompiledModel::finishPass(Pass &pass) {
  size_t count = resultRanks().size();
  if (!device->hostMemory()) {
    device->release(pass.deviceTokens);
    return downloadResults(pass.results, count);
  }
  Outputs out{HostTensor::adoptResult(pass.results.result(0), ElementType::F32),
              {}};
  for (unsigned i = 1; i < count; ++i)
    out.stats.push_back(
        HostTensor::adoptResult(pass.results.result(i), ElementType::I32));
  return out;
}

CompiledModel::Outputs CompiledModel::forward(HostTensor &tokens,
                                              int64_t positions) {
  std::unique_ptr<Pass> pass = preparePass(tokens, positions);
  forward_packed(pass->args.data());
  return finishPass(*pass);
}

CompiledModel::Outputs CompiledModel::bench(HostTensor &tokens,
                                            int64_t positions, int runs,
                                            BenchResult &result) {
  using Clock = std::chrono::steady_clock;
  // Untimed, and run directly: first-use costs (the memory pool's growth,
  // the arena) stay out of the timing and out of a recording.
  std::optional<Outputs> outputs = forward(tokens, positions);
  std::unique_ptr<Pass> pass = preparePass(tokens, positions);
  std::string error;
  if (device->record([&] { forward_packed(pass->args.data()); }, error)) {
    outputs.reset();
    // One replay first: the first launch of a graph also uploads it.
    if (!device->replay(1, error))
      deviceFailure(error);
    Clock::time_point start = Clock::now();
    if (!device->replay(runs, error))
      deviceFailure(error);
    result.seconds =
        std::chrono::duration<double>(Clock::now() - start).count();
    result.replayed = true;
    Outputs out = finishPass(*pass);
    device->dropRecording();
    return out;
  }
  if (!device->hostMemory()) {
    std::fprintf(stderr,
                 "moec model: note: %s; timing the forward passes "
                 "one by one\n",
                 error.c_str());
    device->release(pass->deviceTokens);
  }
  // Each run's outputs are freed before the next run allocates its own.
  Clock::time_point start = Clock::now();
  for (int i = 0; i < runs; ++i) {
    outputs.reset();
    outputs = forward(tokens, positions);
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return std::move(*outputs);
}

bool CompiledModel::checkTokenIds(const int32_t *ids, int64_t count,
                                  std::string &error) const {
  for (int64_t i = 0; i < count; ++i)
    if (ids[i] < 0 || ids[i] >= vocab) {
      error = "token id " + std::to_string(ids[i]) + " at position " +
              std::to_string(i) + " is out of range [0, " +
              std::to_string(vocab) + ")";
      return false;
    }
  return true;
}

nlohmann::json CompiledModel::statistics(const Outputs &outputs) const {
  RoutingTally tally = routingTally();
  tally.add(outputs.stats);
  return tally.json();
}

CompiledModel::RoutingTally CompiledModel::routingTally() const {
  RoutingTally tally;
  for (const nlohmann::json &layer : manifest.at(key::kStats)) {
    RoutingTally::Layer &l = tally.layers.emplace_back();
    l.layer = layer.at(key::kLayer);
    l.experts = layer.at(key::kExperts);
    l.heads = layer.at(key::kHeads);
    l.histogram.assign(l.experts + 1, 0);
    l.tokensPerExpert.assign(l.experts, 0);
  }
  return tally;
}

void CompiledModel::RoutingTally::add(const std::vector<HostTensor> &stats) {
  // Per MoE layer: experts per (sub-)token, rows per expert, and each
  // token's ADR level (1 complex, 0 simple). Each layer's segment of a
  // pass's packed vectors: B·T·heads counts, E load entries, B·T levels.
  if (layers.empty())
    return;
  const auto *counts = static_cast<const int32_t *>(stats[0].data());
  const auto *load = static_cast<const int32_t *>(stats[1].data());
  const auto *levels = static_cast<const int32_t *>(stats[2].data());
  int64_t tokens = stats[2].numElements() / static_cast<int64_t>(layers.size());
  for (Layer &l : layers) {
    int64_t subTokens = tokens * l.heads;
    for (int64_t t = 0; t < subTokens; ++t) {
      l.histogram[std::min<int64_t>(std::max(counts[t], 0), l.experts)] += 1;
      l.sum += counts[t];
    }
    for (int64_t e = 0; e < l.experts; ++e)
      l.tokensPerExpert[e] += load[e];
    for (int64_t t = 0; t < tokens; ++t)
      l.simple += levels[t] == 0;
    l.subTokens += subTokens;
    l.tokens += tokens;
    counts += subTokens;
    load += l.experts;
    levels += tokens;
  }
}

nlohmann::json CompiledModel::RoutingTally::json() const {
  nlohmann::json out = {{"layers", nlohmann::json::array()}};
  for (const Layer &l : layers)
    out["layers"].push_back(
        {{"layer", l.layer},
         {"experts", l.experts},
         {"tokens_per_expert", l.tokensPerExpert},
         {"experts_per_token_mean", l.subTokens ? l.sum / l.subTokens : 0.0},
         {"experts_per_token_histogram", l.histogram},
         {"simple_token_fraction",
          l.tokens ? static_cast<double>(l.simple) / l.tokens : 0.0}});
  return out;
}
