// MH-MoE sub-tokens: split [2, 8] into 4 heads ([8, 2], sub-token t*4 + j is
// x[t, 2j : 2j + 2]), scale each sub-token by its index + 1 as a stand-in for
// per-sub-token work, and merge back.
// REQUIRES: openmp
// RUN: moec-opt %s -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp \
// RUN: | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32>)

func.func @split_scale_merge(%x: tensor<?x8xf32>) -> (tensor<?x2xf32>, tensor<?x8xf32>) {
  %s = moe.split_tokens %x heads(4) : tensor<?x8xf32> -> tensor<?x2xf32>
  %c0 = arith.constant 0 : index
  %n = tensor.dim %s, %c0 : tensor<?x2xf32>
  %init = tensor.empty(%n) : tensor<?x2xf32>
  %scaled = linalg.generic {
      indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
      iterator_types = ["parallel", "parallel"]}
      ins(%s : tensor<?x2xf32>) outs(%init : tensor<?x2xf32>) {
  ^bb0(%v: f32, %o: f32):
    %i = linalg.index 0 : index
    %i1 = arith.addi %i, %c0 : index
    %ii = arith.index_cast %i1 : index to i32
    %f = arith.sitofp %ii : i32 to f32
    %one = arith.constant 1.0 : f32
    %k = arith.addf %f, %one : f32
    %r = arith.mulf %v, %k : f32
    linalg.yield %r : f32
  } -> tensor<?x2xf32>
  %m = moe.merge_tokens %scaled heads(4) : tensor<?x2xf32> -> tensor<?x8xf32>
  return %s, %m : tensor<?x2xf32>, tensor<?x8xf32>
}

func.func @main() {
  %x0 = arith.constant dense<[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
                              [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0]]> : tensor<2x8xf32>
  %x = tensor.cast %x0 : tensor<2x8xf32> to tensor<?x8xf32>
  %s, %m = call @split_scale_merge(%x) : (tensor<?x8xf32>) -> (tensor<?x2xf32>, tensor<?x8xf32>)
  %su = tensor.cast %s : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%su) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [8, 2]
  // CHECK-NEXT: [1, 2]
  // CHECK-NEXT: [3, 4]
  // CHECK-NEXT: [5, 6]
  // CHECK-NEXT: [7, 8]
  // CHECK-NEXT: [-1, -2]
  // CHECK-NEXT: [-3, -4]
  // CHECK-NEXT: [-5, -6]
  // CHECK-NEXT: [-7, -8]
  %mu = tensor.cast %m : tensor<?x8xf32> to tensor<*xf32>
  call @printMemrefF32(%mu) : (tensor<*xf32>) -> ()
  // CHECK: sizes = [2, 8]
  // CHECK-NEXT: [1, 2, 6, 8, 15, 18, 28, 32]
  // CHECK-NEXT: [-5, -10, -18, -24, -35, -42, -56, -64]
  return
}
