// RUN: moec-opt %s | moec-opt | FileCheck %s
// RUN: moec-opt %s -mlir-print-op-generic | moec-opt | FileCheck %s

// CHECK-LABEL: func @router_top_k
func.func @router_top_k(%logits: tensor<?x8xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>) {
  // CHECK: moe.router %{{.*}} policy(#moe.top_k<k = 2>) : tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>
  %ids, %w, %n = moe.router %logits policy(#moe.top_k<k = 2>)
      : tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>
  return %ids, %w, %n : tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>
}

// CHECK-LABEL: func @router_top_p
func.func @router_top_p(%logits: tensor<?x8xbf16>, %caps: tensor<?xi32>)
    -> (tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>) {
  // CHECK: moe.router %{{.*}} policy(#moe.top_p<threshold = 0.4, max_experts = 4>) caps(%{{.*}} : tensor<?xi32>) : tensor<?x8xbf16>
  %ids, %w, %n = moe.router %logits
      policy(#moe.top_p<threshold = 0.4, max_experts = 4>) caps(%caps : tensor<?xi32>)
      : tensor<?x8xbf16> -> tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>
  return %ids, %w, %n : tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>
}

// Without a cap, top_p may select every expert.
// CHECK-LABEL: func @router_top_p_uncapped
func.func @router_top_p_uncapped(%logits: tensor<3x8xf32>)
    -> (tensor<3x8xi32>, tensor<3x8xf32>, tensor<3xi32>) {
  // CHECK: policy(#moe.top_p<threshold = 0.9, normalize = true>)
  %ids, %w, %n = moe.router %logits
      policy(#moe.top_p<threshold = 0.9, normalize = true>)
      : tensor<3x8xf32> -> tensor<3x8xi32>, tensor<3x8xf32>, tensor<3xi32>
  return %ids, %w, %n : tensor<3x8xi32>, tensor<3x8xf32>, tensor<3xi32>
}

// Every expert above the threshold, at least one: dynamic K.
// CHECK-LABEL: func @router_threshold
func.func @router_threshold(%logits: tensor<?x8xf32>, %caps: tensor<?xi32>)
    -> (tensor<?x8xi32>, tensor<?x8xf32>, tensor<?xi32>,
        tensor<?x3xi32>, tensor<?x3xf32>, tensor<?xi32>) {
  // The defaults (no cap, raw weights) are not printed.
  // CHECK: moe.router %{{.*}} policy(#moe.threshold<threshold = 0.2>) : tensor<?x8xf32> -> tensor<?x8xi32>, tensor<?x8xf32>, tensor<?xi32>
  %i0, %w0, %n0 = moe.router %logits policy(#moe.threshold<threshold = 0.2, normalize = false>)
      : tensor<?x8xf32> -> tensor<?x8xi32>, tensor<?x8xf32>, tensor<?xi32>
  // CHECK: moe.router %{{.*}} policy(#moe.threshold<threshold = 0.0, max_experts = 3, normalize = true>) caps(%{{.*}} : tensor<?xi32>) : tensor<?x8xf32> -> tensor<?x3xi32>, tensor<?x3xf32>, tensor<?xi32>
  %i1, %w1, %n1 = moe.router %logits
      policy(#moe.threshold<threshold = 0.0, max_experts = 3, normalize = true>) caps(%caps : tensor<?xi32>)
      : tensor<?x8xf32> -> tensor<?x3xi32>, tensor<?x3xf32>, tensor<?xi32>
  return %i0, %w0, %n0, %i1, %w1, %n1
      : tensor<?x8xi32>, tensor<?x8xf32>, tensor<?xi32>, tensor<?x3xi32>, tensor<?x3xf32>, tensor<?xi32>
}

// CHECK-LABEL: func @dispatch_combine
func.func @dispatch_combine(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>,
                            %counts: tensor<?xi32>, %w: tensor<?x2xf32>)
    -> tensor<?x64xf32> {
  // CHECK: moe.dispatch %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?xi32> -> tensor<?x64xf32>, tensor<9xi32>, tensor<?xi32>, tensor<?x2xi32>
  %rows, %offsets, %row_to_token, %slot_to_row = moe.dispatch %x, %ids, %counts
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?xi32>
      -> tensor<?x64xf32>, tensor<9xi32>, tensor<?xi32>, tensor<?x2xi32>
  // CHECK: moe.combine %{{.*}} : (tensor<?x64xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x64xf32>
  %y = moe.combine %rows, %w, %slot_to_row, %counts
      : (tensor<?x64xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>)
      -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Routing weights moved to the rows: a gather per row, then an unweighted
// combine.
// CHECK-LABEL: func @row_weights_unweighted_combine
func.func @row_weights_unweighted_combine(%rows: tensor<?x64xf32>, %w: tensor<?x2xf32>,
                                          %s2r: tensor<?x2xi32>, %r2t: tensor<?xi32>,
                                          %counts: tensor<?xi32>) -> (tensor<?xf32>, tensor<?x64xf32>) {
  // CHECK: moe.row_weights %{{.*}}, %{{.*}}, %{{.*}} : (tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?xf32>
  %rw = moe.row_weights %w, %s2r, %r2t
      : (tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?xf32>
  // CHECK: moe.combine %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}} : (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x64xf32>
  %y = moe.combine %rows, %s2r, %counts
      : (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x64xf32>
  return %rw, %y : tensor<?xf32>, tensor<?x64xf32>
}

// CHECK-LABEL: func @tile_schedule
func.func @tile_schedule(%offsets: tensor<9xi32>) -> tensor<?x3xi32> {
  // CHECK: moe.tile_schedule %{{.*}} tile_rows(64) : tensor<9xi32> -> tensor<?x3xi32>
  %tiles = moe.tile_schedule %offsets tile_rows(64) : tensor<9xi32> -> tensor<?x3xi32>
  return %tiles : tensor<?x3xi32>
}

// CHECK-LABEL: func @grouped_matmul
func.func @grouped_matmul(%x: tensor<?x64xbf16>, %w1: tensor<8x128x64xbf16>,
                          %w3: tensor<8x128x64xbf16>, %w2: tensor<8x64x128xbf16>,
                          %offsets: tensor<9xi32>, %scale: tensor<?xf32>)
    -> tensor<?x64xbf16> {
  // CHECK: moe.grouped_matmul %{{.*}}, %{{.*}}, %{{.*}} offsets(%{{.*}}) epilogue(swiglu) :
  %h = moe.grouped_matmul %x, %w1, %w3 offsets(%offsets) epilogue(swiglu)
      : (tensor<?x64xbf16>, tensor<8x128x64xbf16>, tensor<8x128x64xbf16>, tensor<9xi32>)
      -> tensor<?x128xbf16>
  // CHECK: moe.grouped_matmul %{{.*}}, %{{.*}} offsets(%{{.*}}) scale(%{{.*}}) :
  // CHECK-NOT: epilogue
  %y = moe.grouped_matmul %h, %w2 offsets(%offsets) scale(%scale)
      : (tensor<?x128xbf16>, tensor<8x64x128xbf16>, tensor<9xi32>, tensor<?xf32>)
      -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// CHECK-LABEL: func @split_merge
func.func @split_merge(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // CHECK: moe.split_tokens %{{.*}} heads(4) : tensor<?x64xf32> -> tensor<?x16xf32>
  %s = moe.split_tokens %x heads(4) : tensor<?x64xf32> -> tensor<?x16xf32>
  // CHECK: moe.merge_tokens %{{.*}} heads(4) : tensor<?x16xf32> -> tensor<?x64xf32>
  %m = moe.merge_tokens %s heads(4) : tensor<?x16xf32> -> tensor<?x64xf32>
  return %m : tensor<?x64xf32>
}

// A decode step's attention: one query per sequence at position %p against
// the cached keys, the query count independent of the keys'.
// CHECK-LABEL: func @attention_offset
func.func @attention_offset(%q: tensor<?x1x8x64xf32>, %k: tensor<?x?x2x64xf32>,
                            %p: index) -> tensor<?x1x8x64xf32> {
  // CHECK: moe.attention %{{.*}}, %{{.*}}, %{{.*}} offset(%{{.*}}) window(16) :
  // CHECK-SAME: index) -> tensor<?x1x8x64xf32>
  %o = moe.attention %q, %k, %k offset(%p) window(16)
      : (tensor<?x1x8x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>,
         index) -> tensor<?x1x8x64xf32>
  return %o : tensor<?x1x8x64xf32>
}

// CHECK-LABEL: func @attention
func.func @attention(%q: tensor<?x?x8x64xf32>, %k: tensor<?x?x2x64xf32>,
                     %v: tensor<?x?x2x64xf32>) -> tensor<?x?x8x64xf32> {
  // CHECK: moe.attention %{{.*}}, %{{.*}}, %{{.*}} :
  %full = moe.attention %q, %k, %v
      : (tensor<?x?x8x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>)
      -> tensor<?x?x8x64xf32>
  // CHECK: moe.attention %{{.*}}, %{{.*}}, %{{.*}} window(4096) :
  %sliding = moe.attention %q, %k, %v window(4096)
      : (tensor<?x?x8x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>)
      -> tensor<?x?x8x64xf32>
  // CHECK: moe.grouped_attention %{{.*}}, %{{.*}}, %{{.*}} group_size(128) window(64) :
  %grouped = moe.grouped_attention %q, %k, %v group_size(128) window(64)
      : (tensor<?x?x8x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>)
      -> tensor<?x?x8x64xf32>
  return %grouped : tensor<?x?x8x64xf32>
}

// CHECK-LABEL: func @moe_block_mixtral
func.func @moe_block_mixtral(%h: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
                             %w1: tensor<8x128x64xf32>, %w3: tensor<8x128x64xf32>,
                             %w2: tensor<8x64x128xf32>) -> tensor<?x64xf32> {
  // CHECK: moe.moe_block %{{.*}} gate(%{{.*}} : tensor<8x64xf32>) experts(%{{.*}}, %{{.*}}, %{{.*}} : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) policy(#moe.top_k<k = 2>) : tensor<?x64xf32> -> tensor<?x64xf32>
  %y = moe.moe_block %h gate(%gate : tensor<8x64xf32>)
      experts(%w1, %w3, %w2 : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>)
      policy(#moe.top_k<k = 2>) : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// CHECK-LABEL: func @moe_block_qwen
func.func @moe_block_qwen(%h: tensor<?x64xf32>, %gate: tensor<4x64xf32>,
                          %w1: tensor<4x32x64xf32>, %w3: tensor<4x32x64xf32>,
                          %w2: tensor<4x64x32xf32>, %s1: tensor<96x64xf32>,
                          %s3: tensor<96x64xf32>, %s2: tensor<64x96xf32>,
                          %sg: tensor<1x64xf32>) -> tensor<?x64xf32> {
  // CHECK: shared_expert(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x96xf32>, tensor<1x64xf32>)
  %y = moe.moe_block %h gate(%gate : tensor<4x64xf32>)
      experts(%w1, %w3, %w2 : tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>)
      policy(#moe.top_k<k = 2, normalize = false>)
      shared_expert(%s1, %s3, %s2, %sg : tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x96xf32>, tensor<1x64xf32>)
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Every seed feature at once: MH-MoE, dual-scale shared experts, ADR, top_p.
// CHECK-LABEL: func @moe_block_all_features
func.func @moe_block_all_features(
    %h: tensor<?x64xf32>, %gate: tensor<8x16xf32>,
    %w1: tensor<8x32x16xf32>, %w3: tensor<8x32x16xf32>, %w2: tensor<8x16x32xf32>,
    %hw: tensor<64x64xf32>, %hb: tensor<64xf32>, %mw: tensor<64x64xf32>, %mb: tensor<64xf32>,
    %sh1: tensor<8x64xf32>, %sh3: tensor<8x64xf32>, %sh2: tensor<64x8xf32>,
    %dp1: tensor<128x64xf32>, %dp3: tensor<128x64xf32>, %dp2: tensor<64x128xf32>,
    %cw: tensor<1x64xf32>, %cb: tensor<1xf32>) -> tensor<?x64xf32> {
  // CHECK: policy(#moe.top_p<threshold = 0.5, max_experts = 3>)
  // CHECK-SAME: multi_head(4 : %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<64x64xf32>, tensor<64xf32>, tensor<64x64xf32>, tensor<64xf32>)
  // CHECK-SAME: shallow_expert(
  // CHECK-SAME: deep_expert(
  // CHECK-SAME: adaptive_routing(%{{.*}}, %{{.*}} : tensor<1x64xf32>, tensor<1xf32>) level_threshold(5.000000e-01) simple_max_experts(1)
  %y = moe.moe_block %h gate(%gate : tensor<8x16xf32>)
      experts(%w1, %w3, %w2 : tensor<8x32x16xf32>, tensor<8x32x16xf32>, tensor<8x16x32xf32>)
      policy(#moe.top_p<threshold = 0.5, max_experts = 3>)
      multi_head(4 : %hw, %hb, %mw, %mb : tensor<64x64xf32>, tensor<64xf32>, tensor<64x64xf32>, tensor<64xf32>)
      shallow_expert(%sh1, %sh3, %sh2 : tensor<8x64xf32>, tensor<8x64xf32>, tensor<64x8xf32>)
      deep_expert(%dp1, %dp3, %dp2 : tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>)
      adaptive_routing(%cw, %cb : tensor<1x64xf32>, tensor<1xf32>) level_threshold(0.5) simple_max_experts(1)
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Expert schedules are attributes a model description carries.
// CHECK-LABEL: func @schedules
// CHECK-SAME: moe.a = #moe.expert_schedule<descending, min_experts = 2, max_experts = 8>
// CHECK-SAME: moe.b = #moe.expert_schedule<wave, min_experts = 2, max_experts = 8, period = 4>
// CHECK-SAME: moe.c = #moe.expert_schedule<hourglass, min_experts = 1, max_experts = 1>
func.func @schedules() attributes {
    moe.a = #moe.expert_schedule<descending, min_experts = 2, max_experts = 8>,
    moe.b = #moe.expert_schedule<wave, min_experts = 2, max_experts = 8, period = 4>,
    moe.c = #moe.expert_schedule<hourglass, min_experts = 1, max_experts = 1>} {
  return
}

// Weights come from the runtime's table, as tensors or (after
// convert-moe-to-linalg) as buffers.
// CHECK-LABEL: func @weights
func.func @weights(%table: !llvm.ptr, %slot: index)
    -> (tensor<8x64xbf16>, memref<4x16x64xf32>) {
  // CHECK: moe.weight %{{.*}}[%{{.*}}] "block_sparse_moe.gate.weight" : tensor<8x64xbf16>
  %g = moe.weight %table[%slot] "block_sparse_moe.gate.weight" : tensor<8x64xbf16>
  // CHECK: moe.weight %{{.*}}[%{{.*}}] "experts.{e}.w1.weight" : memref<4x16x64xf32>
  %w = moe.weight %table[%slot] "experts.{e}.w1.weight" : memref<4x16x64xf32>
  return %g, %w : tensor<8x64xbf16>, memref<4x16x64xf32>
}

// Kernel shapes (moe-select-cpu-kernels) round-trip; bf16_dot = false is
// the default and not printed.
// CHECK-LABEL: func @kernel_shapes
// CHECK: moe.grouped_matmul {{.*}} {moe.kernel = #moe.cpu_matmul_kernel<outer, tile_rows = 96, tile_cols = 64, tile_k = 256, micro_rows = 6, micro_cols = 16, vector_width = 8>}
// CHECK: moe.grouped_matmul {{.*}} {moe.kernel = #moe.cpu_matmul_kernel<dot, tile_rows = 64, tile_cols = 64, tile_k = 1024, micro_rows = 4, micro_cols = 4, vector_width = 16, bf16_dot = true>}
// CHECK: moe.attention {{.*}} {moe.kernel = #moe.attention_kernel<heads_per_step = 2, query_block = 4, key_block = 64, micro_rows = 4, vector_width = 8>}
func.func @kernel_shapes(%x: tensor<?x64xf32>, %w: tensor<8x32x64xf32>, %off: tensor<9xi32>,
                         %q: tensor<?x?x4x8xf32>, %k: tensor<?x?x2x8xf32>)
    -> (tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x?x4x8xf32>) {
  %a = moe.grouped_matmul %x, %w offsets(%off)
      {moe.kernel = #moe.cpu_matmul_kernel<outer, tile_rows = 96, tile_cols = 64, tile_k = 256, micro_rows = 6, micro_cols = 16, vector_width = 8, bf16_dot = false>}
      : (tensor<?x64xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<?x32xf32>
  %b = moe.grouped_matmul %x, %w offsets(%off)
      {moe.kernel = #moe.cpu_matmul_kernel<dot, tile_rows = 64, tile_cols = 64, tile_k = 1024, micro_rows = 4, micro_cols = 4, vector_width = 16, bf16_dot = true>}
      : (tensor<?x64xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<?x32xf32>
  %o = moe.attention %q, %k, %k {moe.kernel = #moe.attention_kernel<heads_per_step = 2, query_block = 4, key_block = 64, micro_rows = 4, vector_width = 8>}
      : (tensor<?x?x4x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>) -> tensor<?x?x4x8xf32>
  return %a, %b, %o : tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x?x4x8xf32>
}
