//===- ModelApi.cpp - the C API of a compiled model -----------------------===//

#include "runtime/model/Generation.h"
#include "runtime/model/Model.h"
#include "runtime/model/moec_model.h"

#include <cstring>

using namespace moec::runtime;

struct moec_model {
  std::unique_ptr<CompiledModel> model;
};

struct moec_session {
  Session session;
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

/// Row-major [batch, seqLen] ids as an I32 tensor.
HostTensor tokenTensor(const int32_t *tokens, int64_t batch, int64_t seqLen) {
  HostTensor input(ElementType::I32, {batch, seqLen});
  std::memcpy(input.data(), tokens,
              static_cast<size_t>(batch * seqLen) * sizeof(int32_t));
  return input;
}

/// Copies a session's last logits, F32 [B, V], to the caller's buffer.
void copyLogits(const Session &session, float *out) {
  std::memcpy(out, session.lastLogits(),
              static_cast<size_t>(session.batch() *
                                  session.model().vocabSize()) *
                  sizeof(float));
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
  std::string message;
  if (!model->model->checkTokenIds(tokens, batch * seqLen, message))
    return setError(error, errorSize, "moec_model_forward: " + message);
  HostTensor input = tokenTensor(tokens, batch, seqLen);
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

MOEC_API int moec_session_create(moec_model *model, int64_t maxBatch,
                                 int64_t maxLength, moec_session **session,
                                 char *error, size_t errorSize) {
  if (!model || !session)
    return setError(error, errorSize, "moec_session_create: null argument");
  if (maxBatch < 1 || maxLength < 1)
    return setError(error, errorSize,
                    "moec_session_create: max_batch and max_length must be "
                    ">= 1, got " +
                        std::to_string(maxBatch) + " and " +
                        std::to_string(maxLength));
  *session = new moec_session{Session(*model->model, maxBatch, maxLength)};
  return 0;
}

MOEC_API int moec_session_prefill(moec_session *session, const int32_t *tokens,
                                  int64_t batch, int64_t seqLen, float *logits,
                                  char *error, size_t errorSize) {
  if (!session || !tokens || !logits)
    return setError(error, errorSize, "moec_session_prefill: null argument");
  if (batch < 1 || seqLen < 1)
    return setError(error, errorSize,
                    "moec_session_prefill: batch and seq_len must be >= 1");
  std::string message;
  if (!session->session.prefill(tokenTensor(tokens, batch, seqLen), message))
    return setError(error, errorSize, "moec_session_prefill: " + message);
  copyLogits(session->session, logits);
  return 0;
}

MOEC_API int moec_session_decode(moec_session *session, const int32_t *tokens,
                                 float *logits, char *error,
                                 size_t errorSize) {
  if (!session || !tokens || !logits)
    return setError(error, errorSize, "moec_session_decode: null argument");
  std::string message;
  if (!session->session.decode(tokens, message))
    return setError(error, errorSize, "moec_session_decode: " + message);
  copyLogits(session->session, logits);
  return 0;
}

MOEC_API int64_t moec_session_length(const moec_session *session) {
  return session ? session->session.length() : 0;
}

MOEC_API int64_t moec_session_cache_bytes(const moec_session *session) {
  return session ? session->session.cacheBytes() : 0;
}

MOEC_API void moec_session_reset(moec_session *session) {
  if (session)
    session->session.reset();
}

MOEC_API void moec_session_free(moec_session *session) { delete session; }
