//===- ModelMain.cpp - the command line of a compiled model ---------------===//
//
//   MODEL --weights W.safetensors --tokens 1,5,9 | --tokens ids.npy
//         [--logits out.npy] [--stats stats.json] [--bench N]
//
// The compiled object provides `forward_packed(void **)` and the JSON
// manifest `moec_model_manifest` (see codegen/HostCodegen.h). This file binds
// the weights named by the manifest, checks the tokens, calls the model and
// writes the logits. Every error is one line with exit status 1.
//
//===----------------------------------------------------------------------===//

#include "runtime/model/Tensors.h"
#include "runtime/safetensors/SafeTensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" const char moec_model_manifest[];
extern "C" void forward_packed(void **args);

using namespace moec::runtime;
namespace st = moec::safetensors;

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
    "times and prints tokens per second.\n";

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

/// Binds every parameter the manifest lists, converting to the compiled
/// element type. `{e}` in a name stands for the expert index of a stacked
/// [E, ...] parameter.
std::vector<HostTensor> bindParameters(const nlohmann::json &manifest,
                                       const st::Checkpoint &file) {
  std::vector<HostTensor> params;
  const std::vector<st::DType> accepted{st::DType::F32, st::DType::BF16};
  for (const nlohmann::json &p : manifest.at("params")) {
    std::string name = p.at("name");
    std::vector<int64_t> shape = p.at("shape");
    ElementType type =
        p.at("dtype") == "BF16" ? ElementType::BF16 : ElementType::F32;
    HostTensor tensor(type, shape);
    std::string error;
    size_t placeholder = name.find("{e}");
    if (placeholder == std::string::npos) {
      const st::TensorInfo *info =
          st::bindTensor(file, name, accepted, shape, error);
      if (!info)
        fail(error);
      tensor.fill(0, *info);
    } else {
      std::vector<int64_t> slice(shape.begin() + 1, shape.end());
      for (int64_t e = 0; e < shape[0]; ++e) {
        std::string expert = name;
        expert.replace(placeholder, 3, std::to_string(e));
        const st::TensorInfo *info =
            st::bindTensor(file, expert, accepted, slice, error);
        if (!info)
          fail(error);
        tensor.fill(e, *info);
      }
    }
    params.push_back(std::move(tensor));
  }
  return params;
}

/// Writes the SEEDS.md §8 statistics of one forward pass as JSON, from the
/// three vectors each MoE layer returns: experts per (sub-)token, rows per
/// expert, and the ADR level of each token (1 complex, 0 simple).
bool writeStats(const std::string &path, const nlohmann::json &layers,
                const std::vector<HostTensor> &stats, std::string &error) {
  nlohmann::json out = {{"layers", nlohmann::json::array()}};
  for (size_t i = 0; i < layers.size(); ++i) {
    int64_t experts = layers[i].at("experts");
    const HostTensor &counts = stats[3 * i], &load = stats[3 * i + 1],
                     &level = stats[3 * i + 2];
    auto *c = static_cast<const int32_t *>(counts.data());
    auto *l = static_cast<const int32_t *>(load.data());
    auto *v = static_cast<const int32_t *>(level.data());
    std::vector<int64_t> histogram(experts + 1, 0),
        tokensPerExpert(l, l + experts);
    double sum = 0;
    for (int64_t t = 0; t < counts.numElements(); ++t) {
      histogram[std::min<int64_t>(std::max(c[t], 0), experts)] += 1;
      sum += c[t];
    }
    int64_t simple = 0;
    for (int64_t t = 0; t < level.numElements(); ++t)
      simple += v[t] == 0;
    int64_t n = counts.numElements(), tokens = level.numElements();
    out["layers"].push_back(
        {{"layer", layers[i].at("layer")},
         {"experts", experts},
         {"tokens_per_expert", tokensPerExpert},
         {"experts_per_token_mean", n ? sum / n : 0.0},
         {"experts_per_token_histogram", histogram},
         {"simple_token_fraction",
          tokens ? static_cast<double>(simple) / tokens : 0.0}});
  }
  std::FILE *file = std::fopen(path.c_str(), "w");
  if (!file) {
    error = path + ": cannot write: " + std::strerror(errno);
    return false;
  }
  std::string text = out.dump(2) + "\n";
  bool ok = std::fwrite(text.data(), 1, text.size(), file) == text.size();
  ok &= std::fclose(file) == 0;
  if (!ok)
    error = path + ": write failed";
  return ok;
}

} // namespace

int main(int argc, char **argv) {
  Options options = parseOptions(argc, argv);
  nlohmann::json manifest = nlohmann::json::parse(moec_model_manifest);
  int64_t vocab = manifest.at("vocab_size");

  std::string error;
  // A .safetensors file, or the index of a sharded checkpoint.
  std::unique_ptr<st::Checkpoint> file =
      st::Checkpoint::open(options.weights, error);
  if (!file)
    fail(error);
  std::vector<HostTensor> params = bindParameters(manifest, *file);

  HostTensor tokens = readTokens(options.tokens, vocab, error);
  if (!error.empty())
    fail(error);

  // Results: the logits [B, T, V], then three vectors per MoE layer.
  const nlohmann::json &statsLayers = manifest.at("stats");
  std::vector<unsigned> ranks{3};
  ranks.insert(ranks.end(), 3 * statsLayers.size(), 1);
  ResultPack results(ranks);
  std::vector<MemRefDescriptor> descriptors;
  descriptors.push_back(tokens.descriptor());
  for (HostTensor &p : params)
    descriptors.push_back(p.descriptor());
  std::vector<void *> args{results.data()};
  for (MemRefDescriptor &d : descriptors)
    args.push_back(d.data());

  struct Outputs {
    HostTensor logits;
    std::vector<HostTensor> stats;
  };
  auto run = [&] {
    forward_packed(args.data());
    Outputs out{HostTensor::adoptResult(results.result(0), ElementType::F32),
                {}};
    for (unsigned i = 1; i < ranks.size(); ++i)
      out.stats.push_back(
          HostTensor::adoptResult(results.result(i), ElementType::I32));
    return out;
  };
  Outputs outputs = run();
  if (options.bench) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < options.bench; ++i)
      outputs = run();
    std::chrono::duration<double> seconds =
        std::chrono::steady_clock::now() - start;
    double processed =
        static_cast<double>(tokens.numElements()) * options.bench;
    std::printf("%d runs, %.3f s, %.1f tokens/s\n", options.bench,
                seconds.count(), processed / seconds.count());
  }
  HostTensor &logits = outputs.logits;
  if (!options.stats.empty() &&
      !writeStats(options.stats, statsLayers, outputs.stats, error))
    fail(error);
  if (!options.logits.empty() && !writeNpy(options.logits, logits, error))
    fail(error);
  return 0;
}
