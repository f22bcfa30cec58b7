// RUN: moec-opt %s -canonicalize -split-input-file | FileCheck %s

// A top_p capped at one expert selects the most probable expert with its raw
// probability: exactly top_k with k = 1 and no renormalisation.
// CHECK-LABEL: func @top_p_single_expert
func.func @top_p_single_expert(%l: tensor<?x8xf32>)
    -> (tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>) {
  // CHECK: moe.router %{{.*}} policy(#moe.top_k<k = 1, normalize = false>)
  %i, %w, %n = moe.router %l policy(#moe.top_p<threshold = 0.7, max_experts = 1>)
      : tensor<?x8xf32> -> tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>
  return %i, %w, %n : tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>
}

// CHECK-LABEL: func @top_p_one_expert_layer
func.func @top_p_one_expert_layer(%l: tensor<?x1xf32>)
    -> (tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>) {
  // CHECK: moe.router %{{.*}} policy(#moe.top_k<k = 1>)
  %i, %w, %n = moe.router %l policy(#moe.top_p<threshold = 0.7, normalize = true>)
      : tensor<?x1xf32> -> tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>
  return %i, %w, %n : tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>
}

// A cap of at least E never binds.
// CHECK-LABEL: func @top_p_loose_cap
func.func @top_p_loose_cap(%l: tensor<?x4xf32>)
    -> (tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>) {
  // CHECK: moe.router %{{.*}} policy(#moe.top_p<threshold = 0.7>)
  %i, %w, %n = moe.router %l policy(#moe.top_p<threshold = 0.7, max_experts = 6>)
      : tensor<?x4xf32> -> tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>
  return %i, %w, %n : tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>
}

// A binding cap stays.
// CHECK-LABEL: func @top_p_tight_cap
func.func @top_p_tight_cap(%l: tensor<?x8xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>) {
  // CHECK: moe.router %{{.*}} policy(#moe.top_p<threshold = 0.7, max_experts = 2>)
  %i, %w, %n = moe.router %l policy(#moe.top_p<threshold = 0.7, max_experts = 2>)
      : tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>
  return %i, %w, %n : tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>
}

// The same simplification applies to the policy of a whole block.
// CHECK-LABEL: func @block_policy
func.func @block_policy(%h: tensor<?x64xf32>, %g: tensor<4x64xf32>,
                        %w1: tensor<4x32x64xf32>, %w2: tensor<4x64x32xf32>)
    -> tensor<?x64xf32> {
  // CHECK: moe.moe_block {{.*}} policy(#moe.top_k<k = 1, normalize = false>)
  %y = moe.moe_block %h gate(%g : tensor<4x64xf32>)
      experts(%w1, %w1, %w2 : tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>)
      policy(#moe.top_p<threshold = 0.5, max_experts = 1>)
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// A threshold policy capped at one expert always keeps the most probable
// expert alone: top_k with k = 1, raw or renormalised (weight 1) alike.
// CHECK-LABEL: func @threshold_single_expert
func.func @threshold_single_expert(%l: tensor<?x8xf32>)
    -> (tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>,
        tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>) {
  // CHECK: moe.router %{{.*}} policy(#moe.top_k<k = 1, normalize = false>)
  %i0, %w0, %n0 = moe.router %l policy(#moe.threshold<threshold = 0.2, max_experts = 1>)
      : tensor<?x8xf32> -> tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>
  // CHECK: moe.router %{{.*}} policy(#moe.top_k<k = 1>)
  %i1, %w1, %n1 = moe.router %l policy(#moe.threshold<threshold = 0.2, max_experts = 1, normalize = true>)
      : tensor<?x8xf32> -> tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>
  return %i0, %w0, %n0, %i1, %w1, %n1
      : tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>, tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>
}

// CHECK-LABEL: func @threshold_loose_cap
func.func @threshold_loose_cap(%l: tensor<?x4xf32>)
    -> (tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>) {
  // CHECK: moe.router %{{.*}} policy(#moe.threshold<threshold = 0.2, normalize = true>)
  %i, %w, %n = moe.router %l policy(#moe.threshold<threshold = 0.2, max_experts = 4, normalize = true>)
      : tensor<?x4xf32> -> tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>
  return %i, %w, %n : tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>
}

// A binding cap stays, and so does the threshold policy on a layer of
// several experts (its count varies per token).
// CHECK-LABEL: func @threshold_kept
func.func @threshold_kept(%l: tensor<?x8xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>,
        tensor<?x8xi32>, tensor<?x8xf32>, tensor<?xi32>) {
  // CHECK: moe.router %{{.*}} policy(#moe.threshold<threshold = 0.2, max_experts = 2>)
  %i0, %w0, %n0 = moe.router %l policy(#moe.threshold<threshold = 0.2, max_experts = 2>)
      : tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>
  // CHECK: moe.router %{{.*}} policy(#moe.threshold<threshold = 0.0>)
  %i1, %w1, %n1 = moe.router %l policy(#moe.threshold<threshold = 0.0>)
      : tensor<?x8xf32> -> tensor<?x8xi32>, tensor<?x8xf32>, tensor<?xi32>
  return %i0, %w0, %n0, %i1, %w1, %n1
      : tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>, tensor<?x8xi32>, tensor<?x8xf32>, tensor<?xi32>
}

// -----

// CHECK-LABEL: func @merge_of_split
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>)
// CHECK-NOT: moe.
// CHECK: return %[[X]]
func.func @merge_of_split(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %s = moe.split_tokens %x heads(4) : tensor<?x64xf32> -> tensor<?x16xf32>
  %m = moe.merge_tokens %s heads(4) : tensor<?x16xf32> -> tensor<?x64xf32>
  return %m : tensor<?x64xf32>
}

// CHECK-LABEL: func @split_of_merge
// CHECK-SAME: (%[[X:.*]]: tensor<?x16xf32>)
// CHECK-NOT: moe.
// CHECK: return %[[X]]
func.func @split_of_merge(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %m = moe.merge_tokens %x heads(4) : tensor<?x16xf32> -> tensor<?x64xf32>
  %s = moe.split_tokens %m heads(4) : tensor<?x64xf32> -> tensor<?x16xf32>
  return %s : tensor<?x16xf32>
}

// CHECK-LABEL: func @single_head
// CHECK-NOT: moe.
func.func @single_head(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %s = moe.split_tokens %x heads(1) : tensor<?x64xf32> -> tensor<?x64xf32>
  return %s : tensor<?x64xf32>
}

// Different head counts are not inverses: both ops stay.
// CHECK-LABEL: func @mismatched_heads
// CHECK: moe.split_tokens
// CHECK: moe.merge_tokens
func.func @mismatched_heads(%x: tensor<?x64xf32>) -> tensor<?x32xf32> {
  %s = moe.split_tokens %x heads(4) : tensor<?x64xf32> -> tensor<?x16xf32>
  %m = moe.merge_tokens %s heads(2) : tensor<?x16xf32> -> tensor<?x32xf32>
  return %m : tensor<?x32xf32>
}
