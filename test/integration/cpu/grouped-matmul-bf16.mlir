// bf16 operands, f32 accumulation, bf16 result: the skewed case of
// grouped-matmul-skewed.mlir, whose values are exact in bf16.
// REQUIRES: openmp
// RUN: moec-opt %s -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp \
// RUN: | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32>)

func.func @grouped(%x: tensor<?x4xbf16>, %w: tensor<4x3x4xbf16>,
                   %offsets: tensor<5xi32>) -> tensor<?x3xbf16> {
  %y = moe.grouped_matmul %x, %w offsets(%offsets)
      : (tensor<?x4xbf16>, tensor<4x3x4xbf16>, tensor<5xi32>) -> tensor<?x3xbf16>
  return %y : tensor<?x3xbf16>
}

func.func @main() {
  %x0 = arith.constant dense<[[3.0, 1.0, 1.0, 3.0], [1.0, 2.0, 2.0, -2.0],
                              [-3.0, -1.0, -2.0, 3.0], [3.0, -3.0, 0.0, 2.0],
                              [-3.0, 2.0, -3.0, 0.0], [2.0, -1.0, -1.0, -2.0]]> : tensor<6x4xbf16>
  %w = arith.constant dense<[[[1.0, -1.0, 2.0, 0.0], [0.0, 0.0, 0.5, 0.0], [0.0, 2.0, 1.5, 1.5]],
                             [[1.0, 0.5, -0.5, 2.0], [0.0, -1.5, 1.5, -1.5], [1.5, 0.5, -1.5, -2.0]],
                             [[0.0, -2.0, -1.5, 0.0], [2.0, 0.0, 1.5, 2.0], [1.5, 0.5, -0.5, 0.0]],
                             [[-1.0, 0.0, -0.5, -1.0], [2.0, -2.0, -2.0, -1.5], [2.0, 1.0, 1.5, -1.5]]]> : tensor<4x3x4xbf16>
  %offsets = arith.constant dense<[0, 0, 0, 6, 6]> : tensor<5xi32>
  %x = tensor.cast %x0 : tensor<6x4xbf16> to tensor<?x4xbf16>
  %y = call @grouped(%x, %w, %offsets)
      : (tensor<?x4xbf16>, tensor<4x3x4xbf16>, tensor<5xi32>) -> tensor<?x3xbf16>
  // Widen to f32 to print.
  %c0 = arith.constant 0 : index
  %n = tensor.dim %y, %c0 : tensor<?x3xbf16>
  %init = tensor.empty(%n) : tensor<?x3xf32>
  %wide = linalg.generic {
      indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
      iterator_types = ["parallel", "parallel"]}
      ins(%y : tensor<?x3xbf16>) outs(%init : tensor<?x3xf32>) {
  ^bb0(%v: bf16, %o: f32):
    %e = arith.extf %v : bf16 to f32
    linalg.yield %e : f32
  } -> tensor<?x3xf32>
  %u = tensor.cast %wide : tensor<?x3xf32> to tensor<*xf32>
  call @printMemrefF32(%u) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [6, 3]
  // CHECK-NEXT: [-3.5, 13.5, 4.5]
  // CHECK-NEXT: [-7, 1, 1.5]
  // CHECK-NEXT: [5, -3, -4]
  // CHECK-NEXT: [6, 10, 3]
  // CHECK-NEXT: [0.5, -10.5, -2]
  // CHECK-NEXT: [3.5, -1.5, 3]
  return
}
