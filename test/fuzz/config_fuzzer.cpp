//===- config_fuzzer.cpp - libFuzzer target for the config parser ---------===//
//
// Feeds arbitrary bytes to parseModelConfig. Besides the sanitizers' checks
// it enforces the parser's contract: a rejected input gets one line naming
// the file, and an accepted one has the sizes later stages rely on.
//
//===----------------------------------------------------------------------===//

#include "importer/ModelConfig.h"

#include <cstdio>
#include <cstdlib>

static void check(bool condition, const char *what) {
  if (!condition) {
    std::fprintf(stderr, "config fuzzer: contract broken: %s\n", what);
    std::abort();
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<std::string> warnings;
  llvm::Expected<moec::ModelConfig> config = moec::parseModelConfig(
      llvm::StringRef(reinterpret_cast<const char *>(data), size), "fuzz.json",
      warnings);
  for (const std::string &warning : warnings)
    check(warning.find('\n') == std::string::npos, "warning spans lines");
  if (!config) {
    std::string error = llvm::toString(config.takeError());
    check(error.rfind("fuzz.json: ", 0) == 0,
          "error does not start with the file name");
    check(error.find('\n') == std::string::npos, "error spans lines");
    return 0;
  }
  check(config->hiddenSize > 0 && config->numLayers > 0 &&
            config->numHeads > 0 && config->numKVHeads > 0 &&
            config->numHeads % config->numKVHeads == 0 && config->headDim > 0 &&
            config->vocabSize > 0 && config->numExperts > 0 &&
            config->expertsPerToken > 0,
        "accepted a config with an impossible size");
  check(config->numLayers <= moec::kMaxLayers &&
            config->weightElementBound() <= moec::kMaxWeightElements,
        "accepted a model no machine can hold");
  if (config->multiHeadHeads)
    check(config->hiddenSize % *config->multiHeadHeads == 0,
          "accepted MH-MoE heads that do not divide hidden_size");
  if (config->adaptiveRouting)
    check(config->dualScale.has_value(), "accepted ADR without DSSE");
  return 0;
}
