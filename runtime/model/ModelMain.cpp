//===- ModelMain.cpp - the command line of a compiled model ---------------===//
//
//   MODEL --weights W.safetensors --tokens 1,5,9 | --tokens ids.npy
//         [--logits [last] out.npy] [--logits-positions all|last|P]
//         [--stats stats.json] [--bench N]
//         [--generate N [--temperature T] [--top-k K] [--top-p P] [--seed S]
//          [--eos ID] [--output-ids ids.npy]]
//
// Loads the weights, checks the tokens, runs the compiled model
// (runtime/model/Model.h) or generates after it (Generation.h) and writes
// the logits, ids and statistics. Every error is one line with exit status
// 1.
//
//===----------------------------------------------------------------------===//

#include "runtime/model/Generation.h"
#include "runtime/model/Model.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

using namespace moec::runtime;

namespace {

[[noreturn]] void fail(const std::string &message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  std::exit(1);
}

struct Options {
  std::string weights, tokens, logits, stats, outputIds;
  std::string positions = "all";
  int bench = 0;
  std::optional<int64_t> generate;
  std::optional<int64_t> eos;
  SamplingOptions sampling;
};

const char *kUsage =
    "usage: %s --weights W.safetensors --tokens 1,5,9 | --tokens ids.npy\n"
    "          [--logits [last] out.npy] [--logits-positions all|last|P]\n"
    "          [--stats stats.json] [--bench N]\n"
    "          [--generate N [--temperature T] [--top-k K] [--top-p P]\n"
    "           [--seed S] [--eos ID] [--output-ids ids.npy]]\n"
    "Runs the compiled model on one sequence (a comma list) or a batch\n"
    "(an int32/int64 .npy of shape [T] or [B, T]) and writes the logits as a\n"
    "float32 .npy of shape [B, T, V]; --logits last FILE (or\n"
    "--logits-positions last, or P) computes and writes only the last (P)\n"
    "positions' [B, P, V], skipping the LM head on the others. --bench N\n"
    "runs the forward pass N more times and prints tokens per second; a GPU\n"
    "model records the pass once as a CUDA graph and replays it\n"
    "(MOEC_CUDA_GRAPHS=0: launch by launch). The logits and statistics\n"
    "written are those of the last run.\n"
    "\n"
    "--generate N continues each sequence by N tokens and prints them, one\n"
    "line per sequence: greedy (the most likely id), or sampled with\n"
    "--temperature T > 0, optionally among the K most likely ids (--top-k)\n"
    "and the smallest most likely set of probability P (--top-p), from\n"
    "generator seed S (--seed, default 0). A sequence that produces --eos is\n"
    "padded with it. --output-ids writes the ids as int32 [B, N], --logits\n"
    "the generated positions' float32 [B, N, V], --stats the routing of every\n"
    "token fed to the model; --bench N repeats the generation N times and\n"
    "prints prefill and decode tokens/s.\n";

/// `text` as an integer in [lo, hi], or a one-line error naming `option`.
int64_t parseInteger(const std::string &option, const std::string &text,
                     int64_t lo, int64_t hi) {
  char *end = nullptr;
  errno = 0;
  long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end || errno == ERANGE || value < lo || value > hi)
    fail(option + " expects an integer in [" + std::to_string(lo) + ", " +
         std::to_string(hi) + "], got '" + text + "'");
  return value;
}

/// `text` as a number, or a one-line error naming `option` (the range is
/// SamplingOptions::validate's to check).
double parseNumber(const std::string &option, const std::string &text) {
  char *end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end)
    fail(option + " expects a number, got '" + text + "'");
  return value;
}

Options parseOptions(int argc, char **argv) {
  Options options;
  bool sampling = false, temperature = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf(kUsage, argv[0]);
      std::exit(0);
    }
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        fail(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--weights")
      options.weights = value();
    else if (arg == "--tokens")
      options.tokens = value();
    else if (arg == "--logits") {
      // `--logits last FILE`: short for --logits-positions last.
      options.logits = value();
      if (options.logits == "last" || options.logits == "all") {
        options.positions = options.logits;
        if (i + 1 >= argc)
          fail("--logits " + options.positions + " needs a file name after it");
        options.logits = argv[++i];
      }
    }
    else if (arg == "--logits-positions")
      options.positions = value();
    else if (arg == "--stats")
      options.stats = value();
    else if (arg == "--output-ids")
      options.outputIds = value();
    else if (arg == "--bench")
      options.bench = parseInteger(arg, value(), 1, 1000000);
    else if (arg == "--generate")
      options.generate = parseInteger(arg, value(), INT32_MIN, INT32_MAX);
    else if (arg == "--eos")
      options.eos = parseInteger(arg, value(), INT32_MIN, INT32_MAX);
    else if (arg == "--seed")
      options.sampling.seed = parseInteger(arg, value(), 0, INT64_MAX);
    else if (arg == "--top-k")
      options.sampling.topK = parseInteger(arg, value(), INT32_MIN, INT32_MAX),
      sampling = true;
    else if (arg == "--top-p")
      options.sampling.topP = parseNumber(arg, value()), sampling = true;
    else if (arg == "--temperature")
      options.sampling.temperature = parseNumber(arg, value()),
      sampling = temperature = true;
    else
      fail("unknown option '" + arg + "' (see --help)");
  }
  if (options.weights.empty())
    fail("missing --weights FILE.safetensors (see --help)");
  if (options.tokens.empty())
    fail("missing --tokens (see --help)");
  if (!options.generate && (sampling || options.eos ||
                            !options.outputIds.empty()))
    fail("--temperature, --top-k, --top-p, --eos and --output-ids need "
         "--generate N");
  if (options.generate && options.positions != "all")
    fail("--logits-positions applies to a forward pass, not to --generate");
  // --top-k or --top-p alone sample at temperature 1.
  if (sampling && !temperature)
    options.sampling.temperature = 1;
  return options;
}

