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

/* Generation: a session holds up to `max_batch` sequences of up to
 * `max_length` tokens each, extended one token per decode step. It owns a
 * KV cache (the keys and values each decode step attends to), sized by a
 * prefill for its batch and max_length (and kept while the batch stays the
 * same), so a decode step costs one token's work, not a pass over the whole
 * sequence. It uses its
 * model, which must outlive it. */
typedef struct moec_session moec_session;

int moec_session_create(moec_model *model, int64_t max_batch,
                        int64_t max_length, moec_session **session,
                        char *error, size_t error_size);

/* Starts `batch` sequences from the row-major [batch, seq_len] prompt (any
 * earlier sequences are dropped) and writes float32 [batch, V] logits: the
 * last position of each sequence. Fails if batch > max_batch or seq_len >
 * max_length. */
int moec_session_prefill(moec_session *session, const int32_t *tokens,
                         int64_t batch, int64_t seq_len, float *logits,
                         char *error, size_t error_size);

/* Appends tokens[b] to each sequence b (as many ids as the prefill's
 * batch) and writes the new positions' float32 [batch, V] logits. Fails
 * before a prefill and when the sequences are already max_length long. */
int moec_session_decode(moec_session *session, const int32_t *tokens,
                        float *logits, char *error, size_t error_size);

/* The tokens per sequence so far (prompt and decoded); 0 after a reset. */
int64_t moec_session_length(const moec_session *session);

/* The bytes of the session's KV cache; 0 before the first prefill. It grows
 * with max_length for full attention, is bounded by the window with
 * sliding-window attention, and grows by one summary per group with GMHA. */
int64_t moec_session_cache_bytes(const moec_session *session);

/* Drops the sequences; the next call must be a prefill. */
void moec_session_reset(moec_session *session);

void moec_session_free(moec_session *session);

#ifdef __cplusplus
}
#endif

#endif /* MOEC_MODEL_H */
