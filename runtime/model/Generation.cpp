//===- Generation.cpp - sampling and generation sessions ------------------===//

#include "runtime/model/Generation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

using namespace moec::runtime;

//===----------------------------------------------------------------------===//
// Sampler
//===----------------------------------------------------------------------===//

std::string SamplingOptions::validate(int64_t vocab) const {
  if (!std::isfinite(temperature) || temperature < 0)
    return "--temperature must be a finite number >= 0 (0: greedy), got " +
           std::to_string(temperature);
  if (topK < 0 || topK > vocab)
    return "--top-k must be in [1, " + std::to_string(vocab) +
           "] (the vocabulary size; 0: no limit), got " + std::to_string(topK);
  if (!(topP > 0 && topP <= 1))
    return "--top-p must be in (0, 1], got " + std::to_string(topP);
  return "";
}

Sampler::Sampler(const SamplingOptions &options)
    : options(options), rng(options.seed) {}

int32_t Sampler::sample(const float *logits, int64_t vocab) {
  // Greedy: the largest logit, the lowest id among equal ones.
  if (options.temperature == 0)
    return static_cast<int32_t>(std::max_element(logits, logits + vocab) -
                                logits);
  // Ids by decreasing logit, ties by increasing id; top-k keeps a prefix.
  int64_t keep = options.topK ? options.topK : vocab;
  order.resize(vocab);
  std::iota(order.begin(), order.end(), 0);
  auto before = [logits](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::partial_sort(order.begin(), order.begin() + keep, order.end(), before);
  // Softmax of logits / temperature over the kept ids, in double.
  probs.resize(keep);
  double top = logits[order[0]] / options.temperature, sum = 0;
  for (int64_t i = 0; i < keep; ++i)
    sum += probs[i] = std::exp(logits[order[i]] / options.temperature - top);
  // Top-p: the shortest prefix whose probability reaches p (at least one).
  double mass = 0;
  int64_t nucleus = 0;
  while (nucleus < keep && mass < options.topP * sum)
    mass += probs[nucleus++];
  nucleus = std::max<int64_t>(nucleus, 1);
  // One uniform draw in [0, 1) from the top 53 bits, by inverse CDF.
  double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * mass;
  double cumulative = 0;
  for (int64_t i = 0; i < nucleus; ++i) {
    cumulative += probs[i];
    if (u < cumulative)
      return order[i];
  }
  return order[nucleus - 1];
}

//===----------------------------------------------------------------------===//
// Session
//===----------------------------------------------------------------------===//

Session::Session(CompiledModel &model, int64_t maxBatch, int64_t maxLength)
    : compiled(model), maxRows(maxBatch), capacity(maxLength) {}

void Session::reset() {
  rows = len = 0;
  logits.reset();
  stats.reset();
}

bool Session::prefill(const HostTensor &prompt, std::string &error) {
  int64_t b = prompt.shape()[0], t = prompt.shape()[1];
  if (b < 1 || b > maxRows) {
    error = "the prompt has " + std::to_string(b) +
            " sequences; the session holds 1 to " + std::to_string(maxRows);
    return false;
  }
  if (t < 1 || t > capacity) {
    error = "the prompt has " + std::to_string(t) +
            " tokens; the session's maximum length is " +
            std::to_string(capacity);
    return false;
  }
  const auto *ids = static_cast<const int32_t *>(prompt.data());
  if (!compiled.checkTokenIds(ids, prompt.numElements(), error))
    return false;
  reset();
  // The cache's layout depends on B: a new batch size needs a new cache.
  if (!cache || cache->batch() != b) {
    cache.reset();
    cache = compiled.createCache(b, capacity, error);
    if (!cache)
      return false;
  }
  HostTensor tokens(ElementType::I32, {b, t});
  std::copy(ids, ids + b * t, static_cast<int32_t *>(tokens.data()));
  keep(compiled.prefill(tokens, /*positions=*/1, *cache));
  rows = b;
  len = t;
  return true;
}

bool Session::decode(const int32_t *tokens, std::string &error) {
  if (rows == 0) {
    error = "decode before prefill: the session holds no sequence";
    return false;
  }
  if (len >= capacity) {
    error = "the sequences would exceed the session's maximum length of " +
            std::to_string(capacity) + " tokens";
    return false;
  }
  if (!compiled.checkTokenIds(tokens, rows, error))
    return false;
  HostTensor step(ElementType::I32, {rows, 1});
  std::copy(tokens, tokens + rows, static_cast<int32_t *>(step.data()));
  keep(compiled.decode(step, len, *cache));
  ++len;
  return true;
}

void Session::keep(CompiledModel::Outputs outputs) {
  logits.reset();
  logits = std::move(outputs.logits);
  if (!stats)
    stats = compiled.routingTally();
  stats->add(outputs.stats);
}

const float *Session::lastLogits() const {
  // [B, 1, V]: one position per sequence.
  return logits ? static_cast<const float *>(logits->data()) : nullptr;
}

nlohmann::json Session::statistics() const {
  return stats ? stats->json() : nlohmann::json();
}

//===----------------------------------------------------------------------===//
// generate
//===----------------------------------------------------------------------===//

std::optional<GenerateResult>
moec::runtime::generate(CompiledModel &model, const HostTensor &prompt,
                        const GenerateOptions &options, std::string &error) {
  using Clock = std::chrono::steady_clock;
  int64_t vocab = model.vocabSize(), n = options.steps;
  int64_t b = prompt.shape()[0], t = prompt.shape()[1];
  if (n < 1) {
    error = "--generate needs a count >= 1, got " + std::to_string(n);
    return std::nullopt;
  }
  if (options.eos && (*options.eos < 0 || *options.eos >= vocab)) {
    error = "--eos " + std::to_string(*options.eos) + " is out of range [0, " +
            std::to_string(vocab) + ")";
    return std::nullopt;
  }
  if (error = options.sampling.validate(vocab); !error.empty())
    return std::nullopt;

  // The last generated token is never fed back.
  Session session(model, b, t + n - 1);
  Sampler sampler(options.sampling);
  GenerateResult result{HostTensor(ElementType::I32, {b, n}), std::nullopt,
                        nullptr};
  auto *ids = static_cast<int32_t *>(result.ids.data());
  if (options.keepLogits) {
    result.logits = HostTensor(ElementType::F32, {b, n, vocab});
    auto *out = static_cast<float *>(result.logits->data());
    std::fill(out, out + b * n * vocab,
              std::numeric_limits<float>::quiet_NaN());
  }
  std::vector<char> finished(b, 0);
  std::vector<int32_t> next(b);

  Clock::time_point start = Clock::now();
  if (!session.prefill(prompt, error))
    return std::nullopt;
  result.prefillSeconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  start = Clock::now();
  for (int64_t step = 0; step < n; ++step) {
    if (step > 0) {
      if (!session.decode(next.data(), error))
        return std::nullopt;
      ++result.decodeSteps;
    }
    const float *rowLogits = session.lastLogits();
    bool all = true;
    for (int64_t r = 0; r < b; ++r) {
      if (result.logits)
        std::memcpy(static_cast<float *>(result.logits->data()) +
                        (r * n + step) * vocab,
                    rowLogits + r * vocab, vocab * sizeof(float));
      next[r] = finished[r] ? *options.eos
                            : sampler.sample(rowLogits + r * vocab, vocab);
      finished[r] |= options.eos && next[r] == *options.eos;
      all &= finished[r] != 0;
    }
    for (int64_t r = 0; r < b; ++r)
      ids[r * n + step] = next[r];
    if (options.onStep)
      options.onStep(step + 1);
    // Every sequence has ended: the rest is eos (and NaN logits).
    if (all) {
      for (int64_t r = 0; r < b; ++r)
        std::fill(ids + r * n + step + 1, ids + (r + 1) * n, *options.eos);
      break;
    }
  }
  result.decodeSeconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  result.stats = session.statistics();
  result.cacheBytes = session.cacheBytes();
  result.cacheLength = session.maxLength();
  return result;
}
