// moe.router executed on the CPU under #moe.threshold, on five tokens:
// distinct logits, all four experts tied at exactly 0.25, a tie between
// experts 1 and 2, one dominant expert, and four experts close to 0.25.
// Expected values: test/utils/router_threshold_reference.py, a NumPy
// reference written from the policy's definition (softmax in f32, ties to
// the lower index, the strict threshold, at least one expert, the cap,
// renormalisation). It prints the CHECK lines below; where NumPy is present
// the last RUN line checks that they are still what it prints.
// REQUIRES: openmp
// RUN: moec-opt %s -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp \
// RUN: | FileCheck %s
// RUN: %if numpy %{ %python %test_utils/router_threshold_reference.py | grep '^  // CHECK' > %t.ref %}
// RUN: %if numpy %{ grep '^  // CHECK' %s | diff -u %t.ref - %}

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

func.func @threshold(%l: tensor<?x4xf32>) {
  %i, %w, %n = moe.router %l policy(#moe.threshold<threshold = 0.25>)
      : tensor<?x4xf32> -> tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>
  %ic = tensor.cast %i : tensor<?x4xi32> to tensor<?x?xi32>
  %wc = tensor.cast %w : tensor<?x4xf32> to tensor<?x?xf32>
  call @print(%ic, %wc, %n) : (tensor<?x?xi32>, tensor<?x?xf32>, tensor<?xi32>) -> ()
  return
}

func.func @threshold_all(%l: tensor<?x4xf32>) {
  %i, %w, %n = moe.router %l policy(#moe.threshold<threshold = 0.2>)
      : tensor<?x4xf32> -> tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>
  %ic = tensor.cast %i : tensor<?x4xi32> to tensor<?x?xi32>
  %wc = tensor.cast %w : tensor<?x4xf32> to tensor<?x?xf32>
  call @print(%ic, %wc, %n) : (tensor<?x?xi32>, tensor<?x?xf32>, tensor<?xi32>) -> ()
  return
}

func.func @threshold_normalized(%l: tensor<?x4xf32>) {
  %i, %w, %n = moe.router %l policy(#moe.threshold<threshold = 0.1, normalize = true>)
      : tensor<?x4xf32> -> tensor<?x4xi32>, tensor<?x4xf32>, tensor<?xi32>
  %ic = tensor.cast %i : tensor<?x4xi32> to tensor<?x?xi32>
  %wc = tensor.cast %w : tensor<?x4xf32> to tensor<?x?xf32>
  call @print(%ic, %wc, %n) : (tensor<?x?xi32>, tensor<?x?xf32>, tensor<?xi32>) -> ()
  return
}

func.func @threshold_capped(%l: tensor<?x4xf32>) {
  %i, %w, %n = moe.router %l policy(#moe.threshold<threshold = 0.2, max_experts = 2>)
      : tensor<?x4xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>
  %ic = tensor.cast %i : tensor<?x2xi32> to tensor<?x?xi32>
  %wc = tensor.cast %w : tensor<?x2xf32> to tensor<?x?xf32>
  call @print(%ic, %wc, %n) : (tensor<?x?xi32>, tensor<?x?xf32>, tensor<?xi32>) -> ()
  return
}

func.func @threshold_single(%l: tensor<?x4xf32>) {
  %i, %w, %n = moe.router %l policy(#moe.threshold<threshold = 0.5, max_experts = 1>)
      : tensor<?x4xf32> -> tensor<?x1xi32>, tensor<?x1xf32>, tensor<?xi32>
  %ic = tensor.cast %i : tensor<?x1xi32> to tensor<?x?xi32>
  %wc = tensor.cast %w : tensor<?x1xf32> to tensor<?x?xf32>
  call @print(%ic, %wc, %n) : (tensor<?x?xi32>, tensor<?x?xf32>, tensor<?xi32>) -> ()
  return
}

func.func @main() {
  %l0 = arith.constant dense<[[2.0, 1.0, 0.5, -1.0], [1.0, 1.0, 1.0, 1.0],
                              [0.0, 3.0, 3.0, 0.0], [-2.0, 0.0, 4.0, 0.5],
                              [0.1, 0.0, 0.2, -0.1]]> : tensor<5x4xf32>
  %l = tensor.cast %l0 : tensor<5x4xf32> to tensor<?x4xf32>

  // The boundary is strict: token 1's experts all have exactly 0.25, so none
  // passes and it keeps the first of the tie, expert 0. Token 4 keeps two.
  call @threshold(%l) : (tensor<?x4xf32>) -> ()
  // CHECK: sizes = [5, 4]
  // CHECK-NEXT: [0, -1, -1, -1]
  // CHECK-NEXT: [0, -1, -1, -1]
  // CHECK-NEXT: [1, 2, -1, -1]
  // CHECK-NEXT: [2, -1, -1, -1]
  // CHECK-NEXT: [2, 0, -1, -1]
  // CHECK: sizes = [5, 4]
  // CHECK-NEXT: [0.60946, 0, 0, 0]
  // CHECK-NEXT: [0.25, 0, 0, 0]
  // CHECK-NEXT: [0.476287, 0.476287, 0, 0]
  // CHECK-NEXT: [0.951482, 0, 0, 0]
  // CHECK-NEXT: [0.288651, 0.261183, 0, 0]
  // CHECK: sizes = [5]
  // CHECK-NEXT: [1, 1, 2, 1, 2]

  // Tokens 1 and 4 keep every expert.
  call @threshold_all(%l) : (tensor<?x4xf32>) -> ()
  // CHECK: sizes = [5, 4]
  // CHECK-NEXT: [0, 1, -1, -1]
  // CHECK-NEXT: [0, 1, 2, 3]
  // CHECK-NEXT: [1, 2, -1, -1]
  // CHECK-NEXT: [2, -1, -1, -1]
  // CHECK-NEXT: [2, 0, 1, 3]
  // CHECK: sizes = [5, 4]
  // CHECK-NEXT: [0.60946, 0.224208, 0, 0]
  // CHECK-NEXT: [0.25, 0.25, 0.25, 0.25]
  // CHECK-NEXT: [0.476287, 0.476287, 0, 0]
  // CHECK-NEXT: [0.951482, 0, 0, 0]
  // CHECK-NEXT: [0.288651, 0.261183, 0.236328, 0.213838]
  // CHECK: sizes = [5]
  // CHECK-NEXT: [2, 4, 2, 1, 4]

  // The kept weights renormalised to sum 1.
  call @threshold_normalized(%l) : (tensor<?x4xf32>) -> ()
  // CHECK: sizes = [5, 4]
  // CHECK-NEXT: [0, 1, 2, -1]
  // CHECK-NEXT: [0, 1, 2, 3]
  // CHECK-NEXT: [1, 2, -1, -1]
  // CHECK-NEXT: [2, -1, -1, -1]
  // CHECK-NEXT: [2, 0, 1, 3]
  // CHECK: sizes = [5, 4]
  // CHECK-NEXT: [0.628532, 0.231224, 0.140244, 0]
  // CHECK-NEXT: [0.25, 0.25, 0.25, 0.25]
  // CHECK-NEXT: [0.5, 0.5, 0, 0]
  // CHECK-NEXT: [1, 0, 0, 0]
  // CHECK-NEXT: [0.288651, 0.261183, 0.236328, 0.213838]
  // CHECK: sizes = [5]
  // CHECK-NEXT: [3, 4, 2, 1, 4]

  // The cap of 2 binds on token 1's four-way tie: the lower indices win.
  call @threshold_capped(%l) : (tensor<?x4xf32>) -> ()
  // CHECK: sizes = [5, 2]
  // CHECK-NEXT: [0, 1]
  // CHECK-NEXT: [0, 1]
  // CHECK-NEXT: [1, 2]
  // CHECK-NEXT: [2, -1]
  // CHECK-NEXT: [2, 0]
  // CHECK: sizes = [5, 2]
  // CHECK-NEXT: [0.60946, 0.224208]
  // CHECK-NEXT: [0.25, 0.25]
  // CHECK-NEXT: [0.476287, 0.476287]
  // CHECK-NEXT: [0.951482, 0]
  // CHECK-NEXT: [0.288651, 0.261183]
  // CHECK: sizes = [5]
  // CHECK-NEXT: [2, 2, 2, 1, 2]

  // K = 1: every token keeps its most probable expert, raw weight.
  call @threshold_single(%l) : (tensor<?x4xf32>) -> ()
  // CHECK: sizes = [5, 1]
  // CHECK-NEXT: [0]
  // CHECK-NEXT: [0]
  // CHECK-NEXT: [1]
  // CHECK-NEXT: [2]
  // CHECK-NEXT: [2]
  // CHECK: sizes = [5, 1]
  // CHECK-NEXT: [0.60946]
  // CHECK-NEXT: [0.25]
  // CHECK-NEXT: [0.476287]
  // CHECK-NEXT: [0.951482]
  // CHECK-NEXT: [0.288651]
  // CHECK: sizes = [5]
  // CHECK-NEXT: [1, 1, 1, 1, 1]
  return
}
