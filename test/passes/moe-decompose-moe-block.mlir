// RUN: moec-opt %s -moe-decompose-moe-block -cse | FileCheck %s

// The routed path: gate logits as a one-group matmul, router, dispatch, the
// SwiGLU and down grouped matmuls, combine.
// CHECK-LABEL: func @mixtral
// CHECK-SAME: (%[[H:.*]]: tensor<?x64xf32>, %[[G:.*]]: tensor<8x64xf32>, %[[W1:.*]]: tensor<8x128x64xf32>, %[[W3:.*]]: tensor<8x128x64xf32>, %[[W2:.*]]: tensor<8x64x128xf32>)
// CHECK-DAG: %[[G1:.*]] = tensor.expand_shape %[[G]] {{\[}}[0, 1], [2]] output_shape [1, 8, 64]
// CHECK-DAG: %[[N:.*]] = arith.index_cast %{{.*}} : index to i32
// The one group's offsets [0, N], as a generic (no host stores on a GPU).
// CHECK: %[[ALL:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<2xi32>)
// CHECK: arith.select %{{.*}}, %c0_i32{{.*}}, %[[N]] : i32
// The router's logits are marked: backends keep their ranking exact (f32).
// CHECK: %[[LOGITS:.*]] = moe.grouped_matmul %[[H]], %[[G1]] offsets(%[[ALL]]) {moe.routing_logits} : {{.*}} -> tensor<?x8xf32>
// CHECK: %[[IDS:.*]], %[[W:.*]], %[[CNT:.*]] = moe.router %[[LOGITS]] policy(#moe.top_k<k = 2>) : tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>
// CHECK: %[[ROWS:.*]], %[[OFF:.*]], %{{.*}}, %[[S2R:.*]] = moe.dispatch %[[H]], %[[IDS]], %[[CNT]]
// CHECK: %[[A:.*]] = moe.grouped_matmul %[[ROWS]], %[[W1]], %[[W3]] offsets(%[[OFF]]) epilogue(swiglu)
// CHECK: %[[Y:.*]] = moe.grouped_matmul %[[A]], %[[W2]] offsets(%[[OFF]]) :
// CHECK: %[[OUT:.*]] = moe.combine %[[Y]], %[[W]], %[[S2R]], %[[CNT]]
// CHECK: return %[[OUT]]
// CHECK-NOT: moe.moe_block
func.func @mixtral(%h: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
                   %w1: tensor<8x128x64xf32>, %w3: tensor<8x128x64xf32>,
                   %w2: tensor<8x64x128xf32>) -> tensor<?x64xf32> {
  %y = moe.moe_block %h gate(%gate : tensor<8x64xf32>)
      experts(%w1, %w3, %w2 : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>)
      policy(#moe.top_k<k = 2>) : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// The Qwen2-MoE shared expert: a one-group SwiGLU pair over all tokens whose
// down projection rows are scaled by sigmoid(h · gateᵀ).
// CHECK-LABEL: func @qwen_shared
// CHECK: %[[ROUTED:.*]] = moe.combine
// CHECK: %[[SGATE:.*]] = moe.grouped_matmul %{{.*}}, %{{.*}} offsets(%[[ALL:.*]]) : {{.*}} -> tensor<?x1xf32>
// CHECK: %[[SIG:.*]] = linalg.generic {{.*}} ins(%[[SGATE]] : tensor<?x1xf32>) outs(%{{.*}} : tensor<?xf32>)
// CHECK: math.exp
// CHECK: %[[SA:.*]] = moe.grouped_matmul %{{.*}}, %{{.*}}, %{{.*}} offsets(%[[ALL]]) epilogue(swiglu) : {{.*}} -> tensor<?x96xf32>
// CHECK: %[[SHARED:.*]] = moe.grouped_matmul %[[SA]], %{{.*}} offsets(%[[ALL]]) scale(%[[SIG]])
// CHECK: linalg.generic {{.*}} ins(%[[ROUTED]], %[[SHARED]] :
func.func @qwen_shared(%h: tensor<?x64xf32>, %gate: tensor<4x64xf32>,
                       %w1: tensor<4x32x64xf32>, %w3: tensor<4x32x64xf32>,
                       %w2: tensor<4x64x32xf32>, %s1: tensor<96x64xf32>,
                       %s3: tensor<96x64xf32>, %s2: tensor<64x96xf32>,
                       %sg: tensor<1x64xf32>) -> tensor<?x64xf32> {
  %y = moe.moe_block %h gate(%gate : tensor<4x64xf32>)
      experts(%w1, %w3, %w2 : tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>)
      policy(#moe.top_k<k = 2, normalize = false>)
      shared_expert(%s1, %s3, %s2, %sg : tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x96xf32>, tensor<1x64xf32>)
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// MH-MoE: head projection plus bias, split into sub-tokens of width 16,
// routing on sub-tokens, merge, merge projection plus bias.
// CHECK-LABEL: func @multi_head
// CHECK: %[[U:.*]] = moe.grouped_matmul %{{.*}}, %{{.*}} offsets(%{{.*}}) : (tensor<5x64xf32>, tensor<1x64x64xf32>, tensor<2xi32>) -> tensor<5x64xf32>
// CHECK: %[[UB:.*]] = linalg.generic {{.*}} ins(%[[U]], %{{.*}} : tensor<5x64xf32>, tensor<64xf32>)
// CHECK: %[[SUB:.*]] = moe.split_tokens %[[UB]] heads(4) : tensor<5x64xf32> -> tensor<20x16xf32>
// CHECK: moe.router {{.*}} : tensor<20x8xf32> -> tensor<20x2xi32>
// CHECK: moe.dispatch %[[SUB]]
// CHECK: %[[O:.*]] = moe.combine {{.*}} -> tensor<20x16xf32>
// CHECK: %[[M:.*]] = moe.merge_tokens %[[O]] heads(4) : tensor<20x16xf32> -> tensor<5x64xf32>
// CHECK: %[[MP:.*]] = moe.grouped_matmul %[[M]], %{{.*}} offsets(%{{.*}}) : (tensor<5x64xf32>, tensor<1x64x64xf32>, tensor<2xi32>)
// CHECK: %[[Y:.*]] = linalg.generic {{.*}} ins(%[[MP]], %{{.*}} : tensor<5x64xf32>, tensor<64xf32>)
// CHECK: return %[[Y]]
func.func @multi_head(%h: tensor<5x64xf32>, %gate: tensor<8x16xf32>,
                      %w1: tensor<8x32x16xf32>, %w3: tensor<8x32x16xf32>,
                      %w2: tensor<8x16x32xf32>, %hw: tensor<64x64xf32>,
                      %hb: tensor<64xf32>, %mw: tensor<64x64xf32>,
                      %mb: tensor<64xf32>) -> tensor<5x64xf32> {
  %y = moe.moe_block %h gate(%gate : tensor<8x16xf32>)
      experts(%w1, %w3, %w2 : tensor<8x32x16xf32>, tensor<8x32x16xf32>, tensor<8x16x32xf32>)
      policy(#moe.top_k<k = 2>)
      multi_head(4 : %hw, %hb, %mw, %mb : tensor<64x64xf32>, tensor<64xf32>, tensor<64x64xf32>, tensor<64xf32>)
      : tensor<5x64xf32> -> tensor<5x64xf32>
  return %y : tensor<5x64xf32>
}

// Adaptive routing: c = sigmoid(h · wᵀ + b); the router's caps are 3 (the
// policy's bound) for c >= 0.25 and 1 below; the deep expert is a
// one-expert dispatch whose counts are 1 only for c >= 0.25, combined with
// weights c. The shallow expert is dense.
// CHECK-LABEL: func @adaptive
// CHECK: %[[C:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<?xf32>)
// CHECK: %[[CAPS:.*]] = linalg.generic {{.*}} ins(%[[C]] : tensor<?xf32>) outs(%{{.*}} : tensor<?xi32>)
// CHECK: arith.cmpf oge, %{{.*}}, %cst{{.*}} : f32
// CHECK: arith.select %{{.*}}, %c3_i32, %c1_i32 : i32
// CHECK: %[[ENTER:.*]] = linalg.generic {{.*}} ins(%[[C]] : tensor<?xf32>) outs(%{{.*}} : tensor<?xi32>)
// CHECK: arith.select %{{.*}}, %c1_i32, %c0_i32{{.*}} : i32
// CHECK: moe.router %{{.*}} policy(#moe.top_p<threshold = 0.5, max_experts = 3>) caps(%[[CAPS]] : tensor<?xi32>)
// CHECK: moe.grouped_matmul {{.*}} -> tensor<?x8xf32>
// CHECK: %[[ZEROS:.*]] = linalg.fill ins(%c0_i32 : i32) outs(%{{.*}} : tensor<?x1xi32>)
// CHECK: %[[CW:.*]] = tensor.expand_shape %[[C]] {{\[}}[0, 1]]
// CHECK: %{{.*}}, %[[DOFF:.*]], %{{.*}}, %[[DS2R:.*]] = moe.dispatch %{{.*}}, %[[ZEROS]], %[[ENTER]] : {{.*}} -> tensor<?x64xf32>, tensor<2xi32>, tensor<?xi32>, tensor<?x1xi32>
// CHECK: moe.grouped_matmul {{.*}} offsets(%[[DOFF]]) epilogue(swiglu) : {{.*}} -> tensor<?x128xf32>
// CHECK: %[[DY:.*]] = moe.grouped_matmul {{.*}} offsets(%[[DOFF]])
// CHECK: moe.combine %[[DY]], %[[CW]], %[[DS2R]], %[[ENTER]]
func.func @adaptive(
    %h: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
    %w1: tensor<8x32x64xf32>, %w3: tensor<8x32x64xf32>, %w2: tensor<8x64x32xf32>,
    %sh1: tensor<8x64xf32>, %sh3: tensor<8x64xf32>, %sh2: tensor<64x8xf32>,
    %dp1: tensor<128x64xf32>, %dp3: tensor<128x64xf32>, %dp2: tensor<64x128xf32>,
    %cw: tensor<1x64xf32>, %cb: tensor<1xf32>) -> tensor<?x64xf32> {
  %y = moe.moe_block %h gate(%gate : tensor<8x64xf32>)
      experts(%w1, %w3, %w2 : tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>)
      policy(#moe.top_p<threshold = 0.5, max_experts = 3>)
      shallow_expert(%sh1, %sh3, %sh2 : tensor<8x64xf32>, tensor<8x64xf32>, tensor<64x8xf32>)
      deep_expert(%dp1, %dp3, %dp2 : tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>)
      adaptive_routing(%cw, %cb : tensor<1x64xf32>, tensor<1xf32>) level_threshold(0.25) simple_max_experts(1)
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// A bf16 block computes in f32 and rounds the result once.
// CHECK-LABEL: func @bf16
// CHECK: arith.extf %{{.*}} : bf16 to f32
// CHECK: moe.combine {{.*}} -> tensor<?x16xf32>
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: return %{{.*}} : tensor<?x16xbf16>
func.func @bf16(%h: tensor<?x16xbf16>, %gate: tensor<4x16xbf16>,
                %w1: tensor<4x8x16xbf16>, %w3: tensor<4x8x16xbf16>,
                %w2: tensor<4x16x8xbf16>) -> tensor<?x16xbf16> {
  %y = moe.moe_block %h gate(%gate : tensor<4x16xbf16>)
      experts(%w1, %w3, %w2 : tensor<4x8x16xbf16>, tensor<4x8x16xbf16>, tensor<4x16x8xbf16>)
      policy(#moe.top_k<k = 1>) : tensor<?x16xbf16> -> tensor<?x16xbf16>
  return %y : tensor<?x16xbf16>
}

// Routing statistics: the router's counts per sub-token, the dispatch's
// rows per expert (differences of the group offsets), and the ADR level.
// CHECK-LABEL: func @stats
// CHECK: arith.select %{{.*}}, %c2_i32, %c1_i32 : i32
// CHECK: %[[LEVEL:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<?xi32>)
// CHECK: arith.select %{{.*}}, %c1_i32, %c0_i32{{.*}} : i32
// CHECK: %{{.*}}, %{{.*}}, %[[COUNTS:.*]] = moe.router
// CHECK: %{{.*}}, %[[OFF:.*]], %{{.*}}, %{{.*}} = moe.dispatch
// CHECK: %[[LOAD:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<4xi32>)
// CHECK: tensor.extract %[[OFF]]
// CHECK: tensor.extract %[[OFF]]
// CHECK: arith.subi
// CHECK: return %{{.*}}, %[[COUNTS]], %[[LOAD]], %[[LEVEL]] : tensor<?x16xf32>, tensor<?xi32>, tensor<4xi32>, tensor<?xi32>
func.func @stats(%h: tensor<?x16xf32>, %gate: tensor<4x16xf32>,
                 %w1: tensor<4x8x16xf32>, %w3: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>,
                 %sh1: tensor<8x16xf32>, %sh3: tensor<8x16xf32>, %sh2: tensor<16x8xf32>,
                 %dp1: tensor<8x16xf32>, %dp3: tensor<8x16xf32>, %dp2: tensor<16x8xf32>,
                 %cw: tensor<1x16xf32>, %cb: tensor<1xf32>)
    -> (tensor<?x16xf32>, tensor<?xi32>, tensor<4xi32>, tensor<?xi32>) {
  %y, %n, %load, %level = moe.moe_block %h gate(%gate : tensor<4x16xf32>)
      experts(%w1, %w3, %w2 : tensor<4x8x16xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32>)
      policy(#moe.top_k<k = 2>)
      shallow_expert(%sh1, %sh3, %sh2 : tensor<8x16xf32>, tensor<8x16xf32>, tensor<16x8xf32>)
      deep_expert(%dp1, %dp3, %dp2 : tensor<8x16xf32>, tensor<8x16xf32>, tensor<16x8xf32>)
      adaptive_routing(%cw, %cb : tensor<1x16xf32>, tensor<1xf32>) level_threshold(0.5) simple_max_experts(1)
      : tensor<?x16xf32> -> tensor<?x16xf32>, tensor<?xi32>, tensor<4xi32>, tensor<?xi32>
  return %y, %n, %load, %level : tensor<?x16xf32>, tensor<?xi32>, tensor<4xi32>, tensor<?xi32>
}

// Without ADR every token is complex: the level is all ones.
// CHECK-LABEL: func @stats_without_adr
// CHECK: %[[ONES:.*]] = linalg.fill ins(%c1_i32 : i32) outs(%{{.*}} : tensor<?xi32>)
// CHECK: return %{{.*}}, %{{.*}}, %{{.*}}, %[[ONES]]
func.func @stats_without_adr(%h: tensor<?x16xf32>, %gate: tensor<4x16xf32>,
                             %w1: tensor<4x8x16xf32>, %w3: tensor<4x8x16xf32>,
                             %w2: tensor<4x16x8xf32>)
    -> (tensor<?x16xf32>, tensor<?xi32>, tensor<4xi32>, tensor<?xi32>) {
  %y, %n, %load, %level = moe.moe_block %h gate(%gate : tensor<4x16xf32>)
      experts(%w1, %w3, %w2 : tensor<4x8x16xf32>, tensor<4x8x16xf32>, tensor<4x16x8xf32>)
      policy(#moe.top_k<k = 2>)
      : tensor<?x16xf32> -> tensor<?x16xf32>, tensor<?xi32>, tensor<4xi32>, tensor<?xi32>
  return %y, %n, %load, %level : tensor<?x16xf32>, tensor<?xi32>, tensor<4xi32>, tensor<?xi32>
}
