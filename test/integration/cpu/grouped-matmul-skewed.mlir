// moe.grouped_matmul under extreme routing, executed on the CPU: every row
// in one group with the other groups empty, a single row, and no row at all.
// Expected values: NumPy, from the op semantics (exact in f32).
// REQUIRES: openmp
// RUN: moec-opt %s -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp \
// RUN: | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32>)

func.func @grouped(%x: tensor<?x4xf32>, %w: tensor<4x3x4xf32>,
                   %offsets: tensor<5xi32>) -> tensor<?x3xf32> {
  %y = moe.grouped_matmul %x, %w offsets(%offsets)
      : (tensor<?x4xf32>, tensor<4x3x4xf32>, tensor<5xi32>) -> tensor<?x3xf32>
  return %y : tensor<?x3xf32>
}

func.func @run(%x: tensor<?x4xf32>, %offsets: tensor<5xi32>) {
  %w = arith.constant dense<[[[1.0, -1.0, 2.0, 0.0], [0.0, 0.0, 0.5, 0.0], [0.0, 2.0, 1.5, 1.5]],
                             [[1.0, 0.5, -0.5, 2.0], [0.0, -1.5, 1.5, -1.5], [1.5, 0.5, -1.5, -2.0]],
                             [[0.0, -2.0, -1.5, 0.0], [2.0, 0.0, 1.5, 2.0], [1.5, 0.5, -0.5, 0.0]],
                             [[-1.0, 0.0, -0.5, -1.0], [2.0, -2.0, -2.0, -1.5], [2.0, 1.0, 1.5, -1.5]]]> : tensor<4x3x4xf32>
  %y = call @grouped(%x, %w, %offsets)
      : (tensor<?x4xf32>, tensor<4x3x4xf32>, tensor<5xi32>) -> tensor<?x3xf32>
  %u = tensor.cast %y : tensor<?x3xf32> to tensor<*xf32>
  call @printMemrefF32(%u) : (tensor<*xf32>) -> ()
  return
}

func.func @main() {
  %x0 = arith.constant dense<[[3.0, 1.0, 1.0, 3.0], [1.0, 2.0, 2.0, -2.0],
                              [-3.0, -1.0, -2.0, 3.0], [3.0, -3.0, 0.0, 2.0],
                              [-3.0, 2.0, -3.0, 0.0], [2.0, -1.0, -1.0, -2.0]]> : tensor<6x4xf32>
  %x = tensor.cast %x0 : tensor<6x4xf32> to tensor<?x4xf32>

  // All six rows go to expert 2; experts 0, 1 and 3 receive nothing.
  %skewed = arith.constant dense<[0, 0, 0, 6, 6]> : tensor<5xi32>
  call @run(%x, %skewed) : (tensor<?x4xf32>, tensor<5xi32>) -> ()
  // CHECK: sizes = [6, 3]
  // CHECK-NEXT: [-3.5, 13.5, 4.5]
  // CHECK-NEXT: [-7, 1, 1.5]
  // CHECK-NEXT: [5, -3, -4]
  // CHECK-NEXT: [6, 10, 3]
  // CHECK-NEXT: [0.5, -10.5, -2]
  // CHECK-NEXT: [3.5, -1.5, 3]

  // One token, routed to the last expert.
  %one0 = tensor.extract_slice %x0[0, 0] [1, 4] [1, 1] : tensor<6x4xf32> to tensor<1x4xf32>
  %one = tensor.cast %one0 : tensor<1x4xf32> to tensor<?x4xf32>
  %last = arith.constant dense<[0, 0, 0, 0, 1]> : tensor<5xi32>
  call @run(%one, %last) : (tensor<?x4xf32>, tensor<5xi32>) -> ()
  // CHECK: sizes = [1, 3]
  // CHECK-NEXT: [-6.5, -2.5, 4]

  // No row at all.
  %none0 = tensor.empty() : tensor<0x4xf32>
  %none = tensor.cast %none0 : tensor<0x4xf32> to tensor<?x4xf32>
  %zeros = arith.constant dense<0> : tensor<5xi32>
  call @run(%none, %zeros) : (tensor<?x4xf32>, tensor<5xi32>) -> ()
  // CHECK: sizes = [0, 3]
  return
}
