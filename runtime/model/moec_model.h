/*===- moec_model.h - C API of a model compiled by moec ----------*- C -*-===*\
|*                                                                            *|
|* `moec compile CONFIG.json -o libmodel.so --emit lib` writes this header    *|
|* beside the library. Every function that can fail returns 0 on success, or *|
|* nonzero with a one-line message in the caller's `error` buffer.           *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef MOEC_MODEL_H
#define MOEC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moec_model moec_model;

/* Loads the weights from a .safetensors file or a sharded checkpoint's
 * index, checking every tensor the model needs. */
int moec_model_load(const char *weights_path, moec_model **model, char *error,
                    size_t error_size);

/* The vocabulary size V: token ids must lie in [0, V). */
int64_t moec_model_vocab_size(const moec_model *model);

/* Runs the forward pass on `batch` sequences of `seq_len` tokens each
 * (row-major [batch, seq_len]) and writes float32 logits, row-major
 * [batch, seq_len, V], to `logits`. With `stats_json` nonnull, also writes
 * the routing statistics as a NUL-terminated JSON text of at most
 * `stats_size` bytes. */
int moec_model_forward(moec_model *model, const int32_t *tokens, int64_t batch,
                       int64_t seq_len, float *logits, char *stats_json,
                       size_t stats_size, char *error, size_t error_size);

void moec_model_free(moec_model *model);

#ifdef __cplusplus
}
#endif

#endif /* MOEC_MODEL_H */
