// RUN: moec-opt %s -moe-lower-routing | FileCheck %s

// CHECK-LABEL: func @top_k
func.func @top_k(%l: tensor<?x8xbf16>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>) {
  // Softmax in f32: max, exp of the shifted logits, sum, divide.
  // CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]
  // CHECK: arith.extf {{.*}} : bf16 to f32
  // CHECK: arith.maximumf
  // CHECK: math.exp
  // CHECK: arith.addf
  // CHECK: arith.divf
  // Ranks: more probable, or tied with a lower index.
  // CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
  // CHECK: arith.cmpf ogt
  // CHECK: arith.cmpf oeq
  // CHECK: arith.cmpi ult
  // The K best experts in order.
  // CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
  // CHECK-SAME: outs(%{{.*}}, %{{.*}} : tensor<?x2xi32>, tensor<?x2xf32>)
  // top_k: every token uses k experts.
  // CHECK: %[[K:.*]] = arith.constant 2 : i32
  // CHECK: %[[COUNTS:.*]] = linalg.fill ins(%[[K]] : i32)
  // Renormalised weights; unused slots masked.
  // CHECK: arith.divf
  // CHECK: arith.select
  // CHECK-NOT: moe.router
  %i, %w, %n = moe.router %l policy(#moe.top_k<k = 2>)
      : tensor<?x8xbf16> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>
  return %i, %w, %n : tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>
}

// CHECK-LABEL: func @top_p
func.func @top_p(%l: tensor<5x8xf32>, %caps: tensor<5xi32>)
    -> (tensor<5x3xi32>, tensor<5x3xf32>, tensor<5xi32>) {
  // Prefix sums of the sorted probabilities, then the count of prefixes not
  // above the threshold, plus one, capped at K = 3.
  // CHECK: arith.cmpi ule
  // CHECK: %[[THRESHOLD:.*]] = arith.constant 6.000000e-01 : f32
  // CHECK: arith.cmpf ole, %{{.*}}, %[[THRESHOLD]]
  // CHECK: %[[CAP:.*]] = arith.constant 3 : i32
  // CHECK: arith.minsi %{{.*}}, %[[CAP]]
  // Per-token caps.
  // CHECK: arith.maxsi
  // CHECK: arith.minsi
  // Raw weights: no division after the softmax's.
  // CHECK-NOT: arith.divf
  // CHECK: return
  %i, %w, %n = moe.router %l policy(#moe.top_p<threshold = 0.6, max_experts = 3>)
      caps(%caps : tensor<5xi32>)
      : tensor<5x8xf32> -> tensor<5x3xi32>, tensor<5x3xf32>, tensor<5xi32>
  return %i, %w, %n : tensor<5x3xi32>, tensor<5x3xf32>, tensor<5xi32>
}

// CHECK-LABEL: func @threshold
func.func @threshold(%l: tensor<?x8xf32>)
    -> (tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>) {
  // The sorted probabilities after the first, which is always kept; one
  // plus those strictly above the threshold, capped at K = 4.
  // CHECK: %[[SORTED:.*]]:2 = linalg.generic
  // CHECK-SAME: outs(%{{.*}}, %{{.*}} : tensor<?x4xi32>, tensor<?x4xf32>)
  // CHECK: %[[TAIL:.*]] = tensor.extract_slice %[[SORTED]]#1[0, 1] [%{{.*}}, 3] [1, 1] : tensor<?x4xf32> to tensor<?x3xf32>
  // CHECK: %[[ONE:.*]] = arith.constant 1 : i32
  // CHECK: %[[ONES:.*]] = linalg.fill ins(%[[ONE]] : i32)
  // CHECK: %[[COUNTS:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]
  // CHECK-SAME: ins(%[[TAIL]] : tensor<?x3xf32>) outs(%[[ONES]] : tensor<?xi32>)
  // CHECK: %[[THRESHOLD:.*]] = arith.constant 1.000000e-01 : f32
  // CHECK: arith.cmpf ogt, %{{.*}}, %[[THRESHOLD]]
  // CHECK: %[[CAP:.*]] = arith.constant 4 : i32
  // CHECK: arith.minsi %{{.*}}, %[[CAP]]
  // Renormalised weights.
  // CHECK: arith.divf
  // CHECK: return %{{.*}}, %{{.*}}, %[[COUNTS]]
  %i, %w, %n = moe.router %l policy(#moe.threshold<threshold = 0.1, max_experts = 4, normalize = true>)
      : tensor<?x8xf32> -> tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>
  return %i, %w, %n : tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>
}

// A single slot: the count is 1 with nothing to compare.
// CHECK-LABEL: func @threshold_single
func.func @threshold_single(%l: tensor<?x8xf32>)
    -> (tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>) {
  // CHECK: %[[ONE:.*]] = arith.constant 1 : i32
  // CHECK: %[[COUNTS:.*]] = linalg.fill ins(%[[ONE]] : i32)
  // CHECK-NOT: arith.cmpf ogt
  // CHECK-NOT: arith.divf
  // CHECK: return %{{.*}}, %{{.*}}, %[[COUNTS]]
  %i, %w, %n = moe.router %l policy(#moe.threshold<threshold = 0.3, max_experts = 1>)
      : tensor<?x8xf32> -> tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>
  return %i, %w, %n : tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>
}
