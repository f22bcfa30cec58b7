// moe.combine where one token uses every expert (K = E = 3), one token a
// single expert, and one token none. Expected values: NumPy.
// REQUIRES: openmp
// RUN: moec-opt %s -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp \
// RUN: | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32>)

func.func @combine(%rows: tensor<?x2xf32>, %weights: tensor<?x3xf32>,
                   %slots: tensor<?x3xi32>, %counts: tensor<?xi32>)
    -> tensor<?x2xf32> {
  %y = moe.combine %rows, %weights, %slots, %counts
      : (tensor<?x2xf32>, tensor<?x3xf32>, tensor<?x3xi32>, tensor<?xi32>)
      -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

func.func @main() {
  %rows0 = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [-1.0, 1.0]]> : tensor<4x2xf32>
  // Unused slots carry garbage weights: they must not be read.
  %weights0 = arith.constant dense<[[0.5, 0.25, 0.25], [1.0, 7.0, 7.0], [7.0, 7.0, 7.0]]> : tensor<3x3xf32>
  %slots0 = arith.constant dense<[[0, 1, 2], [3, -1, -1], [-1, -1, -1]]> : tensor<3x3xi32>
  %counts0 = arith.constant dense<[3, 1, 0]> : tensor<3xi32>
  %rows = tensor.cast %rows0 : tensor<4x2xf32> to tensor<?x2xf32>
  %weights = tensor.cast %weights0 : tensor<3x3xf32> to tensor<?x3xf32>
  %slots = tensor.cast %slots0 : tensor<3x3xi32> to tensor<?x3xi32>
  %counts = tensor.cast %counts0 : tensor<3xi32> to tensor<?xi32>
  %y = call @combine(%rows, %weights, %slots, %counts)
      : (tensor<?x2xf32>, tensor<?x3xf32>, tensor<?x3xi32>, tensor<?xi32>) -> tensor<?x2xf32>
  %u = tensor.cast %y : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [3, 2]
  // CHECK-NEXT: [2.5, 3.5]
  // CHECK-NEXT: [-1, 1]
  // CHECK-NEXT: [0, 0]
  return
}
