// moe.router executed on the CPU under every policy form, on four tokens:
// distinct logits, a tie between experts 1 and 2, all four experts tied, and
// one dominant expert. Expected values: a NumPy reference written from
// docs/semantics.md §3 (softmax in f32, ties to the lower index, top_p's strict
// threshold, the cap, renormalisation, per-token caps).
// REQUIRES: openmp
// RUN: moec-opt %s -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp \
// RUN: | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32>)
func.func private @printMemrefI32(tensor<*xi32>)

func.func @print(%ids: tensor<?x?xi32>, %w: tensor<?x?xf32>, %n: tensor<?xi32>) {
  %iu = tensor.cast %ids : tensor<?x?xi32> to tensor<*xi32>
  %wu = tensor.cast %w : tensor<?x?xf32> to tensor<*xf32>
  %nu = tensor.cast %n : tensor<?xi32> to tensor<*xi32>
  call @printMemrefI32(%iu) : (tensor<*xi32>) -> ()
  call @printMemrefF32(%wu) : (tensor<*xf32>) -> ()
  call @printMemrefI32(%nu) : (tensor<*xi32>) -> ()
  return
}

func.func @top_k(%l: tensor<?x4xf32>) {
  %i, %w, %n = moe.router %l policy(#moe.top_k<k = 2>)
      : tensor<?x4xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>
  %ic = tensor.cast %i : tensor<?x2xi32> to tensor<?x?xi32>
  %wc = tensor.cast %w : tensor<?x2xf32> to tensor<?x?xf32>
  call @print(%ic, %wc, %n) : (tensor<?x?xi32>, tensor<?x?xf32>, tensor<?xi32>) -> ()
  return
}

func.func @top_p(%l: tensor<?x4xf32>) {
  %i, %w, %n = moe.router %l policy(#moe.top_p<threshold = 0.5>)
      : tensor<?x4xf32> -> tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>
  %ic = tensor.cast %i : tensor<?x4xi32> to tensor<?x?xi32>
  %wc = tensor.cast %w : tensor<?x4xf32> to tensor<?x?xf32>
  call @print(%ic, %wc, %n) : (tensor<?x?xi32>, tensor<?x?xf32>, tensor<?xi32>) -> ()
  return
}

func.func @top_p_normalized(%l: tensor<?x4xf32>) {
  %i, %w, %n = moe.router %l policy(#moe.top_p<threshold = 0.9, normalize = true>)
      : tensor<?x4xf32> -> tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>
  %ic = tensor.cast %i : tensor<?x4xi32> to tensor<?x?xi32>
  %wc = tensor.cast %w : tensor<?x4xf32> to tensor<?x?xf32>
  call @print(%ic, %wc, %n) : (tensor<?x?xi32>, tensor<?x?xf32>, tensor<?xi32>) -> ()
  return
}

func.func @top_p_capped(%l: tensor<?x4xf32>) {
  %i, %w, %n = moe.router %l policy(#moe.top_p<threshold = 0.5, max_experts = 2>)
      : tensor<?x4xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>
  %ic = tensor.cast %i : tensor<?x2xi32> to tensor<?x?xi32>
  %wc = tensor.cast %w : tensor<?x2xf32> to tensor<?x?xf32>
  call @print(%ic, %wc, %n) : (tensor<?x?xi32>, tensor<?x?xf32>, tensor<?xi32>) -> ()
  return
}

func.func @top_k_caps(%l: tensor<?x4xf32>, %caps: tensor<?xi32>) {
  %i, %w, %n = moe.router %l policy(#moe.top_k<k = 3, normalize = false>)
      caps(%caps : tensor<?xi32>)
      : tensor<?x4xf32> -> tensor<?x3xi32>, tensor<?x3xf32>, tensor<?xi32>
  %ic = tensor.cast %i : tensor<?x3xi32> to tensor<?x?xi32>
  %wc = tensor.cast %w : tensor<?x3xf32> to tensor<?x?xf32>
  call @print(%ic, %wc, %n) : (tensor<?x?xi32>, tensor<?x?xf32>, tensor<?xi32>) -> ()
  return
}

func.func @main() {
  %l0 = arith.constant dense<[[2.0, 1.0, 0.5, -1.0], [0.0, 3.0, 3.0, 0.0],
                              [1.0, 1.0, 1.0, 1.0], [-2.0, 0.0, 4.0, 0.5]]> : tensor<4x4xf32>
  %l = tensor.cast %l0 : tensor<4x4xf32> to tensor<?x4xf32>

  call @top_k(%l) : (tensor<?x4xf32>) -> ()
  // CHECK: sizes = [4, 2]
  // CHECK-NEXT: [0, 1]
  // CHECK-NEXT: [1, 2]
  // CHECK-NEXT: [0, 1]
  // CHECK-NEXT: [2, 3]
  // CHECK: sizes = [4, 2]
  // CHECK-NEXT: [0.731059, 0.268941]
  // CHECK-NEXT: [0.5, 0.5]
  // CHECK-NEXT: [0.5, 0.5]
  // CHECK-NEXT: [0.970688, 0.0293122]
  // CHECK: sizes = [4]
  // CHECK-NEXT: [2, 2, 2, 2]

  // One, two (a tie), three (the strict threshold: 0.25 + 0.25 is not
  // above 0.5) and one expert.
  call @top_p(%l) : (tensor<?x4xf32>) -> ()
  // CHECK: sizes = [4, 4]
  // CHECK-NEXT: [0, -1, -1, -1]
  // CHECK-NEXT: [1, 2, -1, -1]
  // CHECK-NEXT: [0, 1, 2, -1]
  // CHECK-NEXT: [2, -1, -1, -1]
  // CHECK: sizes = [4, 4]
  // CHECK-NEXT: [0.60946, 0, 0, 0]
  // CHECK-NEXT: [0.476287, 0.476287, 0, 0]
  // CHECK-NEXT: [0.25, 0.25, 0.25, 0]
  // CHECK-NEXT: [0.951482, 0, 0, 0]
  // CHECK: sizes = [4]
  // CHECK-NEXT: [1, 2, 3, 1]

  // Token 2 activates every expert.
  call @top_p_normalized(%l) : (tensor<?x4xf32>) -> ()
  // CHECK: sizes = [4, 4]
  // CHECK-NEXT: [0, 1, 2, -1]
  // CHECK-NEXT: [1, 2, -1, -1]
  // CHECK-NEXT: [0, 1, 2, 3]
  // CHECK-NEXT: [2, -1, -1, -1]
  // CHECK: sizes = [4, 4]
  // CHECK-NEXT: [0.628532, 0.231224, 0.140244, 0]
  // CHECK-NEXT: [0.5, 0.5, 0, 0]
  // CHECK-NEXT: [0.25, 0.25, 0.25, 0.25]
  // CHECK-NEXT: [1, 0, 0, 0]
  // CHECK: sizes = [4]
  // CHECK-NEXT: [3, 2, 4, 1]

  call @top_p_capped(%l) : (tensor<?x4xf32>) -> ()
  // CHECK: sizes = [4, 2]
  // CHECK-NEXT: [0, -1]
  // CHECK-NEXT: [1, 2]
  // CHECK-NEXT: [0, 1]
  // CHECK-NEXT: [2, -1]
  // CHECK: sizes = [4, 2]
  // CHECK-NEXT: [0.60946, 0]
  // CHECK-NEXT: [0.476287, 0.476287]
  // CHECK-NEXT: [0.25, 0.25]
  // CHECK-NEXT: [0.951482, 0]
  // CHECK: sizes = [4]
  // CHECK-NEXT: [1, 2, 2, 1]

  // Per-token caps 0, 1, 3 and 2 (a cap of 0 routes the token nowhere).
  %caps0 = arith.constant dense<[0, 1, 3, 2]> : tensor<4xi32>
  %caps = tensor.cast %caps0 : tensor<4xi32> to tensor<?xi32>
  call @top_k_caps(%l, %caps) : (tensor<?x4xf32>, tensor<?xi32>) -> ()
  // CHECK: sizes = [4, 3]
  // CHECK-NEXT: [-1, -1, -1]
  // CHECK-NEXT: [1, -1, -1]
  // CHECK-NEXT: [0, 1, 2]
  // CHECK-NEXT: [2, 3, -1]
  // CHECK: sizes = [4, 3]
  // CHECK-NEXT: [0, 0, 0]
  // CHECK-NEXT: [0.476287, 0, 0]
  // CHECK-NEXT: [0.25, 0.25, 0.25]
  // CHECK-NEXT: [0.951482, 0.0287{{[0-9]*}}, 0]
  // CHECK: sizes = [4]
  // CHECK-NEXT: [0, 1, 3, 2]
  return
}
