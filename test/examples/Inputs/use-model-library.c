// Drives a model built with `moec compile --emit lib` through moec_model.h:
//   use-model-library WEIGHTS OUT.bin   runs tokens 3,17,42,7 and writes the
//                                        float32 logits to OUT.bin
#include "moec_model.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  char error[512];
  moec_model *model;
  if (argc != 3)
    return 2;
  if (moec_model_load(argv[1], &model, error, sizeof error)) {
    printf("load failed: %s\n", error);
    return 1;
  }
  int64_t vocab = moec_model_vocab_size(model);
  int32_t tokens[4] = {3, 17, 42, 7};
  float *logits = malloc(sizeof(float) * 4 * vocab);
  char stats[16384];
  if (moec_model_forward(model, tokens, 1, 4, logits, stats, sizeof stats,
                         error, sizeof error)) {
    printf("forward failed: %s\n", error);
    return 1;
  }
  FILE *out = fopen(argv[2], "wb");
  fwrite(logits, sizeof(float), 4 * vocab, out);
  fclose(out);
  printf("vocab %lld\nstats %.40s\n", (long long)vocab, stats);
  int32_t bad = (int32_t)vocab;
  if (moec_model_forward(model, &bad, 1, 1, logits, NULL, 0, error,
                         sizeof error))
    printf("rejected: %s\n", error);
  moec_model_free(model);
  if (!moec_model_load("/nonexistent.safetensors", &model, error,
                       sizeof error))
    return 1;
  printf("rejected: %s\n", error);
  free(logits);
  return 0;
}
