// The whole MoE layer of integration/cpu/moe-layer.mlir on a CUDA GPU:
// router, dispatch, SwiGLU grouped matmuls and combine as kernels, through
// the CUDA pipeline and the moec runtime; same NumPy expectations. Managed
// memory (host-shared), so that the host prints the results.
// REQUIRES: cuda-gpu, cuda-toolkit
// RUN: moec-opt %s -moe-to-cuda-pipeline=host-shared \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%moec_cuda_runtime,%mlir_runner_utils,%mlir_c_runner_utils \
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
  %h0_c = arith.constant dense<[[0.75, -1.0, -0.75, -0.5], [-0.75, 0.75, 0.75, 0.25], [-1.0, -1.0, -0.5, -0.25], [0.25, 0.0, -0.5, -0.75], [0.5, 0.5, -1.0, -0.75]]> : tensor<5x4xf32>
  %h0 = bufferization.alloc_tensor() copy(%h0_c) : tensor<5x4xf32>
  // Gate logits h · Wgᵀ, precomputed (exact in f32).
  %logits0_c = arith.constant dense<[[-0.625, -0.5, -3.875], [0.75, 0.5, 3.125], [-0.25, 0.625, -0.5], [-0.75, -0.75, -2.375], [-1.75, -1.375, -2.75]]> : tensor<5x3xf32>
  %logits0 = bufferization.alloc_tensor() copy(%logits0_c) : tensor<5x3xf32>
  %w1_c = arith.constant dense<[[[0.75, -0.5, -0.5, 0.25], [0.25, 0.5, 0.75, -0.5], [1.0, -1.0, -1.0, 1.0], [1.0, -0.5, -0.75, -0.5], [-1.0, 1.0, 0.25, 0.25], [-0.5, 0.0, -0.75, 0.5]], [[0.0, -1.0, -0.5, 0.5], [0.0, -0.25, -0.5, -1.0], [0.25, 0.25, 0.0, 1.0], [1.0, -0.75, 0.25, 0.25], [-0.5, -0.5, 0.0, 0.5], [-0.5, 0.5, 0.25, -0.75]], [[-0.25, 0.75, 0.75, 0.25], [-1.0, 0.5, -0.5, 0.75], [1.0, -0.25, 1.0, 0.5], [-0.5, 0.75, -0.25, -1.0], [0.25, 0.75, 0.25, -0.25], [1.0, 0.0, -0.25, -0.75]]]> : tensor<3x6x4xf32>
  %w1 = bufferization.alloc_tensor() copy(%w1_c) : tensor<3x6x4xf32>
  %w3_c = arith.constant dense<[[[-0.75, 0.5, 0.75, -0.5], [0.25, 0.75, -0.75, -0.5], [0.0, 0.25, -0.25, -0.25], [-0.75, 0.25, 1.0, -0.75], [0.75, -0.75, -1.0, 0.5], [-0.75, 0.5, -0.5, 0.25]], [[1.0, 1.0, 0.0, -0.75], [-0.5, 0.75, 0.25, -0.75], [0.75, 1.0, 1.0, 0.25], [1.0, 0.25, 0.0, 1.0], [0.25, 0.75, -0.25, 0.75], [1.0, -1.0, 0.0, -0.25]], [[-1.0, -1.0, -0.5, -0.75], [0.5, -0.75, 0.25, 0.75], [0.0, -0.75, -1.0, -0.5], [-0.25, 0.0, -0.5, 0.75], [0.25, 1.0, 1.0, 0.5], [-1.0, -0.75, 0.5, 0.0]]]> : tensor<3x6x4xf32>
  %w3 = bufferization.alloc_tensor() copy(%w3_c) : tensor<3x6x4xf32>
  %w2_c = arith.constant dense<[[[1.0, 0.5, 0.75, -1.0, -0.5, 0.5], [0.25, -0.25, -0.75, 0.25, -1.0, 0.5], [0.75, 0.5, -1.0, 0.0, -0.5, 0.0], [0.5, -0.75, -1.0, 0.0, 0.25, -0.75]], [[1.0, 0.0, 1.0, 0.0, 0.5, 0.5], [0.0, -0.25, 0.5, -1.0, 0.25, 0.0], [-0.75, -0.75, -1.0, 0.5, 0.5, -0.25], [1.0, -0.25, -0.5, 1.0, -1.0, -0.25]], [[-1.0, -0.25, 0.5, -0.25, 0.0, 0.0], [-1.0, -1.0, -0.5, 0.0, -1.0, 1.0], [0.75, 0.25, 0.5, 0.5, -1.0, 1.0], [-1.0, 0.75, 0.75, 0.5, -0.75, 0.75]]]> : tensor<3x4x6xf32>
  %w2 = bufferization.alloc_tensor() copy(%w2_c) : tensor<3x4x6xf32>
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
