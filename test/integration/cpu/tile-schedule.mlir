// moe.tile_schedule executed on the CPU: balanced routing, 90% of the rows
// to one expert (its tiles as equal as possible, also when they cannot all
// be equal), empty experts, fewer rows than a tile, and no row at all.
// Expected tiles: tile_schedule() in test/utils/grouped_gemm_reference.py,
// written from the op semantics. The tile count stays within
// ceil(R / tile_rows) + G.
// REQUIRES: openmp
// RUN: moec-opt %s -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp \
// RUN: | FileCheck %s

func.func private @printMemrefI32(tensor<*xi32>)

func.func @print(%tiles: tensor<?x3xi32>) {
  %u = tensor.cast %tiles : tensor<?x3xi32> to tensor<*xi32>
  call @printMemrefI32(%u) : (tensor<*xi32>) -> ()
  return
}

func.func @schedule8(%offsets: tensor<5xi32>) {
  %tiles = moe.tile_schedule %offsets tile_rows(8) : tensor<5xi32> -> tensor<?x3xi32>
  call @print(%tiles) : (tensor<?x3xi32>) -> ()
  return
}

func.func @schedule16(%offsets: tensor<5xi32>) {
  %tiles = moe.tile_schedule %offsets tile_rows(16) : tensor<5xi32> -> tensor<?x3xi32>
  call @print(%tiles) : (tensor<?x3xi32>) -> ()
  return
}

func.func @main() {
  // Balanced: 8 rows per expert, one full tile each.
  %balanced = arith.constant dense<[0, 8, 16, 24, 32]> : tensor<5xi32>
  call @schedule8(%balanced) : (tensor<5xi32>) -> ()
  // CHECK: sizes = [4, 3]
  // CHECK-NEXT: [0, 0, 8]
  // CHECK-NEXT: [1, 8, 8]
  // CHECK-NEXT: [2, 16, 8]
  // CHECK-NEXT: [3, 24, 8]

  // 90 of 100 rows to expert 0 (six tiles of 15), expert 2 empty.
  %skewed = arith.constant dense<[0, 90, 94, 94, 100]> : tensor<5xi32>
  call @schedule16(%skewed) : (tensor<5xi32>) -> ()
  // CHECK: sizes = [8, 3]
  // CHECK-NEXT: [0, 0, 15]
  // CHECK-NEXT: [0, 15, 15]
  // CHECK-NEXT: [0, 30, 15]
  // CHECK-NEXT: [0, 45, 15]
  // CHECK-NEXT: [0, 60, 15]
  // CHECK-NEXT: [0, 75, 15]
  // CHECK-NEXT: [1, 90, 4]
  // CHECK-NEXT: [3, 94, 6]

  // 100 rows in tiles of at most 16: seven tiles, the first two of 15 and
  // five of 14.
  %uneven = arith.constant dense<[0, 100, 100, 100, 100]> : tensor<5xi32>
  call @schedule16(%uneven) : (tensor<5xi32>) -> ()
  // CHECK: sizes = [7, 3]
  // CHECK-NEXT: [0, 0, 15]
  // CHECK-NEXT: [0, 15, 15]
  // CHECK-NEXT: [0, 30, 14]
  // CHECK-NEXT: [0, 44, 14]
  // CHECK-NEXT: [0, 58, 14]
  // CHECK-NEXT: [0, 72, 14]
  // CHECK-NEXT: [0, 86, 14]

  // Three rows, fewer than a tile: one short tile per non-empty expert.
  %small = arith.constant dense<[0, 1, 1, 3, 3]> : tensor<5xi32>
  call @schedule16(%small) : (tensor<5xi32>) -> ()
  // CHECK: sizes = [2, 3]
  // CHECK-NEXT: [0, 0, 1]
  // CHECK-NEXT: [2, 1, 2]

  // No row at all: no tile.
  %none = arith.constant dense<0> : tensor<5xi32>
  call @schedule16(%none) : (tensor<5xi32>) -> ()
  // CHECK: sizes = [0, 3]
  return
}