/// The logits positions of --logits-positions for sequences of `seqLen`.
int64_t logitsPositions(const std::string &text, int64_t seqLen) {
  if (text == "all")
    return seqLen;
  if (text == "last")
    return 1;
  return parseInteger("--logits-positions", text, 1, seqLen);
}

/// Writes `json` to `path`.
bool writeJson(const std::string &path, const nlohmann::json &json,
               std::string &error) {
  std::FILE *file = std::fopen(path.c_str(), "w");
  if (!file) {
    error = path + ": cannot write: " + std::strerror(errno);
    return false;
  }
  std::string text = json.dump(2) + "\n";
  bool ok = std::fwrite(text.data(), 1, text.size(), file) == text.size();
  ok &= std::fclose(file) == 0;
  if (!ok)
    error = path + ": write failed";
  return ok;
}

/// Prints a progress line to stderr at most every few seconds of a long
/// generation.
class Progress {
public:
  explicit Progress(int64_t total) : total(total) {}
  void operator()(int64_t done) {
    auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::seconds(5))
      return;
    last = now;
    double seconds = std::chrono::duration<double>(now - start).count();
    std::fprintf(stderr, "generated %lld of %lld tokens per sequence (%.1f s)\n",
                 static_cast<long long>(done), static_cast<long long>(total),
                 seconds);
  }

private:
  int64_t total;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now(),
                                        last = start;
};

/// --generate: the ids on stdout, then the files asked for.
void runGeneration(CompiledModel &model, const HostTensor &prompt,
                   const Options &options) {
  GenerateOptions request;
  request.steps = *options.generate;
  // In int32 range (parseOptions); generate() checks it against V.
  if (options.eos)
    request.eos = static_cast<int32_t>(*options.eos);
  request.sampling = options.sampling;
  request.keepLogits = !options.logits.empty();
  Progress progress(request.steps);
  request.onStep = [&progress](int64_t done) { progress(done); };
  std::string error;
  std::optional<GenerateResult> result =
      generate(model, prompt, request, error);
  if (!result)
    fail(error);
  if (options.bench) {
    // The same generation again: the same ids, greedy or from the seed.
    double prefill = 0, decode = 0;
    int64_t steps = 0;
    for (int i = 0; i < options.bench; ++i) {
      request.onStep = nullptr;
      std::optional<GenerateResult> again =
          generate(model, prompt, request, error);
      prefill += again->prefillSeconds;
      decode += again->decodeSeconds;
      steps += again->decodeSteps;
    }
    int64_t b = prompt.shape()[0];
    std::printf("%d generations: prefill %.1f tokens/s, decode %.1f "
                "tokens/s (%.3f ms per step of %lld sequences)\n",
                options.bench,
                static_cast<double>(prompt.numElements()) * options.bench /
                    prefill,
                static_cast<double>(b * steps) / decode,
                steps ? 1e3 * decode / steps : 0.0, static_cast<long long>(b));
    std::printf("KV cache: %lld bytes for %lld sequences of up to %lld "
                "tokens\n",
                static_cast<long long>(result->cacheBytes),
                static_cast<long long>(b),
                static_cast<long long>(result->cacheLength));
  }
  const auto *ids = static_cast<const int32_t *>(result->ids.data());
  int64_t n = result->ids.shape()[1];
  for (int64_t r = 0; r < result->ids.shape()[0]; ++r) {
    std::string line;
    for (int64_t i = 0; i < n; ++i)
      line += (i ? " " : "") + std::to_string(ids[r * n + i]);
    std::printf("%s\n", line.c_str());
  }
  if (!options.outputIds.empty() &&
      !writeNpy(options.outputIds, result->ids, error))
    fail(error);
  if (!options.logits.empty() && !writeNpy(options.logits, *result->logits, error))
    fail(error);
  if (!options.stats.empty() && !writeJson(options.stats, result->stats, error))
    fail(error);
}

} // namespace

int main(int argc, char **argv) {
  Options options = parseOptions(argc, argv);
  std::string error;
  std::unique_ptr<CompiledModel> model =
      CompiledModel::load(options.weights, error);
  if (!model)
    fail(error);
  HostTensor tokens = readTokens(options.tokens, model->vocabSize(), error);
  if (!error.empty())
    fail(error);
  if (options.generate) {
    runGeneration(*model, tokens, options);
    return 0;
  }

  int64_t positions = logitsPositions(options.positions, tokens.shape()[1]);
  std::optional<CompiledModel::Outputs> outputs;
  if (options.bench) {
    CompiledModel::BenchResult timing;
    outputs = model->bench(tokens, positions, options.bench, timing);
    double processed =
        static_cast<double>(tokens.numElements()) * options.bench;
    std::printf("%d runs%s, %.3f s, %.1f tokens/s\n", options.bench,
                timing.replayed ? " (one CUDA graph, replayed)" : "",
                timing.seconds, processed / timing.seconds);
  } else {
    outputs = model->forward(tokens, positions);
  }
  if (!options.stats.empty() &&
      !writeJson(options.stats, model->statistics(*outputs), error))
    fail(error);
  if (!options.logits.empty() &&
      !writeNpy(options.logits, outputs->logits, error))
    fail(error);
  return 0;
}
