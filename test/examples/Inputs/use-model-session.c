// Drives the generation session of moec_model.h:
//   use-model-session WEIGHTS   prefills two sequences of 4 tokens in a
//   session of max length 6, decodes them greedily to the end, and checks
//   each step's logits against moec_model_forward on the whole sequence
//   (relative error <= 1e-5); then
//   makes each bad request once and prints the error.
#include "moec_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { kBatch = 2, kPrompt = 4, kMax = 6 };

static int argmax(const float *row, int64_t n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (row[i] > row[best])
      best = i;
  return best;
}

// The largest |a - b| / max |b| over the last position of each sequence of
// `tokens` ([kBatch, len]) between `logits` ([kBatch, V]) and a forward pass.
static double errorAgainstForward(moec_model *model, const int32_t *tokens,
                                  int len, const float *logits) {
  int64_t vocab = moec_model_vocab_size(model);
  float *all = malloc(sizeof(float) * kBatch * len * vocab);
  char error[256];
  if (moec_model_forward(model, tokens, kBatch, len, all, NULL, 0, error,
                         sizeof error)) {
    printf("forward failed: %s\n", error);
    exit(1);
  }
  double worst = 0, scale = 0;
  for (int b = 0; b < kBatch; ++b)
    for (int64_t v = 0; v < vocab; ++v) {
      double want = all[((int64_t)b * len + len - 1) * vocab + v];
      worst = fmax(worst, fabs(logits[b * vocab + v] - want));
      scale = fmax(scale, fabs(want));
    }
  free(all);
  return worst / scale;
}

int main(int argc, char **argv) {
  char error[512];
  moec_model *model;
  moec_session *session;
  if (argc != 2 || moec_model_load(argv[1], &model, error, sizeof error))
    return 2;
  int64_t vocab = moec_model_vocab_size(model);
  if (moec_session_create(model, kBatch, kMax, &session, error, sizeof error))
    return 2;
  int32_t prompt[kBatch * kPrompt] = {3, 17, 42, 7, 9, 9, 200, 1};
  float *logits = malloc(sizeof(float) * kBatch * vocab);
  if (moec_session_decode(session, prompt, logits, error, sizeof error))
    printf("rejected: %s\n", error);
  if (moec_session_prefill(session, prompt, kBatch, kPrompt, logits, error,
                           sizeof error)) {
    printf("prefill failed: %s\n", error);
    return 1;
  }
  printf("cache %lld bytes\n", (long long)moec_session_cache_bytes(session));
  // The sequences so far, [kBatch, kMax] row-major, the first len valid.
  int32_t seq[kBatch * kMax];
  int len = kPrompt;
  for (int b = 0; b < kBatch; ++b)
    for (int t = 0; t < kPrompt; ++t)
      seq[b * kMax + t] = prompt[b * kPrompt + t];
  for (;;) {
    int32_t packed[kBatch * kMax];
    for (int b = 0; b < kBatch; ++b)
      for (int t = 0; t < len; ++t)
        packed[b * len + t] = seq[b * kMax + t];
    // The decode step attends to cached keys in another summation order
    // than the forward pass: equal within f32 rounding, not bit for bit.
    double err = errorAgainstForward(model, packed, len, logits);
    printf("length %lld: %s (%.1e)\n",
           (long long)moec_session_length(session),
           err <= 1e-5 ? "agrees" : "DIFFERS", err);
    int32_t next[kBatch];
    for (int b = 0; b < kBatch; ++b)
      seq[b * kMax + len] = next[b] = argmax(logits + b * vocab, vocab);
    if (len == kMax)
      break;
    if (moec_session_decode(session, next, logits, error, sizeof error)) {
      printf("decode failed: %s\n", error);
      return 1;
    }
    ++len;
  }
  int32_t next[kBatch] = {0, 0};
  if (moec_session_decode(session, next, logits, error, sizeof error))
    printf("rejected: %s\n", error);
  next[1] = (int32_t)vocab;
  moec_session_reset(session);
  int32_t three[3 * kPrompt] = {0};
  if (moec_session_prefill(session, three, 3, kPrompt, logits, error,
                           sizeof error))
    printf("rejected: %s\n", error);
  if (moec_session_prefill(session, prompt, 1, kMax + 1, logits, error,
                           sizeof error))
    printf("rejected: %s\n", error);
  if (!moec_session_prefill(session, prompt, kBatch, kPrompt, logits, error,
                            sizeof error) &&
      moec_session_decode(session, next, logits, error, sizeof error))
    printf("rejected: %s\n", error);
  moec_session *none;
  if (moec_session_create(model, 0, kMax, &none, error, sizeof error))
    printf("rejected: %s\n", error);
  moec_session_free(session);
  moec_model_free(model);
  free(logits);
  return 0;
}
