// A whole MoE layer from lowered moe ops, executed on the CPU: router
// (top_p, threshold 0.6: tokens use one or two of three experts; token 3 has
// tied logits), dispatch, SwiGLU experts as grouped matmuls, combine.
// Expected values: a NumPy reference written from docs/semantics.md §2-3 that loops
// over tokens and experts directly (no dispatch).
// REQUIRES: openmp
// RUN: moec-opt %s -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp \
// RUN: | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32>)
func.func private @printMemrefI32(tensor<*xi32>)

func.func @moe_layer(%h: tensor<?x4xf32>, %logits: tensor<?x3xf32>,
                     %w1: tensor<3x6x4xf32>, %w3: tensor<3x6x4xf32>,
                     %w2: tensor<3x4x6xf32>)
    -> (tensor<?x4xf32>, tensor<4xi32>, tensor<?xi32>, tensor<?x3xi32>) {
  %ids, %weights, %counts = moe.router %logits policy(#moe.top_p<threshold = 0.6>)
      : tensor<?x3xf32> -> tensor<?x3xi32>, tensor<?x3xf32>, tensor<?xi32>
  %rows, %offsets, %row_to_token, %slot_to_row = moe.dispatch %h, %ids, %counts
      : tensor<?x4xf32>, tensor<?x3xi32>, tensor<?xi32>
      -> tensor<?x4xf32>, tensor<4xi32>, tensor<?xi32>, tensor<?x3xi32>
  %act = moe.grouped_matmul %rows, %w1, %w3 offsets(%offsets) epilogue(swiglu)
      : (tensor<?x4xf32>, tensor<3x6x4xf32>, tensor<3x6x4xf32>, tensor<4xi32>)
      -> tensor<?x6xf32>
  %y = moe.grouped_matmul %act, %w2 offsets(%offsets)
      : (tensor<?x6xf32>, tensor<3x4x6xf32>, tensor<4xi32>) -> tensor<?x4xf32>
  %out = moe.combine %y, %weights, %slot_to_row, %counts
      : (tensor<?x4xf32>, tensor<?x3xf32>, tensor<?x3xi32>, tensor<?xi32>)
      -> tensor<?x4xf32>
  return %out, %offsets, %row_to_token, %slot_to_row
      : tensor<?x4xf32>, tensor<4xi32>, tensor<?xi32>, tensor<?x3xi32>
}

// Dispatch then combine with renormalised top-k weights gives each token
// back: sum_k w_k * x = x.
func.func @round_trip(%x: tensor<?x4xf32>, %logits: tensor<?x3xf32>) -> tensor<?x4xf32> {
  %ids, %weights, %counts = moe.router %logits policy(#moe.top_k<k = 2>)
      : tensor<?x3xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>
  %rows, %offsets, %row_to_token, %slot_to_row = moe.dispatch %x, %ids, %counts
      : tensor<?x4xf32>, tensor<?x2xi32>, tensor<?xi32>
      -> tensor<?x4xf32>, tensor<4xi32>, tensor<?xi32>, tensor<?x2xi32>
  %back = moe.combine %rows, %weights, %slot_to_row, %counts
      : (tensor<?x4xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>)
      -> tensor<?x4xf32>
  return %back : tensor<?x4xf32>
}

func.func @main() {
  %h0 = arith.constant dense<[[0.75, -1.0, -0.75, -0.5], [-0.75, 0.75, 0.75, 0.25], [-1.0, -1.0, -0.5, -0.25], [0.25, 0.0, -0.5, -0.75], [0.5, 0.5, -1.0, -0.75]]> : tensor<5x4xf32>
  // Gate logits h · Wgᵀ, precomputed (exact in f32).
  %logits0 = arith.constant dense<[[-0.625, -0.5, -3.875], [0.75, 0.5, 3.125], [-0.25, 0.625, -0.5], [-0.75, -0.75, -2.375], [-1.75, -1.375, -2.75]]> : tensor<5x3xf32>
  %w1 = arith.constant dense<[[[0.75, -0.5, -0.5, 0.25], [0.25, 0.5, 0.75, -0.5], [1.0, -1.0, -1.0, 1.0], [1.0, -0.5, -0.75, -0.5], [-1.0, 1.0, 0.25, 0.25], [-0.5, 0.0, -0.75, 0.5]], [[0.0, -1.0, -0.5, 0.5], [0.0, -0.25, -0.5, -1.0], [0.25, 0.25, 0.0, 1.0], [1.0, -0.75, 0.25, 0.25], [-0.5, -0.5, 0.0, 0.5], [-0.5, 0.5, 0.25, -0.75]], [[-0.25, 0.75, 0.75, 0.25], [-1.0, 0.5, -0.5, 0.75], [1.0, -0.25, 1.0, 0.5], [-0.5, 0.75, -0.25, -1.0], [0.25, 0.75, 0.25, -0.25], [1.0, 0.0, -0.25, -0.75]]]> : tensor<3x6x4xf32>
  %w3 = arith.constant dense<[[[-0.75, 0.5, 0.75, -0.5], [0.25, 0.75, -0.75, -0.5], [0.0, 0.25, -0.25, -0.25], [-0.75, 0.25, 1.0, -0.75], [0.75, -0.75, -1.0, 0.5], [-0.75, 0.5, -0.5, 0.25]], [[1.0, 1.0, 0.0, -0.75], [-0.5, 0.75, 0.25, -0.75], [0.75, 1.0, 1.0, 0.25], [1.0, 0.25, 0.0, 1.0], [0.25, 0.75, -0.25, 0.75], [1.0, -1.0, 0.0, -0.25]], [[-1.0, -1.0, -0.5, -0.75], [0.5, -0.75, 0.25, 0.75], [0.0, -0.75, -1.0, -0.5], [-0.25, 0.0, -0.5, 0.75], [0.25, 1.0, 1.0, 0.5], [-1.0, -0.75, 0.5, 0.0]]]> : tensor<3x6x4xf32>
  %w2 = arith.constant dense<[[[1.0, 0.5, 0.75, -1.0, -0.5, 0.5], [0.25, -0.25, -0.75, 0.25, -1.0, 0.5], [0.75, 0.5, -1.0, 0.0, -0.5, 0.0], [0.5, -0.75, -1.0, 0.0, 0.25, -0.75]], [[1.0, 0.0, 1.0, 0.0, 0.5, 0.5], [0.0, -0.25, 0.5, -1.0, 0.25, 0.0], [-0.75, -0.75, -1.0, 0.5, 0.5, -0.25], [1.0, -0.25, -0.5, 1.0, -1.0, -0.25]], [[-1.0, -0.25, 0.5, -0.25, 0.0, 0.0], [-1.0, -1.0, -0.5, 0.0, -1.0, 1.0], [0.75, 0.25, 0.5, 0.5, -1.0, 1.0], [-1.0, 0.75, 0.75, 0.5, -0.75, 0.75]]]> : tensor<3x4x6xf32>
  %h = tensor.cast %h0 : tensor<5x4xf32> to tensor<?x4xf32>
  %logits = tensor.cast %logits0 : tensor<5x3xf32> to tensor<?x3xf32>

  %out, %offsets, %row_to_token, %slot_to_row = call @moe_layer(%h, %logits, %w1, %w3, %w2)
      : (tensor<?x4xf32>, tensor<?x3xf32>, tensor<3x6x4xf32>, tensor<3x6x4xf32>, tensor<3x4x6xf32>)
      -> (tensor<?x4xf32>, tensor<4xi32>, tensor<?xi32>, tensor<?x3xi32>)
  %ou = tensor.cast %out : tensor<?x4xf32> to tensor<*xf32>
  call @printMemrefF32(%ou) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [5, 4]
  // CHECK-NEXT: [0.5681{{[0-9]*}}, -0.06625{{[0-9]*}}, -0.2592{{[0-9]*}}, -0.2936{{[0-9]*}}]
  // CHECK-NEXT: [0.6296{{[0-9]*}}, 0.3192{{[0-9]*}}, -0.9768{{[0-9]*}}, -0.07386{{[0-9]*}}]
  // CHECK-NEXT: [-0.7071{{[0-9]*}}, -0.04074{{[0-9]*}}, 0.2918{{[0-9]*}}, -0.5695{{[0-9]*}}]
  // CHECK-NEXT: [0.1165{{[0-9]*}}, 0.01567{{[0-9]*}}, -0.09203{{[0-9]*}}, -0.1328{{[0-9]*}}]
  // CHECK-NEXT: [0.1660{{[0-9]*}}, -0.1067{{[0-9]*}}, -0.1386{{[0-9]*}}, -0.2214{{[0-9]*}}]

  // Experts 0 and 1 get tokens 0, 2, 3, 4 in token order; expert 2 token 1.
  %offu = tensor.cast %offsets : tensor<4xi32> to tensor<*xi32>
  call @printMemrefI32(%offu) : (tensor<*xi32>) -> ()
  // CHECK: sizes = [4]
  // CHECK-NEXT: [0, 4, 8, 9]
  %r2tu = tensor.cast %row_to_token : tensor<?xi32> to tensor<*xi32>
  call @printMemrefI32(%r2tu) : (tensor<*xi32>) -> ()
  // CHECK: sizes = [9]
  // CHECK-NEXT: [0, 2, 3, 4, 0, 2, 3, 4, 1]
  %s2ru = tensor.cast %slot_to_row : tensor<?x3xi32> to tensor<*xi32>
  call @printMemrefI32(%s2ru) : (tensor<*xi32>) -> ()
  // CHECK: sizes = [5, 3]
  // CHECK-NEXT: [4, 0, -1]
  // CHECK-NEXT: [8, -1, -1]
  // CHECK-NEXT: [5, 1, -1]
  // CHECK-NEXT: [2, 6, -1]
  // CHECK-NEXT: [7, 3, -1]

  %back = call @round_trip(%h, %logits) : (tensor<?x4xf32>, tensor<?x3xf32>) -> tensor<?x4xf32>
  %bu = tensor.cast %back : tensor<?x4xf32> to tensor<*xf32>
  call @printMemrefF32(%bu) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [5, 4]
  // CHECK-NEXT: [0.75, -1, -0.75, -0.5]
  // CHECK-NEXT: [-0.75, 0.75, 0.75, 0.25]
  // CHECK-NEXT: [-1, -1, -0.5, -0.25]
  // CHECK-NEXT: [0.25, 0, -0.5, -0.75]
  // CHECK-NEXT: [0.5, 0.5, -1, -0.75]
  return
}
