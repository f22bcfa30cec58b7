//===- MoeOps.td - moe operations --------------------------*- tablegen -*-===//
//
// Tensor shapes below use T for tokens, D for the hidden size, E (or G) for
// experts (groups), K for the per-token expert slots of a policy, R for the
// dispatched rows (sum of the per-token expert counts), F for the expert
// intermediate size. Token and row dimensions are dynamic in general.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_DIALECT_MOEOPS_TD
#define MOEC_DIALECT_MOEOPS_TD

include "dialect/MoeAttrs.td"
include "mlir/Dialect/LLVMIR/LLVMOpBase.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/OpAsmInterface.td"

def Moe_FloatTensor : RankedTensorOf<[AnyFloat]>;
def Moe_F32Tensor : RankedTensorOf<[F32]>;
def Moe_I32Tensor : RankedTensorOf<[I32]>;

//===----------------------------------------------------------------------===//
// Model weights
//===----------------------------------------------------------------------===//

def Moe_WeightOp : Moe_Op<"weight", [Pure]> {
  let summary = "A model weight, read from the runtime's weight table";
  let description = [{
    The weight at entry `slot` of `table`: an array of pointers that the
    runtime fills with the address of every weight of the model before it
    calls it (a compiled model takes the table as an argument, and its
    manifest lists the entries in order). A decoder layer's function reads
    its weights at its own base slot, so one body serves every layer of its
    kind. `name` names the tensor for readers and diagnostics; in a layer
    function it is relative to the layer (`self_attn.q_proj.weight` for
    `model.layers.<l>.self_attn.q_proj.weight`).

    The result has a static shape. As a tensor its contents are read-only;
    `convert-moe-to-linalg` turns that form into `bufferization.to_tensor
    restrict` of the memref form, whose identity-layout buffer is the table
    entry itself, described by the static shape. The memref form lowers to
    the LLVM dialect as a load of the entry.

    ```mlir
    %w = moe.weight %table[%slot] "self_attn.q_proj.weight"
        : tensor<4096x4096xbf16>
    ```
  }];
  let arguments = (ins LLVM_DefaultPointer:$table, Index:$slot, StrAttr:$name);
  let results = (outs AnyTypeOf<[AnyStaticShapeTensor,
                                 AnyStaticShapeMemRef]>:$result);
  let assemblyFormat = [{
    $table `[` $slot `]` $name attr-dict `:` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Routing and dispatch
//===----------------------------------------------------------------------===//

def Moe_RouterOp : Moe_Op<"router", [Pure]> {
  let summary = "Selects experts per token under a routing policy";
  let description = [{
    Takes gate logits `[T, E]`, applies a softmax in f32 and lets `policy`
    choose each token's experts. Results, with `K` the policy's bound on
    experts per token for `E` experts:

    * `expert_ids : [T, K] i32`: the chosen experts, most probable first;
    * `weights : [T, K] f32`: their routing weights;
    * `counts : [T] i32`: how many of the `K` slots each token uses. Slots at
      and past a token's count are unused (id -1, weight 0).

    The optional `caps : [T] i32` lowers the count of individual tokens
    further (adaptive routing caps simple tokens); caps of at least `K` have
    no effect. `moe-lower-routing` lowers the op.

    ```mlir
    %ids, %w, %n = moe.router %logits policy(#moe.top_p<threshold = 0.5, max_experts = 4>)
        : tensor<?x8xf32> -> tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$logits,
                       Optional<Moe_I32Tensor>:$caps,
                       Moe_RoutingPolicyAttrInterface:$policy);
  let results = (outs Moe_I32Tensor:$expert_ids,
                      Moe_F32Tensor:$weights,
                      Moe_I32Tensor:$counts);
  let assemblyFormat = [{
    $logits `policy` `(` $policy `)` (`caps` `(` $caps^ `:` type($caps) `)`)?
    attr-dict `:` type($logits) `->` type($expert_ids) `,` type($weights) `,`
    type($counts)
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    /// Number of experts routed among (the static width of the logits).
    int64_t getNumExperts() { return getLogits().getType().getDimSize(1); }
  }];
}

def Moe_DispatchOp : Moe_Op<"dispatch", [Pure]> {
  let summary = "Sorts token copies by expert";
  let description = [{
    Gathers one row per (token, selected expert) pair, sorted by expert and,
    within an expert, by token (a stable sort). The number of experts `E` is
    given by the type of `group_offsets`.

    * `rows : [R, D]`: the gathered token rows, `R = sum(counts)`;
    * `group_offsets : [E + 1] i32`: rows of expert `e` are
      `[group_offsets[e], group_offsets[e + 1])` (an exclusive prefix sum of
      the per-expert counts);
    * `row_to_token : [R] i32`: the token each row came from;
    * `slot_to_row : [T, K] i32`: the row holding slot `k` of token `t`, or -1
      for an unused slot. `moe.combine` reads it to undo the dispatch.

    ```mlir
    %rows, %offsets, %row_to_token, %slot_to_row = moe.dispatch %x, %ids, %counts
        : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?xi32>
        -> tensor<?x64xf32>, tensor<9xi32>, tensor<?xi32>, tensor<?x2xi32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$tokens,
                       Moe_I32Tensor:$expert_ids,
                       Moe_I32Tensor:$counts);
  let results = (outs Moe_FloatTensor:$rows,
                      Moe_I32Tensor:$group_offsets,
                      Moe_I32Tensor:$row_to_token,
                      Moe_I32Tensor:$slot_to_row);
  let assemblyFormat = [{
    $tokens `,` $expert_ids `,` $counts attr-dict `:` type($tokens) `,`
    type($expert_ids) `,` type($counts) `->` type($rows) `,`
    type($group_offsets) `,` type($row_to_token) `,` type($slot_to_row)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getNumExperts() {
      return getGroupOffsets().getType().getDimSize(0) - 1;
    }
  }];
}

def Moe_TileScheduleOp : Moe_Op<"tile_schedule", [Pure]> {
  let summary = "Cuts ragged groups of rows into work tiles";
  let description = [{
    The work list of a grouped GEMM: cuts the rows of each group `g`,
    `[group_offsets[g], group_offsets[g + 1])`, into tiles of at most
    `tile_rows` rows, groups in order. Row `i` of `tiles : [?, 3] i32` is
    `(group, first_row, rows)` with `1 <= rows <= tile_rows`.

    Group `g` gets `t = ceil(rows_g / tile_rows)` tiles, an empty group
    none, so `R` rows in `G` groups make at most `ceil(R / tile_rows) + G`
    tiles whatever the routing skew. The tiles of a group are as equal as
    possible: `rows_g / t` rows each, one more for the first `rows_g % t`
    (a kernel that pays per tile, such as packing a weight panel, never
    pays it for a sliver). A tile never crosses a group boundary, so there
    is no padding at all. A parallel loop over the tiles (times tiles of the
    output columns) spreads one big group over every worker, and an empty
    group costs nothing.

    ```mlir
    // Offsets [0, 100, 100, 130] with tile_rows(64):
    // tiles = [[0, 0, 50], [0, 50, 50], [2, 100, 30]].
    %tiles = moe.tile_schedule %offsets tile_rows(64)
        : tensor<4xi32> -> tensor<?x3xi32>
    ```
  }];
  let arguments = (ins Moe_I32Tensor:$group_offsets,
                       ConfinedAttr<I64Attr, [IntPositive]>:$tile_rows);
  let results = (outs Moe_I32Tensor:$tiles);
  let assemblyFormat = [{
    $group_offsets `tile_rows` `(` $tile_rows `)` attr-dict `:`
    type($group_offsets) `->` type($tiles)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getNumGroups() {
      return getGroupOffsets().getType().getDimSize(0) - 1;
    }
  }];
}

def Moe_GroupedMatmulOp : Moe_Op<"grouped_matmul", [Pure,
    AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<ReifyRankedShapedTypeOpInterface,
        ["reifyResultShapes"]>]> {
  let summary = "Ragged grouped matrix multiplication";
  let description = [{
    Multiplies each row of `input : [R, K]` by the weight of its group:
    rows `[group_offsets[g], group_offsets[g + 1])` use `weight[g] : [N, K]`
    (the Hugging Face `[out, in]` layout), so `result[r] = input[r] ·
    weight[g]ᵀ`. `group_offsets : [G + 1] i32` must start at 0, never
    decrease, and end at `R`; empty groups cost nothing.

    The epilogue runs on each result element before it is stored:

    * `none`: the product itself;
    * `swiglu`: `silu(input[r] · weight[g]ᵀ) * (input[r] · up_weight[g]ᵀ)`,
      the gate and up projections of a SwiGLU expert in one pass over the
      rows; needs `up_weight`, of the same shape as `weight`.

    `row_scale : [R] f32`, when present, multiplies each result row last
    (routing weights). Products accumulate in f32.

    ```mlir
    %h = moe.grouped_matmul %rows, %w1, %w3 offsets(%offsets) epilogue(swiglu)
        : (tensor<?x64xf32>, tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<9xi32>)
        -> tensor<?x128xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input,
                       Moe_FloatTensor:$weight,
                       Optional<Moe_FloatTensor>:$up_weight,
                       Moe_I32Tensor:$group_offsets,
                       Optional<Moe_F32Tensor>:$row_scale,
                       DefaultValuedAttr<Moe_EpilogueAttr,
                                         "::mlir::moe::Epilogue::none">:$epilogue);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`,` $up_weight^)? `offsets` `(` $group_offsets `)`
    (`scale` `(` $row_scale^ `)`)? (`epilogue` `(` custom<Epilogue>($epilogue)^ `)`)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getNumGroups() { return getWeight().getType().getDimSize(0); }
  }];
}

def Moe_CombineOp : Moe_Op<"combine", [Pure,
    DeclareOpInterfaceMethods<ReifyRankedShapedTypeOpInterface,
        ["reifyResultShapes"]>]> {
  let summary = "Weighted sum of expert outputs per token";
  let description = [{
    The inverse of `moe.dispatch`: for each token `t`,
    `result[t] = sum over k < counts[t] of weights[t, k] * rows[slot_to_row[t, k]]`.
    A token with a count of 0 gets zeros. Sums accumulate in f32.

    Without `weights` the rows are summed as they are: their routing weights
    were applied earlier, typically as the `scale` of the grouped matmul that
    produced them (see `moe-fuse-routing-weights`).

    ```mlir
    %y = moe.combine %rows, %w, %slot_to_row, %counts
        : (tensor<?x64xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>)
        -> tensor<?x64xf32>
    %z = moe.combine %scaled_rows, %slot_to_row, %counts
        : (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$rows,
                       Optional<Moe_F32Tensor>:$weights,
                       Moe_I32Tensor:$slot_to_row,
                       Moe_I32Tensor:$counts);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    custom<CombineOperands>($rows, $weights, $slot_to_row, $counts) attr-dict
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_RowWeightsOp : Moe_Op<"row_weights", [Pure]> {
  let summary = "The routing weight of each dispatched row";
  let description = [{
    Undoes the slot-to-row mapping of `moe.dispatch` for the routing weights:
    `result[r] = weights[t, k]` for the row `r = slot_to_row[t, k]`, where
    `t = row_to_token[r]`. Every row has exactly one slot, so the op gathers
    (per row, over the `K` slots of its token) and never scatters.

    ```mlir
    %rw = moe.row_weights %w, %slot_to_row, %row_to_token
        : (tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?xf32>
    ```
  }];
  let arguments = (ins Moe_F32Tensor:$weights,
                       Moe_I32Tensor:$slot_to_row,
                       Moe_I32Tensor:$row_to_token);
  let results = (outs Moe_F32Tensor:$result);
  let assemblyFormat = [{
    $weights `,` $slot_to_row `,` $row_to_token attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Multi-head MoE
//===----------------------------------------------------------------------===//

class Moe_TokenReshapeOp<string mnemonic, string summaryText>
    : Moe_Op<mnemonic, [Pure]> {
  let summary = summaryText;
  let arguments = (ins Moe_FloatTensor:$input,
                       ConfinedAttr<I64Attr, [IntPositive]>:$heads);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `heads` `(` $heads `)` attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Moe_SplitTokensOp : Moe_TokenReshapeOp<"split_tokens",
    "Splits each token into `heads` sub-tokens (MH-MoE)"> {
  let description = [{
    `[T, D] -> [T * heads, D / heads]`: sub-token `t * heads + j` is
    `input[t, j * D / heads : (j + 1) * D / heads]`. `D` must be divisible by
    `heads`.

    ```mlir
    %s = moe.split_tokens %x heads(4) : tensor<?x64xf32> -> tensor<?x16xf32>
    ```
  }];
}

def Moe_MergeTokensOp : Moe_TokenReshapeOp<"merge_tokens",
    "Merges groups of `heads` sub-tokens back into tokens (MH-MoE)"> {
  let description = [{
    The inverse of `moe.split_tokens`: `[T * heads, d] -> [T, d * heads]`.
    The sub-token count must be a multiple of `heads` when it is static.

    ```mlir
    %m = moe.merge_tokens %s heads(4) : tensor<?x16xf32> -> tensor<?x64xf32>
    ```
  }];
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

class Moe_AttentionBase<string mnemonic> : Moe_Op<mnemonic, [Pure]> {
  let results = (outs Moe_FloatTensor:$result);
  let hasVerifier = 1;
}

def Moe_AttentionOp : Moe_AttentionBase<"attention"> {
  let summary = "Causal grouped-query attention, full or sliding-window";
  let description = [{
    `query : [B, T, H, Dh]`, `key` and `value : [B, T, KVH, Dh]` (after
    RoPE). Head `i` uses kv-head `i / (H / KVH)`; `H` must be a multiple of
    `KVH`. Scores are `q · k / sqrt(Dh)` under a causal mask; with `window(W)`
    key `j` is kept for query `i` only when `i - W < j <= i`. The softmax is
    computed in f32. The result has the shape of `query`.

    With `offset(%p)` the queries are later positions than the first keys,
    as in a decode step against a cache: `query : [B, Tq, H, Dh]` holds the
    positions `p .. p + Tq - 1` and `key`, `value : [B, Tk, KVH, Dh]` the
    positions `0 .. Tk - 1`, and the masks above apply to query position
    `p + i`. `p + Tq <= Tk` is the caller's to ensure.

    ```mlir
    %o = moe.attention %q, %k, %v window(4096)
        : (tensor<?x?x8x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>)
        -> tensor<?x?x8x64xf32>
    %d = moe.attention %q1, %kc, %vc offset(%p)
        : (tensor<?x1x8x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>,
           index) -> tensor<?x1x8x64xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$query, Moe_FloatTensor:$key,
                       Moe_FloatTensor:$value, Optional<Index>:$offset,
                       OptionalAttr<ConfinedAttr<I64Attr, [IntPositive]>>:$window);
  let assemblyFormat = [{
    $query `,` $key `,` $value (`offset` `(` $offset^ `)`)?
    (`window` `(` $window^ `)`)? attr-dict `:`
    functional-type(operands, results)
  }];
}

def Moe_GroupedAttentionOp : Moe_AttentionBase<"grouped_attention"> {
  let summary = "Grouped multi-head attention (GMHA), linear in T";
  let description = [{
    Operands as for `moe.attention`. Positions form consecutive groups of
    `group_size`; query `i` of group `g = i / group_size` attends, under one
    softmax, to the local keys `j` with
    `max(g * group_size, i - window + 1) <= j <= i` and to one summary key and
    value per earlier complete group (the mean of that group's keys after
    RoPE and the mean of its values, per kv-head). Cost is
    `O(T * (window + T / group_size))`.

    ```mlir
    %o = moe.grouped_attention %q, %k, %v group_size(128) window(64)
        : (tensor<?x?x8x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>)
        -> tensor<?x?x8x64xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$query, Moe_FloatTensor:$key,
                       Moe_FloatTensor:$value,
                       ConfinedAttr<I64Attr, [IntPositive]>:$group_size,
                       ConfinedAttr<I64Attr, [IntPositive]>:$window);
  let assemblyFormat = [{
    $query `,` $key `,` $value `group_size` `(` $group_size `)`
    `window` `(` $window `)` attr-dict `:` functional-type(operands, results)
  }];
}

//===----------------------------------------------------------------------===//
// The composite MoE block
//===----------------------------------------------------------------------===//

def Moe_MoeBlockOp : Moe_Op<"moe_block", [Pure, AttrSizedOperandSegments]> {
  let summary = "A whole Mixture-of-Experts block";
  let description = [{
    `result = MoE(hidden)` for `hidden : [T, D]`, with the routed experts
    given by `gate : [E, Dr]` and the stacked SwiGLU expert weights
    `w1, w3 : [E, F, Dr]`, `w2 : [E, Dr, F]` (`Dr = D`, or `D / heads` with
    `multi_head`). Optional clauses add the features of docs/semantics.md:

    * `multi_head(heads: Wh, bh, Wm, bm)`: MH-MoE. Projects with
      `Wh : [D, D]`, `bh : [D]`, splits into sub-tokens, routes and runs the
      experts on sub-tokens, merges, and projects with `Wm`, `bm`.
    * `shared_expert(w1, w3, w2, gate)`: the Qwen2-MoE shared expert
      (`[Fs, D]`, `[Fs, D]`, `[D, Fs]`) scaled by `sigmoid(h · gateᵀ)`,
      `gate : [1, D]`.
    * `shallow_expert(w1, w3, w2)` and `deep_expert(w1, w3, w2)`: the
      dual-scale shared experts, always added (both or neither).
    * `adaptive_routing(w, b) level_threshold(c0) simple_max_experts(m)`:
      the complexity gate `c = sigmoid(h · wᵀ + b)`, `w : [1, D]`, `b : [1]`.
      Tokens with `c >= c0` add `c * Deep(h)`; the others skip the deep expert
      and use at most `m` routed experts. Needs the dual-scale experts.

    With three `stats` results the block also reports its routing, for the
    statistics of docs/semantics.md §8: the number of experts each (sub-)token used
    (`[T * heads] i32`), the number of rows each expert received (`[E] i32`)
    and each token's ADR level (`[T] i32`, 1 for complex tokens and 0 for
    simple ones; all 1 without `adaptive_routing`).

    `moe-decompose-moe-block` rewrites the block into `moe.router`,
    `moe.dispatch`, `moe.grouped_matmul`, `moe.combine` and, for MH-MoE,
    `moe.split_tokens` / `moe.merge_tokens`, all computing in f32.

    ```mlir
    %y = moe.moe_block %h gate(%wg : tensor<8x64xf32>)
        experts(%w1, %w3, %w2 : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>)
        policy(#moe.top_k<k = 2>) : tensor<?x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins
      Moe_FloatTensor:$hidden,
      Moe_FloatTensor:$gate,
      Moe_FloatTensor:$w1, Moe_FloatTensor:$w3, Moe_FloatTensor:$w2,
      Moe_RoutingPolicyAttrInterface:$policy,
      // multi_head
      OptionalAttr<ConfinedAttr<I64Attr, [IntPositive]>>:$heads,
      Optional<Moe_FloatTensor>:$head_weight,
      Optional<Moe_FloatTensor>:$head_bias,
      Optional<Moe_FloatTensor>:$merge_weight,
      Optional<Moe_FloatTensor>:$merge_bias,
      // shared_expert (Qwen2-MoE)
      Optional<Moe_FloatTensor>:$shared_w1,
      Optional<Moe_FloatTensor>:$shared_w3,
      Optional<Moe_FloatTensor>:$shared_w2,
      Optional<Moe_FloatTensor>:$shared_gate,
      // dual-scale shared experts
      Optional<Moe_FloatTensor>:$shallow_w1,
      Optional<Moe_FloatTensor>:$shallow_w3,
      Optional<Moe_FloatTensor>:$shallow_w2,
      Optional<Moe_FloatTensor>:$deep_w1,
      Optional<Moe_FloatTensor>:$deep_w3,
      Optional<Moe_FloatTensor>:$deep_w2,
      // adaptive routing
      Optional<Moe_FloatTensor>:$complexity_weight,
      Optional<Moe_FloatTensor>:$complexity_bias,
      OptionalAttr<F64Attr>:$level_threshold,
      OptionalAttr<ConfinedAttr<I64Attr, [IntPositive]>>:$simple_max_experts);
  let results = (outs Moe_FloatTensor:$result,
                      Variadic<Moe_I32Tensor>:$stats);
  let assemblyFormat = [{
    $hidden
    `gate` `(` $gate `:` type($gate) `)`
    `experts` `(` $w1 `,` $w3 `,` $w2 `:` type($w1) `,` type($w3) `,` type($w2) `)`
    `policy` `(` $policy `)`
    (`multi_head` `(` $heads^ `:` $head_weight `,` $head_bias `,` $merge_weight
       `,` $merge_bias `:` type($head_weight) `,` type($head_bias) `,`
       type($merge_weight) `,` type($merge_bias) `)`)?
    (`shared_expert` `(` $shared_w1^ `,` $shared_w3 `,` $shared_w2 `,`
       $shared_gate `:` type($shared_w1) `,` type($shared_w3) `,`
       type($shared_w2) `,` type($shared_gate) `)`)?
    (`shallow_expert` `(` $shallow_w1^ `,` $shallow_w3 `,` $shallow_w2 `:`
       type($shallow_w1) `,` type($shallow_w3) `,` type($shallow_w2) `)`)?
    (`deep_expert` `(` $deep_w1^ `,` $deep_w3 `,` $deep_w2 `:`
       type($deep_w1) `,` type($deep_w3) `,` type($deep_w2) `)`)?
    (`adaptive_routing` `(` $complexity_weight^ `,` $complexity_bias `:`
       type($complexity_weight) `,` type($complexity_bias) `)`
       `level_threshold` `(` $level_threshold `)`
       `simple_max_experts` `(` $simple_max_experts `)`)?
    attr-dict `:` type($hidden) `->` type($result) (`,` type($stats)^)?
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    int64_t getNumExperts() { return getGate().getType().getDimSize(0); }
  }];
}

#endif // MOEC_DIALECT_MOEOPS_TD
