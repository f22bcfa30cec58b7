//===- AttentionUtils.h - what every attention lowering shares --*- C++ -*-===//
//
// The key range of the attention ops and GMHA's group summaries, shared by
// the generic lowering (convert-moe-to-linalg) and the CPU kernel
// (moe-tile-attention).
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_ATTENTIONUTILS_H
#define MOEC_CODEGEN_ATTENTIONUTILS_H

#include "dialect/MoeOps.h"

#include <optional>
#include <utility>

namespace mlir::moe {

/// Which keys a query at position i sees, besides the causal bound j <= i.
struct AttentionKeyRange {
  /// Keep key j only when i - window < j (sliding window, and GMHA's local
  /// keys).
  std::optional<int64_t> window;
  /// GMHA: local keys stay in the query's group, and every earlier complete
  /// group contributes its mean key and value.
  std::optional<int64_t> groupSize;
  /// moe.attention's `offset`: query i is at position offset + i (a decode
  /// step against a cache); null when queries and keys start together.
  Value queryOffset;

  /// The range of a moe.attention or moe.grouped_attention.
  static AttentionKeyRange of(Operation *op);
};

/// GMHA's summaries: the per-group means of `key` and `value` ([B, T, KVH,
/// Dh]) over the complete groups of `groupSize` tokens only, [B, T / G, KVH,
/// Dh] in f32, computed once for every later query.
std::pair<Value, Value> buildGroupMeans(OpBuilder &b, Location loc, Value key,
                                        Value value, int64_t groupSize);

/// The position a causal loop's iteration `i` of `n` serves: i / 2 when i is
/// even and n - 1 - i / 2 when odd. Causal rows grow with the position and
/// OpenMP splits the iterations into contiguous chunks, so this order mixes
/// short and long rows in every chunk and the workers finish together.
Value balancedCausalIndex(OpBuilder &b, Location loc, Value i, Value n);

} // namespace mlir::moe

#endif // MOEC_CODEGEN_ATTENTIONUTILS_H
