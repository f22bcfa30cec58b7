// RUN: moec-opt %s -split-input-file -verify-diagnostics

//===----------------------------------------------------------------------===//
// Routing policy and schedule attributes
//===----------------------------------------------------------------------===//

// expected-error @+1 {{top_k needs k >= 1, got 0}}
func.func @top_k_zero() attributes {p = #moe.top_k<k = 0>} { return }

// -----

// expected-error @+2 {{expected 'true' or 'false'}}
// expected-error @+1 {{failed to parse Moe_TopKAttr parameter 'normalize'}}
func.func @top_k_bad_bool() attributes {p = #moe.top_k<k = 2, normalize = 1>} { return }

// -----

// expected-error @+1 {{top_p needs a finite threshold >= 0, got -0.5}}
func.func @top_p_threshold_negative() attributes {p = #moe.top_p<threshold = -0.5>} { return }

// -----

// expected-error @+1 {{top_p needs max_experts >= 1, got 0}}
func.func @top_p_cap() attributes {p = #moe.top_p<threshold = 0.5, max_experts = 0>} { return }

// -----

// expected-error @+1 {{threshold policy needs a threshold in [0, 1), got 1.0}}
func.func @threshold_one() attributes {p = #moe.threshold<threshold = 1.0>} { return }

// -----

// expected-error @+1 {{threshold policy needs a threshold in [0, 1), got -0.1}}
func.func @threshold_negative() attributes {p = #moe.threshold<threshold = -0.1>} { return }

// -----

// expected-error @+1 {{threshold policy needs max_experts >= 1, got 0}}
func.func @threshold_cap() attributes {p = #moe.threshold<threshold = 0.2, max_experts = 0>} { return }

// -----

// expected-error @+1 {{struct is missing required parameter: threshold}}
func.func @threshold_missing() attributes {p = #moe.threshold<max_experts = 2>} { return }

// -----

// expected-error @+1 {{expert_schedule needs min_experts >= 1, got 0}}
func.func @schedule_min() attributes {s = #moe.expert_schedule<uniform, min_experts = 0, max_experts = 4>} { return }

// -----

// expected-error @+1 {{expert_schedule needs min_experts <= max_experts, got 6 > 4}}
func.func @schedule_order() attributes {s = #moe.expert_schedule<pyramid, min_experts = 6, max_experts = 4>} { return }

// -----

// expected-error @+1 {{the wave expert_schedule needs a period}}
func.func @schedule_wave() attributes {s = #moe.expert_schedule<wave, min_experts = 2, max_experts = 4>} { return }

// -----

// expected-error @+1 {{expert_schedule needs period >= 1, got 0}}
func.func @schedule_period() attributes {s = #moe.expert_schedule<wave, min_experts = 2, max_experts = 4, period = 0>} { return }

// -----

// expected-error @+1 {{period applies only to the wave expert_schedule, not to ascending}}
func.func @schedule_period_kind() attributes {s = #moe.expert_schedule<ascending, min_experts = 2, max_experts = 4, period = 3>} { return }

// -----

//===----------------------------------------------------------------------===//
// moe.weight
//===----------------------------------------------------------------------===//

func.func @weight_dynamic(%table: !llvm.ptr, %slot: index) {
  // expected-error @+1 {{result #0 must be statically shaped tensor of any type values or statically shaped memref of any type values, but got 'tensor<?x64xf32>'}}
  %w = moe.weight %table[%slot] "w" : tensor<?x64xf32>
  return
}

// -----

func.func @weight_strided(%table: !llvm.ptr, %slot: index) {
  // expected-error @+1 {{expects an identity-layout memref result, got 'memref<8x64xf32, strided<[128, 1]>>'}}
  %w = moe.weight %table[%slot] "w" : memref<8x64xf32, strided<[128, 1]>>
  return
}

// -----

func.func @weight_table(%table: memref<?xi64>, %slot: index) {
  // expected-error @+1 {{operand #0 must be LLVM pointer in address space 0}}
  %w = "moe.weight"(%table, %slot) {name = "w"} : (memref<?xi64>, index) -> tensor<8xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.router
//===----------------------------------------------------------------------===//

func.func @router_rank(%l: tensor<?xf32>) {
  // expected-error @+1 {{expects logits of rank 2 [T, E], got 'tensor<?xf32>'}}
  %i, %w, %n = moe.router %l policy(#moe.top_k<k = 1>) : tensor<?xf32> -> tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>
  return
}

// -----

func.func @router_dynamic_experts(%l: tensor<?x?xf32>) {
  // expected-error @+1 {{expects a static number of experts E in the logits}}
  %i, %w, %n = moe.router %l policy(#moe.top_k<k = 1>) : tensor<?x?xf32> -> tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>
  return
}

// -----

func.func @router_no_experts(%l: tensor<?x0xf32>) {
  // expected-error @+1 {{expects at least one expert, got E = 0}}
  %i, %w, %n = moe.router %l policy(#moe.top_k<k = 1>) : tensor<?x0xf32> -> tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>
  return
}

// -----

func.func @router_k_too_large(%l: tensor<?x4xf32>) {
  // expected-error @+1 {{top_k selects k = 6 experts but the layer has only 4; use k <= 4}}
  %i, %w, %n = moe.router %l policy(#moe.top_k<k = 6>) : tensor<?x4xf32> -> tensor<?x6xi32>, tensor<?x6xf32>, tensor<?xi32>
  return
}

// -----

func.func @router_ids_width(%l: tensor<?x8xf32>) {
  // expected-error @+1 {{expects expert_ids of shape [T, K] = [?, 2], got 'tensor<?x3xi32>'}}
  %i, %w, %n = moe.router %l policy(#moe.top_k<k = 2>) : tensor<?x8xf32> -> tensor<?x3xi32>, tensor<?x2xf32>, tensor<?xi32>
  return
}

// -----

func.func @router_top_p_width(%l: tensor<?x8xf32>) {
  // The cap bounds K: top_p with max_experts = 4 needs 4 slots.
  // expected-error @+1 {{expects weights of shape [T, K] = [?, 4], got 'tensor<?x8xf32>'}}
  %i, %w, %n = moe.router %l policy(#moe.top_p<threshold = 0.5, max_experts = 4>) : tensor<?x8xf32> -> tensor<?x4xi32>, tensor<?x8xf32>, tensor<?xi32>
  return
}

// -----

func.func @router_threshold_width(%l: tensor<?x4xf32>) {
  // A cap above E does not widen K: the threshold policy still has 4 slots.
  // expected-error @+1 {{expects expert_ids of shape [T, K] = [?, 4], got 'tensor<?x6xi32>'}}
  %i, %w, %n = moe.router %l policy(#moe.threshold<threshold = 0.2, max_experts = 6>) : tensor<?x4xf32> -> tensor<?x6xi32>, tensor<?x6xf32>, tensor<?xi32>
  return
}

// -----

func.func @router_counts(%l: tensor<5x8xf32>) {
  // expected-error @+1 {{expects counts of shape [T] = [5], got 'tensor<6xi32>'}}
  %i, %w, %n = moe.router %l policy(#moe.top_k<k = 2>) : tensor<5x8xf32> -> tensor<5x2xi32>, tensor<5x2xf32>, tensor<6xi32>
  return
}

// -----

func.func @router_caps(%l: tensor<5x8xf32>, %c: tensor<4xi32>) {
  // expected-error @+1 {{expects caps of shape [T] = [5], got 'tensor<4xi32>'}}
  %i, %w, %n = moe.router %l policy(#moe.top_k<k = 2>) caps(%c : tensor<4xi32>) : tensor<5x8xf32> -> tensor<5x2xi32>, tensor<5x2xf32>, tensor<5xi32>
  return
}

// -----

func.func @router_not_a_policy(%l: tensor<?x8xf32>) {
  // expected-error @+1 {{Invalid attribute `policy` in property conversion: 2 : i64}}
  %i, %w, %n = "moe.router"(%l) <{policy = 2 : i64}> : (tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>)
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.dispatch
//===----------------------------------------------------------------------===//

func.func @dispatch_tokens_rank(%x: tensor<?xf32>, %i: tensor<?x2xi32>, %n: tensor<?xi32>) {
  // expected-error @+1 {{expects tokens of rank 2 [T, D], got 'tensor<?xf32>'}}
  %r, %o, %rt, %sr = moe.dispatch %x, %i, %n : tensor<?xf32>, tensor<?x2xi32>, tensor<?xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?xi32>, tensor<?x2xi32>
  return
}

// -----

func.func @dispatch_offsets(%x: tensor<?x64xf32>, %i: tensor<?x2xi32>, %n: tensor<?xi32>) {
  // expected-error @+1 {{expects group_offsets of static size E + 1 >= 2, got 'tensor<?xi32>'}}
  %r, %o, %rt, %sr = moe.dispatch %x, %i, %n : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?xi32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x2xi32>
  return
}

// -----

func.func @dispatch_rows_width(%x: tensor<?x64xf32>, %i: tensor<?x2xi32>, %n: tensor<?xi32>) {
  // expected-error @+1 {{expects rows of shape [R, D] = [?, 64], got 'tensor<?x32xf32>'}}
  %r, %o, %rt, %sr = moe.dispatch %x, %i, %n : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?xi32> -> tensor<?x32xf32>, tensor<9xi32>, tensor<?xi32>, tensor<?x2xi32>
  return
}

// -----

func.func @dispatch_row_map(%x: tensor<?x64xf32>, %i: tensor<?x2xi32>, %n: tensor<?xi32>) {
  // expected-error @+1 {{expects row_to_token of shape [R] = [7], got 'tensor<6xi32>'}}
  %r, %o, %rt, %sr = moe.dispatch %x, %i, %n : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?xi32> -> tensor<7x64xf32>, tensor<9xi32>, tensor<6xi32>, tensor<?x2xi32>
  return
}

// -----

func.func @dispatch_slot_map(%x: tensor<?x64xf32>, %i: tensor<?x2xi32>, %n: tensor<?xi32>) {
  // expected-error @+1 {{expects slot_to_row of shape [T, K] = [?, 2], got 'tensor<?x4xi32>'}}
  %r, %o, %rt, %sr = moe.dispatch %x, %i, %n : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?xi32>, tensor<?x4xi32>
  return
}

// -----

func.func @dispatch_counts(%x: tensor<3x64xf32>, %i: tensor<3x2xi32>, %n: tensor<4xi32>) {
  // expected-error @+1 {{expects counts of shape [T] = [3], got 'tensor<4xi32>'}}
  %r, %o, %rt, %sr = moe.dispatch %x, %i, %n : tensor<3x64xf32>, tensor<3x2xi32>, tensor<4xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?xi32>, tensor<3x2xi32>
  return
}

// -----

func.func @dispatch_elt(%x: tensor<?x64xf32>, %i: tensor<?x2xi32>, %n: tensor<?xi32>) {
  // expected-error @+1 {{expects rows of the tokens' element type 'f32', got 'bf16'}}
  %r, %o, %rt, %sr = moe.dispatch %x, %i, %n : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?xi32> -> tensor<?x64xbf16>, tensor<9xi32>, tensor<?xi32>, tensor<?x2xi32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.tile_schedule
//===----------------------------------------------------------------------===//

func.func @tiles_offsets_rank(%o: tensor<3x3xi32>) {
  // expected-error @+1 {{expects group_offsets of rank 1 [G + 1], got 'tensor<3x3xi32>'}}
  %t = moe.tile_schedule %o tile_rows(8) : tensor<3x3xi32> -> tensor<?x3xi32>
  return
}

// -----

func.func @tiles_offsets_dynamic(%o: tensor<?xi32>) {
  // expected-error @+1 {{expects group_offsets of static size G + 1 >= 2, got 'tensor<?xi32>'}}
  %t = moe.tile_schedule %o tile_rows(8) : tensor<?xi32> -> tensor<?x3xi32>
  return
}

// -----

func.func @tiles_offsets_no_group(%o: tensor<1xi32>) {
  // expected-error @+1 {{expects group_offsets of static size G + 1 >= 2, got 'tensor<1xi32>'}}
  %t = moe.tile_schedule %o tile_rows(8) : tensor<1xi32> -> tensor<?x3xi32>
  return
}

// -----

func.func @tiles_shape(%o: tensor<9xi32>) {
  // expected-error @+1 {{expects tiles of shape [tiles, 3] = [?, 3], got 'tensor<?x4xi32>'}}
  %t = moe.tile_schedule %o tile_rows(8) : tensor<9xi32> -> tensor<?x4xi32>
  return
}

// -----

func.func @tiles_rows(%o: tensor<9xi32>) {
  // expected-error @+1 {{attribute 'tile_rows' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %t = moe.tile_schedule %o tile_rows(0) : tensor<9xi32> -> tensor<?x3xi32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.grouped_matmul
//===----------------------------------------------------------------------===//

func.func @gmm_input_rank(%x: tensor<?xf32>, %w: tensor<8x128x64xf32>, %o: tensor<9xi32>) {
  // expected-error @+1 {{expects input of rank 2 [R, K], got 'tensor<?xf32>'}}
  %y = moe.grouped_matmul %x, %w offsets(%o) : (tensor<?xf32>, tensor<8x128x64xf32>, tensor<9xi32>) -> tensor<?x128xf32>
  return
}

// -----

func.func @gmm_k(%x: tensor<?x32xf32>, %w: tensor<8x128x64xf32>, %o: tensor<9xi32>) {
  // expected-error @+1 {{expects weight of shape [G, N, K] = [8, 128, 32], got 'tensor<8x128x64xf32>'}}
  %y = moe.grouped_matmul %x, %w offsets(%o) : (tensor<?x32xf32>, tensor<8x128x64xf32>, tensor<9xi32>) -> tensor<?x128xf32>
  return
}

// -----

func.func @gmm_offsets(%x: tensor<?x64xf32>, %w: tensor<8x128x64xf32>, %o: tensor<8xi32>) {
  // expected-error @+1 {{expects group_offsets of shape [G + 1] = [9], got 'tensor<8xi32>'}}
  %y = moe.grouped_matmul %x, %w offsets(%o) : (tensor<?x64xf32>, tensor<8x128x64xf32>, tensor<8xi32>) -> tensor<?x128xf32>
  return
}

// -----

func.func @gmm_result(%x: tensor<?x64xf32>, %w: tensor<8x128x64xf32>, %o: tensor<9xi32>) {
  // expected-error @+1 {{expects result of shape [R, N] = [?, 128], got 'tensor<?x64xf32>'}}
  %y = moe.grouped_matmul %x, %w offsets(%o) : (tensor<?x64xf32>, tensor<8x128x64xf32>, tensor<9xi32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @gmm_scale(%x: tensor<5x64xf32>, %w: tensor<8x128x64xf32>, %o: tensor<9xi32>, %s: tensor<4xf32>) {
  // expected-error @+1 {{expects row_scale of shape [R] = [5], got 'tensor<4xf32>'}}
  %y = moe.grouped_matmul %x, %w offsets(%o) scale(%s) : (tensor<5x64xf32>, tensor<8x128x64xf32>, tensor<9xi32>, tensor<4xf32>) -> tensor<5x128xf32>
  return
}

// -----

func.func @gmm_swiglu_needs_up(%x: tensor<?x64xf32>, %w: tensor<8x128x64xf32>, %o: tensor<9xi32>) {
  // expected-error @+1 {{epilogue(swiglu) needs an up_weight operand for the up projection}}
  %y = moe.grouped_matmul %x, %w offsets(%o) epilogue(swiglu) : (tensor<?x64xf32>, tensor<8x128x64xf32>, tensor<9xi32>) -> tensor<?x128xf32>
  return
}

// -----

func.func @gmm_up_without_swiglu(%x: tensor<?x64xf32>, %w: tensor<8x128x64xf32>, %o: tensor<9xi32>) {
  // expected-error @+1 {{up_weight is only used by epilogue(swiglu), but the epilogue is none}}
  %y = moe.grouped_matmul %x, %w, %w offsets(%o) : (tensor<?x64xf32>, tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<9xi32>) -> tensor<?x128xf32>
  return
}

// -----

func.func @gmm_up_type(%x: tensor<?x64xf32>, %w: tensor<8x128x64xf32>, %u: tensor<8x128x64xbf16>, %o: tensor<9xi32>) {
  // expected-error @+1 {{expects up_weight of the weight's type 'tensor<8x128x64xf32>', got 'tensor<8x128x64xbf16>'}}
  %y = moe.grouped_matmul %x, %w, %u offsets(%o) epilogue(swiglu) : (tensor<?x64xf32>, tensor<8x128x64xf32>, tensor<8x128x64xbf16>, tensor<9xi32>) -> tensor<?x128xf32>
  return
}

// -----

func.func @gmm_epilogue_name(%x: tensor<?x64xf32>, %w: tensor<8x128x64xf32>, %o: tensor<9xi32>) {
  // expected-error @+1 {{unknown epilogue 'gelu'}}
  %y = moe.grouped_matmul %x, %w offsets(%o) epilogue(gelu) : (tensor<?x64xf32>, tensor<8x128x64xf32>, tensor<9xi32>) -> tensor<?x128xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.combine
//===----------------------------------------------------------------------===//

func.func @combine_slots(%r: tensor<?x64xf32>, %w: tensor<?x2xf32>, %s: tensor<?x3xi32>, %n: tensor<?xi32>) {
  // expected-error @+1 {{expects slot_to_row of shape [T, K] = [?, 2], got 'tensor<?x3xi32>'}}
  %y = moe.combine %r, %w, %s, %n : (tensor<?x64xf32>, tensor<?x2xf32>, tensor<?x3xi32>, tensor<?xi32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @combine_counts(%r: tensor<?x64xf32>, %w: tensor<4x2xf32>, %s: tensor<4x2xi32>, %n: tensor<5xi32>) {
  // expected-error @+1 {{expects counts of shape [T] = [4], got 'tensor<5xi32>'}}
  %y = moe.combine %r, %w, %s, %n : (tensor<?x64xf32>, tensor<4x2xf32>, tensor<4x2xi32>, tensor<5xi32>) -> tensor<4x64xf32>
  return
}

// -----

func.func @combine_result(%r: tensor<?x64xf32>, %w: tensor<?x2xf32>, %s: tensor<?x2xi32>, %n: tensor<?xi32>) {
  // expected-error @+1 {{expects result of shape [T, D] = [?, 64], got 'tensor<?x32xf32>'}}
  %y = moe.combine %r, %w, %s, %n : (tensor<?x64xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x32xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.split_tokens / moe.merge_tokens
//===----------------------------------------------------------------------===//

func.func @split_divisible(%x: tensor<?x64xf32>) {
  // expected-error @+1 {{hidden size 64 is not divisible by heads = 5}}
  %s = moe.split_tokens %x heads(5) : tensor<?x64xf32> -> tensor<?x12xf32>
  return
}

// -----

func.func @split_width(%x: tensor<?x64xf32>) {
  // expected-error @+1 {{expects result of shape [T * heads, D / heads] = [?, 16], got 'tensor<?x32xf32>'}}
  %s = moe.split_tokens %x heads(4) : tensor<?x64xf32> -> tensor<?x32xf32>
  return
}

// -----

func.func @split_tokens_static(%x: tensor<3x64xf32>) {
  // expected-error @+1 {{expects result of shape [T * heads, D / heads] = [12, 16], got 'tensor<8x16xf32>'}}
  %s = moe.split_tokens %x heads(4) : tensor<3x64xf32> -> tensor<8x16xf32>
  return
}

// -----

func.func @split_heads_positive(%x: tensor<?x64xf32>) {
  // expected-error @+1 {{attribute 'heads' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %s = moe.split_tokens %x heads(0) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @split_element_type(%x: tensor<?x64xf32>) {
  // expected-error @+1 {{expects input and result of one element type}}
  %s = moe.split_tokens %x heads(4) : tensor<?x64xf32> -> tensor<?x16xbf16>
  return
}

// -----

func.func @merge_multiple(%x: tensor<10x16xf32>) {
  // expected-error @+1 {{sub-token count 10 is not a multiple of heads = 4}}
  %m = moe.merge_tokens %x heads(4) : tensor<10x16xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @merge_width(%x: tensor<?x16xf32>) {
  // expected-error @+1 {{expects input of shape [T * heads, D / heads] = [?, 8], got 'tensor<?x16xf32>'}}
  %m = moe.merge_tokens %x heads(4) : tensor<?x16xf32> -> tensor<?x32xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.attention / moe.grouped_attention
//===----------------------------------------------------------------------===//

func.func @attention_heads(%q: tensor<?x?x6x64xf32>, %k: tensor<?x?x4x64xf32>) {
  // expected-error @+1 {{query heads H = 6 must be a multiple of the kv-heads KVH = 4}}
  %o = moe.attention %q, %k, %k : (tensor<?x?x6x64xf32>, tensor<?x?x4x64xf32>, tensor<?x?x4x64xf32>) -> tensor<?x?x6x64xf32>
  return
}

// -----

func.func @attention_head_dim(%q: tensor<?x?x8x64xf32>, %k: tensor<?x?x2x32xf32>) {
  // expected-error @+1 {{expects key of shape [B, T, KVH, Dh] = [?, ?, 2, 64], got 'tensor<?x?x2x32xf32>'}}
  %o = moe.attention %q, %k, %k : (tensor<?x?x8x64xf32>, tensor<?x?x2x32xf32>, tensor<?x?x2x32xf32>) -> tensor<?x?x8x64xf32>
  return
}

// -----

func.func @attention_value(%q: tensor<2x?x8x64xf32>, %k: tensor<2x?x2x64xf32>, %v: tensor<3x?x2x64xf32>) {
  // expected-error @+1 {{expects value of shape [B, T, KVH, Dh] = [2, ?, 2, 64], got 'tensor<3x?x2x64xf32>'}}
  %o = moe.attention %q, %k, %v : (tensor<2x?x8x64xf32>, tensor<2x?x2x64xf32>, tensor<3x?x2x64xf32>) -> tensor<2x?x8x64xf32>
  return
}

// -----

func.func @attention_result(%q: tensor<?x?x8x64xf32>, %k: tensor<?x?x2x64xf32>) {
  // expected-error @+1 {{expects result of shape [B, T, H, Dh] = [?, ?, 8, 64], got 'tensor<?x?x2x64xf32>'}}
  %o = moe.attention %q, %k, %k : (tensor<?x?x8x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>) -> tensor<?x?x2x64xf32>
  return
}

// -----

func.func @attention_tokens(%q: tensor<?x1x8x64xf32>, %k: tensor<?x9x2x64xf32>) {
  // Without an offset, queries and keys are the same positions.
  // expected-error @+1 {{expects key of shape [B, T, KVH, Dh] = [?, 1, 2, 64], got 'tensor<?x9x2x64xf32>'}}
  %o = moe.attention %q, %k, %k : (tensor<?x1x8x64xf32>, tensor<?x9x2x64xf32>, tensor<?x9x2x64xf32>) -> tensor<?x1x8x64xf32>
  return
}

// -----

func.func @attention_offset_result(%q: tensor<?x1x8x64xf32>, %k: tensor<?x9x2x64xf32>, %p: index) {
  // With one, the result has the queries' positions, not the keys'.
  // expected-error @+1 {{expects result of shape [B, T, H, Dh] = [?, 1, 8, 64], got 'tensor<?x9x8x64xf32>'}}
  %o = moe.attention %q, %k, %k offset(%p) : (tensor<?x1x8x64xf32>, tensor<?x9x2x64xf32>, tensor<?x9x2x64xf32>, index) -> tensor<?x9x8x64xf32>
  return
}

// -----

func.func @attention_offset_values(%q: tensor<?x1x8x64xf32>, %k: tensor<?x9x2x64xf32>, %v: tensor<?x8x2x64xf32>, %p: index) {
  // expected-error @+1 {{expects value of shape [B, T, KVH, Dh] = [?, 9, 2, 64], got 'tensor<?x8x2x64xf32>'}}
  %o = moe.attention %q, %k, %v offset(%p) : (tensor<?x1x8x64xf32>, tensor<?x9x2x64xf32>, tensor<?x8x2x64xf32>, index) -> tensor<?x1x8x64xf32>
  return
}

// -----

func.func @attention_rank(%q: tensor<?x8x64xf32>, %k: tensor<?x?x2x64xf32>) {
  // expected-error @+1 {{expects query of rank 4 [B, T, H, Dh], got 'tensor<?x8x64xf32>'}}
  %o = moe.attention %q, %k, %k : (tensor<?x8x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>) -> tensor<?x8x64xf32>
  return
}

// -----

func.func @attention_static_heads(%q: tensor<?x?x?x64xf32>, %k: tensor<?x?x2x64xf32>) {
  // expected-error @+1 {{expects static head counts and head size}}
  %o = moe.attention %q, %k, %k : (tensor<?x?x?x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>) -> tensor<?x?x?x64xf32>
  return
}

// -----

func.func @attention_window(%q: tensor<?x?x8x64xf32>, %k: tensor<?x?x2x64xf32>) {
  // expected-error @+1 {{attribute 'window' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %o = moe.attention %q, %k, %k window(0) : (tensor<?x?x8x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>) -> tensor<?x?x8x64xf32>
  return
}

// -----

func.func @grouped_attention_group(%q: tensor<?x?x8x64xf32>, %k: tensor<?x?x2x64xf32>) {
  // expected-error @+1 {{attribute 'group_size' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %o = moe.grouped_attention %q, %k, %k group_size(0) window(4) : (tensor<?x?x8x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>) -> tensor<?x?x8x64xf32>
  return
}

// -----

func.func @grouped_attention_heads(%q: tensor<?x?x8x64xf32>, %k: tensor<?x?x3x64xf32>) {
  // expected-error @+1 {{query heads H = 8 must be a multiple of the kv-heads KVH = 3}}
  %o = moe.grouped_attention %q, %k, %k group_size(16) window(4) : (tensor<?x?x8x64xf32>, tensor<?x?x3x64xf32>, tensor<?x?x3x64xf32>) -> tensor<?x?x8x64xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.moe_block
//===----------------------------------------------------------------------===//

func.func @block_hidden_static(%h: tensor<?x?xf32>, %g: tensor<8x64xf32>, %w1: tensor<8x128x64xf32>, %w2: tensor<8x64x128xf32>) {
  // expected-error @+1 {{expects a static hidden size in 'tensor<?x?xf32>'}}
  %y = moe.moe_block %h gate(%g : tensor<8x64xf32>) experts(%w1, %w1, %w2 : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) policy(#moe.top_k<k = 2>) : tensor<?x?xf32> -> tensor<?x?xf32>
  return
}

// -----

func.func @block_result(%h: tensor<?x64xf32>, %g: tensor<8x64xf32>, %w1: tensor<8x128x64xf32>, %w2: tensor<8x64x128xf32>) {
  // expected-error @+1 {{expects result of shape [T, D] = [?, 64], got 'tensor<?x32xf32>'}}
  %y = moe.moe_block %h gate(%g : tensor<8x64xf32>) experts(%w1, %w1, %w2 : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) policy(#moe.top_k<k = 2>) : tensor<?x64xf32> -> tensor<?x32xf32>
  return
}

// -----

func.func @block_gate_width(%h: tensor<?x64xf32>, %g: tensor<8x32xf32>, %w1: tensor<8x128x64xf32>, %w2: tensor<8x64x128xf32>) {
  // expected-error @+1 {{expects gate of shape [E, Dr] = [8, 64], got 'tensor<8x32xf32>'}}
  %y = moe.moe_block %h gate(%g : tensor<8x32xf32>) experts(%w1, %w1, %w2 : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) policy(#moe.top_k<k = 2>) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @block_dynamic_experts(%h: tensor<?x64xf32>, %g: tensor<?x64xf32>, %w1: tensor<8x128x64xf32>, %w2: tensor<8x64x128xf32>) {
  // expected-error @+1 {{expects a static number of experts E >= 1 in gate 'tensor<?x64xf32>'}}
  %y = moe.moe_block %h gate(%g : tensor<?x64xf32>) experts(%w1, %w1, %w2 : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) policy(#moe.top_k<k = 2>) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @block_w3(%h: tensor<?x64xf32>, %g: tensor<8x64xf32>, %w1: tensor<8x128x64xf32>, %w3: tensor<8x96x64xf32>, %w2: tensor<8x64x128xf32>) {
  // expected-error @+1 {{expects w3 of shape [E, F, Dr] = [8, 128, 64], got 'tensor<8x96x64xf32>'}}
  %y = moe.moe_block %h gate(%g : tensor<8x64xf32>) experts(%w1, %w3, %w2 : tensor<8x128x64xf32>, tensor<8x96x64xf32>, tensor<8x64x128xf32>) policy(#moe.top_k<k = 2>) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @block_w2(%h: tensor<?x64xf32>, %g: tensor<8x64xf32>, %w1: tensor<8x128x64xf32>, %w2: tensor<8x128x64xf32>) {
  // expected-error @+1 {{expects w2 of shape [E, Dr, F] = [8, 64, 128], got 'tensor<8x128x64xf32>'}}
  %y = moe.moe_block %h gate(%g : tensor<8x64xf32>) experts(%w1, %w1, %w2 : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x128x64xf32>) policy(#moe.top_k<k = 2>) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @block_k(%h: tensor<?x64xf32>, %g: tensor<4x64xf32>, %w1: tensor<4x128x64xf32>, %w2: tensor<4x64x128xf32>) {
  // expected-error @+1 {{top_k selects k = 8 experts but the layer has only 4; use k <= 4}}
  %y = moe.moe_block %h gate(%g : tensor<4x64xf32>) experts(%w1, %w1, %w2 : tensor<4x128x64xf32>, tensor<4x128x64xf32>, tensor<4x64x128xf32>) policy(#moe.top_k<k = 8>) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @block_heads_divisible(%h: tensor<?x64xf32>, %g: tensor<8x12xf32>, %w1: tensor<8x32x12xf32>, %w2: tensor<8x12x32xf32>, %pw: tensor<64x64xf32>, %pb: tensor<64xf32>) {
  // expected-error @+1 {{hidden size 64 is not divisible by heads = 5}}
  %y = moe.moe_block %h gate(%g : tensor<8x12xf32>) experts(%w1, %w1, %w2 : tensor<8x32x12xf32>, tensor<8x32x12xf32>, tensor<8x12x32xf32>) policy(#moe.top_k<k = 2>)
      multi_head(5 : %pw, %pb, %pw, %pb : tensor<64x64xf32>, tensor<64xf32>, tensor<64x64xf32>, tensor<64xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @block_heads_gate(%h: tensor<?x64xf32>, %g: tensor<8x64xf32>, %w1: tensor<8x32x64xf32>, %w2: tensor<8x64x32xf32>, %pw: tensor<64x64xf32>, %pb: tensor<64xf32>) {
  // With 4 heads the experts see sub-tokens of width 16.
  // expected-error @+1 {{expects gate of shape [E, Dr] = [8, 16], got 'tensor<8x64xf32>'}}
  %y = moe.moe_block %h gate(%g : tensor<8x64xf32>) experts(%w1, %w1, %w2 : tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) policy(#moe.top_k<k = 2>)
      multi_head(4 : %pw, %pb, %pw, %pb : tensor<64x64xf32>, tensor<64xf32>, tensor<64x64xf32>, tensor<64xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @block_head_bias(%h: tensor<?x64xf32>, %g: tensor<8x16xf32>, %w1: tensor<8x32x16xf32>, %w2: tensor<8x16x32xf32>, %pw: tensor<64x64xf32>, %pb: tensor<16xf32>) {
  // expected-error @+1 {{expects multi_head bias of shape [D] = [64], got 'tensor<16xf32>'}}
  %y = moe.moe_block %h gate(%g : tensor<8x16xf32>) experts(%w1, %w1, %w2 : tensor<8x32x16xf32>, tensor<8x32x16xf32>, tensor<8x16x32xf32>) policy(#moe.top_k<k = 2>)
      multi_head(4 : %pw, %pb, %pw, %pb : tensor<64x64xf32>, tensor<16xf32>, tensor<64x64xf32>, tensor<16xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @block_multi_head_partial(%h: tensor<?x64xf32>, %g: tensor<8x16xf32>, %w1: tensor<8x32x16xf32>, %w2: tensor<8x16x32xf32>, %pw: tensor<64x64xf32>) {
  // expected-error @+1 {{multi_head needs all 4 of its operands, got 1}}
  %y = "moe.moe_block"(%h, %g, %w1, %w1, %w2, %pw) <{heads = 4 : i64, policy = #moe.top_k<k = 2>,
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0>}>
      : (tensor<?x64xf32>, tensor<8x16xf32>, tensor<8x32x16xf32>, tensor<8x32x16xf32>, tensor<8x16x32xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @block_heads_without_projections(%h: tensor<?x64xf32>, %g: tensor<8x64xf32>, %w1: tensor<8x32x64xf32>, %w2: tensor<8x64x32xf32>) {
  // expected-error @+1 {{multi_head needs both heads and its four projection operands}}
  %y = "moe.moe_block"(%h, %g, %w1, %w1, %w2) <{heads = 4 : i64, policy = #moe.top_k<k = 2>,
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0>}>
      : (tensor<?x64xf32>, tensor<8x64xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @block_shared_gate(%h: tensor<?x64xf32>, %g: tensor<4x64xf32>, %w1: tensor<4x32x64xf32>, %w2: tensor<4x64x32xf32>,
                             %s1: tensor<96x64xf32>, %s2: tensor<64x96xf32>, %sg: tensor<64xf32>) {
  // expected-error @+1 {{expects shared_expert gate of shape [1, D] = [1, 64], got 'tensor<64xf32>'}}
  %y = moe.moe_block %h gate(%g : tensor<4x64xf32>) experts(%w1, %w1, %w2 : tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) policy(#moe.top_k<k = 2>)
      shared_expert(%s1, %s1, %s2, %sg : tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x96xf32>, tensor<64xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @block_shared_w2(%h: tensor<?x64xf32>, %g: tensor<4x64xf32>, %w1: tensor<4x32x64xf32>, %w2: tensor<4x64x32xf32>,
                           %s1: tensor<96x64xf32>, %s2: tensor<64x32xf32>, %sg: tensor<1x64xf32>) {
  // expected-error @+1 {{expects shared_expert w2 of shape [D, F] = [64, 96], got 'tensor<64x32xf32>'}}
  %y = moe.moe_block %h gate(%g : tensor<4x64xf32>) experts(%w1, %w1, %w2 : tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) policy(#moe.top_k<k = 2>)
      shared_expert(%s1, %s1, %s2, %sg : tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x32xf32>, tensor<1x64xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @block_shallow_without_deep(%h: tensor<?x64xf32>, %g: tensor<4x64xf32>, %w1: tensor<4x32x64xf32>, %w2: tensor<4x64x32xf32>,
                                      %s1: tensor<8x64xf32>, %s2: tensor<64x8xf32>) {
  // expected-error @+1 {{dual-scale shared experts need both shallow_expert and deep_expert}}
  %y = moe.moe_block %h gate(%g : tensor<4x64xf32>) experts(%w1, %w1, %w2 : tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) policy(#moe.top_k<k = 2>)
      shallow_expert(%s1, %s1, %s2 : tensor<8x64xf32>, tensor<8x64xf32>, tensor<64x8xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @block_deep_shape(%h: tensor<?x64xf32>, %g: tensor<4x64xf32>, %w1: tensor<4x32x64xf32>, %w2: tensor<4x64x32xf32>,
                            %s1: tensor<8x64xf32>, %s2: tensor<64x8xf32>, %d1: tensor<128x32xf32>, %d2: tensor<64x128xf32>) {
  // expected-error @+1 {{expects deep_expert w1 of shape [F, D] = [128, 64], got 'tensor<128x32xf32>'}}
  %y = moe.moe_block %h gate(%g : tensor<4x64xf32>) experts(%w1, %w1, %w2 : tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) policy(#moe.top_k<k = 2>)
      shallow_expert(%s1, %s1, %s2 : tensor<8x64xf32>, tensor<8x64xf32>, tensor<64x8xf32>)
      deep_expert(%d1, %d1, %d2 : tensor<128x32xf32>, tensor<128x32xf32>, tensor<64x128xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @block_adaptive_needs_dsse(%h: tensor<?x64xf32>, %g: tensor<4x64xf32>, %w1: tensor<4x32x64xf32>, %w2: tensor<4x64x32xf32>,
                                     %cw: tensor<1x64xf32>, %cb: tensor<1xf32>) {
  // expected-error @+1 {{adaptive_routing needs the dual-scale shared experts (shallow_expert and deep_expert)}}
  %y = moe.moe_block %h gate(%g : tensor<4x64xf32>) experts(%w1, %w1, %w2 : tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) policy(#moe.top_k<k = 2>)
      adaptive_routing(%cw, %cb : tensor<1x64xf32>, tensor<1xf32>) level_threshold(0.5) simple_max_experts(1) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @block_level_threshold(%h: tensor<?x64xf32>, %g: tensor<4x64xf32>, %w1: tensor<4x32x64xf32>, %w2: tensor<4x64x32xf32>,
                                 %s1: tensor<8x64xf32>, %s2: tensor<64x8xf32>, %cw: tensor<1x64xf32>, %cb: tensor<1xf32>) {
  // expected-error @+1 {{level_threshold must be in [0, 1], got 1.5}}
  %y = moe.moe_block %h gate(%g : tensor<4x64xf32>) experts(%w1, %w1, %w2 : tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) policy(#moe.top_k<k = 2>)
      shallow_expert(%s1, %s1, %s2 : tensor<8x64xf32>, tensor<8x64xf32>, tensor<64x8xf32>)
      deep_expert(%s1, %s1, %s2 : tensor<8x64xf32>, tensor<8x64xf32>, tensor<64x8xf32>)
      adaptive_routing(%cw, %cb : tensor<1x64xf32>, tensor<1xf32>) level_threshold(1.5) simple_max_experts(1) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @block_complexity_gate(%h: tensor<?x64xf32>, %g: tensor<4x64xf32>, %w1: tensor<4x32x64xf32>, %w2: tensor<4x64x32xf32>,
                                 %s1: tensor<8x64xf32>, %s2: tensor<64x8xf32>, %cw: tensor<64xf32>, %cb: tensor<1xf32>) {
  // expected-error @+1 {{expects complexity gate weight of shape [1, D] = [1, 64], got 'tensor<64xf32>'}}
  %y = moe.moe_block %h gate(%g : tensor<4x64xf32>) experts(%w1, %w1, %w2 : tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) policy(#moe.top_k<k = 2>)
      shallow_expert(%s1, %s1, %s2 : tensor<8x64xf32>, tensor<8x64xf32>, tensor<64x8xf32>)
      deep_expert(%s1, %s1, %s2 : tensor<8x64xf32>, tensor<8x64xf32>, tensor<64x8xf32>)
      adaptive_routing(%cw, %cb : tensor<64xf32>, tensor<1xf32>) level_threshold(0.5) simple_max_experts(1) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @block_adaptive_attrs(%h: tensor<?x64xf32>, %g: tensor<4x64xf32>, %w1: tensor<4x32x64xf32>, %w2: tensor<4x64x32xf32>,
                                %s1: tensor<8x64xf32>, %s2: tensor<64x8xf32>, %cw: tensor<1x64xf32>, %cb: tensor<1xf32>) {
  // expected-error @+1 {{adaptive_routing needs its gate operands, level_threshold and simple_max_experts together}}
  %y = "moe.moe_block"(%h, %g, %w1, %w1, %w2, %s1, %s1, %s2, %s1, %s1, %s2, %cw, %cb) <{level_threshold = 0.5 : f64, policy = #moe.top_k<k = 2>,
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1>}>
      : (tensor<?x64xf32>, tensor<4x64xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>, tensor<8x64xf32>, tensor<8x64xf32>, tensor<64x8xf32>, tensor<8x64xf32>, tensor<8x64xf32>, tensor<64x8xf32>, tensor<1x64xf32>, tensor<1xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @split_dynamic_width(%x: tensor<?x?xf32>) {
  // expected-error @+1 {{expects a static hidden size}}
  %s = moe.split_tokens %x heads(4) : tensor<?x?xf32> -> tensor<?x?xf32>
  return
}

// -----

func.func @combine_rows_rank(%r: tensor<?xf32>, %w: tensor<?x2xf32>, %s: tensor<?x2xi32>, %n: tensor<?xi32>) {
  // expected-error @+1 {{expects rows of rank 2 [R, D], got 'tensor<?xf32>'}}
  %y = moe.combine %r, %w, %s, %n : (tensor<?xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @gmm_weight_rank(%x: tensor<?x64xf32>, %w: tensor<128x64xf32>, %o: tensor<9xi32>) {
  // expected-error @+1 {{expects weight of rank 3 [G, N, K], got 'tensor<128x64xf32>'}}
  %y = moe.grouped_matmul %x, %w offsets(%o) : (tensor<?x64xf32>, tensor<128x64xf32>, tensor<9xi32>) -> tensor<?x128xf32>
  return
}

// -----

func.func @block_w1_rank(%h: tensor<?x64xf32>, %g: tensor<8x64xf32>, %w1: tensor<128x64xf32>, %w2: tensor<8x64x128xf32>) {
  // expected-error @+1 {{expects w1 of rank 3 [E, F, Dr], got 'tensor<128x64xf32>'}}
  %y = moe.moe_block %h gate(%g : tensor<8x64xf32>) experts(%w1, %w1, %w2 : tensor<128x64xf32>, tensor<128x64xf32>, tensor<8x64x128xf32>) policy(#moe.top_k<k = 2>) : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @block_shared_partial(%h: tensor<?x64xf32>, %g: tensor<4x64xf32>, %w1: tensor<4x32x64xf32>, %w2: tensor<4x64x32xf32>, %s1: tensor<96x64xf32>) {
  // expected-error @+1 {{shared_expert needs all 4 of its operands, got 2}}
  %y = "moe.moe_block"(%h, %g, %w1, %w1, %w2, %s1, %s1) <{policy = #moe.top_k<k = 2>,
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0>}>
      : (tensor<?x64xf32>, tensor<4x64xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>, tensor<96x64xf32>, tensor<96x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @combine_operand_count(%r: tensor<?x64xf32>, %s: tensor<?x2xi32>) {
  // expected-error @+1 {{expected rows, [weights,] slot_to_row and counts, got 2 operands}}
  %y = moe.combine %r, %s : (tensor<?x64xf32>, tensor<?x2xi32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @combine_unweighted_counts(%r: tensor<?x64xf32>, %s: tensor<4x2xi32>, %n: tensor<3xi32>) {
  // expected-error @+1 {{expects counts of shape [T] = [4], got 'tensor<3xi32>'}}
  %y = moe.combine %r, %s, %n : (tensor<?x64xf32>, tensor<4x2xi32>, tensor<3xi32>) -> tensor<4x64xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.row_weights
//===----------------------------------------------------------------------===//

func.func @row_weights_slots(%w: tensor<?x2xf32>, %s: tensor<?x3xi32>, %r: tensor<?xi32>) {
  // expected-error @+1 {{expects slot_to_row of shape [T, K] = [?, 2], got 'tensor<?x3xi32>'}}
  %y = moe.row_weights %w, %s, %r : (tensor<?x2xf32>, tensor<?x3xi32>, tensor<?xi32>) -> tensor<?xf32>
  return
}

// -----

func.func @row_weights_result(%w: tensor<?x2xf32>, %s: tensor<?x2xi32>, %r: tensor<7xi32>) {
  // expected-error @+1 {{expects result of shape [R] = [7], got 'tensor<6xf32>'}}
  %y = moe.row_weights %w, %s, %r : (tensor<?x2xf32>, tensor<?x2xi32>, tensor<7xi32>) -> tensor<6xf32>
  return
}

// -----

func.func @moe_block_stats_count(%h: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
                                 %w1: tensor<8x128x64xf32>, %w3: tensor<8x128x64xf32>,
                                 %w2: tensor<8x64x128xf32>) {
  // expected-error @+1 {{expects no stats results or three (experts per token, rows per expert, ADR level), got 1}}
  %y, %n = moe.moe_block %h gate(%gate : tensor<8x64xf32>)
      experts(%w1, %w3, %w2 : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>)
      policy(#moe.top_k<k = 2>) : tensor<?x64xf32> -> tensor<?x64xf32>, tensor<?xi32>
  return
}

// -----

func.func @moe_block_stats_experts(%h: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
                                   %w1: tensor<8x128x64xf32>, %w3: tensor<8x128x64xf32>,
                                   %w2: tensor<8x64x128xf32>) {
  // expected-error @+1 {{expects rows-per-expert stats of shape [E] = [8], got 'tensor<4xi32>'}}
  %y, %n, %l, %c = moe.moe_block %h gate(%gate : tensor<8x64xf32>)
      experts(%w1, %w3, %w2 : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>)
      policy(#moe.top_k<k = 2>) : tensor<?x64xf32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<4xi32>, tensor<?xi32>
  return
}

// -----

func.func @moe_block_stats_subtokens(%h: tensor<5x64xf32>, %gate: tensor<8x16xf32>,
                                     %w1: tensor<8x32x16xf32>, %w3: tensor<8x32x16xf32>,
                                     %w2: tensor<8x16x32xf32>, %hw: tensor<64x64xf32>,
                                     %hb: tensor<64xf32>) {
  // expected-error @+1 {{expects experts-per-token stats of shape [T * heads] = [20], got 'tensor<5xi32>'}}
  %y, %n, %l, %c = moe.moe_block %h gate(%gate : tensor<8x16xf32>)
      experts(%w1, %w3, %w2 : tensor<8x32x16xf32>, tensor<8x32x16xf32>, tensor<8x16x32xf32>)
      policy(#moe.top_k<k = 2>)
      multi_head(4 : %hw, %hb, %hw, %hb : tensor<64x64xf32>, tensor<64xf32>, tensor<64x64xf32>, tensor<64xf32>)
      : tensor<5x64xf32> -> tensor<5x64xf32>, tensor<5xi32>, tensor<8xi32>, tensor<5xi32>
  return
}

// -----

// expected-error @+1 {{an outer cpu_matmul_kernel needs micro_cols (12) to be a multiple of vector_width (8)}}
func.func private @outer_columns() attributes {moe.kernel = #moe.cpu_matmul_kernel<outer, tile_rows = 96, tile_cols = 48, tile_k = 256, micro_rows = 6, micro_cols = 12, vector_width = 8>}

// -----

// expected-error @+1 {{an outer cpu_matmul_kernel needs tile_cols (40) to be a multiple of micro_cols (16)}}
func.func private @outer_tile() attributes {moe.kernel = #moe.cpu_matmul_kernel<outer, tile_rows = 96, tile_cols = 40, tile_k = 256, micro_rows = 6, micro_cols = 16, vector_width = 8>}

// -----

// expected-error @+1 {{an outer cpu_matmul_kernel needs a power-of-two vector_width, got 6}}
func.func private @outer_width() attributes {moe.kernel = #moe.cpu_matmul_kernel<outer, tile_rows = 96, tile_cols = 48, tile_k = 256, micro_rows = 6, micro_cols = 12, vector_width = 6>}

// -----

// expected-error @+1 {{bf16_dot applies to dot cpu_matmul_kernels only}}
func.func private @outer_bf16_dot() attributes {moe.kernel = #moe.cpu_matmul_kernel<outer, tile_rows = 96, tile_cols = 64, tile_k = 256, micro_rows = 6, micro_cols = 16, vector_width = 8, bf16_dot = true>}

// -----

// expected-error @+1 {{cpu_matmul_kernel needs tile_k >= 1, got 0}}
func.func private @zero_k() attributes {moe.kernel = #moe.cpu_matmul_kernel<dot, tile_rows = 64, tile_cols = 64, tile_k = 0, micro_rows = 4, micro_cols = 4, vector_width = 16>}

// -----

// expected-error @+1 {{attention_kernel needs heads_per_step >= 1, got 0}}
func.func private @no_heads() attributes {moe.kernel = #moe.attention_kernel<heads_per_step = 0, query_block = 8, key_block = 64, micro_rows = 4, vector_width = 8>}

// -----

// expected-error @+1 {{attention_kernel needs its query rows (heads_per_step x query_block = 12) to be a multiple of vector_width (8)}}
func.func private @ragged_rows() attributes {moe.kernel = #moe.attention_kernel<heads_per_step = 2, query_block = 6, key_block = 64, micro_rows = 4, vector_width = 8>}

// -----

// expected-error @+1 {{attention_kernel needs key_block (60) to be a multiple of micro_rows (8)}}
func.func private @ragged_keys() attributes {moe.kernel = #moe.attention_kernel<heads_per_step = 2, query_block = 8, key_block = 60, micro_rows = 8, vector_width = 16>}
