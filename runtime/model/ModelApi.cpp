//===- ModelApi.cpp - the C API of a compiled model -----------------------===//

#include "runtime/model/Model.h"
#include "runtime/model/moec_model.h"

#include <cstring>

using namespace moec::runtime;

struct moec_model {
  std::unique_ptr<CompiledModel> model;
};

#define MOEC_API extern "C" __attribute__((visibility("default")))

namespace {

int setError(char *buffer, size_t size, const std::string &message) {
  if (buffer && size) {
    size_t n = std::min(size - 1, message.size());
    std::memcpy(buffer, message.data(), n);
    buffer[n] = '\0';
  }
  return 1;
}

} // namespace

MOEC_API int moec_model_load(const char *weightsPath, moec_model **model,
                             char *error, size_t errorSize) {
  if (!weightsPath || !model)
    return setError(error, errorSize, "moec_model_load: null argument");
  std::string message;
  std::unique_ptr<CompiledModel> loaded =
      CompiledModel::load(weightsPath, message);
  if (!loaded)
    return setError(error, errorSize, message);
  *model = new moec_model{std::move(loaded)};
  return 0;
}

MOEC_API int64_t moec_model_vocab_size(const moec_model *model) {
  return model ? model->model->vocabSize() : 0;
}

MOEC_API int moec_model_forward(moec_model *model, const int32_t *tokens,
                                int64_t batch, int64_t seqLen, float *logits,
                                char *statsJson, size_t statsSize, char *error,
                                size_t errorSize) {
  if (!model || !tokens || !logits)
    return setError(error, errorSize, "moec_model_forward: null argument");
  if (batch < 1 || seqLen < 1)
    return setError(error, errorSize,
                    "moec_model_forward: batch and seq_len must be >= 1");
  int64_t vocab = model->model->vocabSize();
  HostTensor input(ElementType::I32, {batch, seqLen});
  auto *ids = static_cast<int32_t *>(input.data());
  for (int64_t i = 0; i < batch * seqLen; ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab)
      return setError(error, errorSize,
                      "moec_model_forward: token id " +
                          std::to_string(tokens[i]) + " at position " +
                          std::to_string(i) + " is out of range [0, " +
                          std::to_string(vocab) + ")");
    ids[i] = tokens[i];
  }
  CompiledModel::Outputs outputs = model->model->forward(input);
  std::memcpy(logits, outputs.logits.data(),
              static_cast<size_t>(outputs.logits.numElements()) * 4);
  if (statsJson) {
    std::string text = model->model->statistics(outputs).dump();
    if (text.size() + 1 > statsSize)
      return setError(error, errorSize,
                      "moec_model_forward: the statistics need " +
                          std::to_string(text.size() + 1) +
                          " bytes, stats_size is " + std::to_string(statsSize));
    std::memcpy(statsJson, text.c_str(), text.size() + 1);
  }
  return 0;
}

MOEC_API void moec_model_free(moec_model *model) { delete model; }
