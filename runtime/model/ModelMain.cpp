//===- ModelMain.cpp - the command line of a compiled model ---------------===//
//
//   MODEL --weights W.safetensors --tokens 1,5,9 | --tokens ids.npy
//         [--logits out.npy] [--stats stats.json] [--bench N]
//
// Loads the weights, checks the tokens, runs the compiled model
// (runtime/model/Model.h) and writes the logits and statistics. Every error
// is one line with exit status 1.
//
//===----------------------------------------------------------------------===//

#include "runtime/model/Model.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
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
  std::string weights, tokens, logits, stats;
  int bench = 0;
};

const char *kUsage =
    "usage: %s --weights W.safetensors --tokens 1,5,9 | --tokens ids.npy\n"
    "          [--logits out.npy] [--stats stats.json] [--bench N]\n"
    "Runs the compiled model on one sequence (a comma list) or a batch\n"
    "(an int32/int64 .npy of shape [T] or [B, T]) and writes the logits as a\n"
    "float32 .npy of shape [B, T, V]. --bench N runs the forward pass N more\n"
    "times and prints tokens per second; a GPU model records the pass once\n"
    "as a CUDA graph and replays it (MOEC_CUDA_GRAPHS=0: launch by launch).\n"
    "The logits and statistics written are those of the last run.\n";

Options parseOptions(int argc, char **argv) {
  Options options;
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
    else if (arg == "--logits")
      options.logits = value();
    else if (arg == "--stats")
      options.stats = value();
    else if (arg == "--bench") {
      std::string n = value();
      char *end = nullptr;
      long count = std::strtol(n.c_str(), &end, 10);
      if (n.empty() || *end || count < 1 || count > 1000000)
        fail("--bench expects a count in [1, 1000000], got '" + n + "'");
      options.bench = static_cast<int>(count);
    } else
      fail("unknown option '" + arg + "' (see --help)");
  }
  if (options.weights.empty())
    fail("missing --weights FILE.safetensors (see --help)");
  if (options.tokens.empty())
    fail("missing --tokens (see --help)");
  return options;
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

  std::optional<CompiledModel::Outputs> outputs;
  if (options.bench) {
    CompiledModel::BenchResult timing;
    outputs = model->bench(tokens, options.bench, timing);
    double processed =
        static_cast<double>(tokens.numElements()) * options.bench;
    std::printf("%d runs%s, %.3f s, %.1f tokens/s\n", options.bench,
                timing.replayed ? " (one CUDA graph, replayed)" : "",
                timing.seconds, processed / timing.seconds);
  } else {
    outputs = model->forward(tokens);
  }
  if (!options.stats.empty() &&
      !writeJson(options.stats, model->statistics(*outputs), error))
    fail(error);
  if (!options.logits.empty() &&
      !writeNpy(options.logits, outputs->logits, error))
    fail(error);
  return 0;
}
