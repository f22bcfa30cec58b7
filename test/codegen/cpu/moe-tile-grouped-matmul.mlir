// RUN: moec-opt %s -moe-tile-grouped-matmul="tile-rows=32 tile-cols=8 micro-rows=2 micro-cols=2 vector-width=8" -split-input-file | FileCheck %s
// RUN: moec-opt %s -moe-tile-grouped-matmul="tile-rows=32 tile-cols=8 tile-k=8 micro-rows=2 micro-cols=2 vector-width=8" -split-input-file | FileCheck %s --check-prefix=CHUNK
// RUN: moec-opt %s -moe-tile-grouped-matmul="micro-rows=2 micro-cols=2 vector-width=8 bf16-dot=true" -split-input-file | FileCheck %s --check-prefix=DOT
// RUN: moec-opt %s -moe-tile-grouped-matmul="kernel=outer tile-rows=32 tile-cols=8 micro-rows=2 micro-cols=8 vector-width=4" -split-input-file | FileCheck %s --check-prefix=OUTER
// RUN: not moec-opt %s -moe-tile-grouped-matmul="micro-rows=0" -split-input-file 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not moec-opt %s -moe-tile-grouped-matmul="kernel=inner" -split-input-file 2>&1 | FileCheck %s --check-prefix=BAD-KIND

// BAD: error: cpu_matmul_kernel needs micro_rows >= 1, got 0
// BAD-KIND: error: moe-tile-grouped-matmul: kernel must be dot or outer, got 'inner'

// The outer kernel packs the K chunk (here all of K = 20) of the tile's 8
// weight rows into a [1, 20, 8] panel along N: squares of 4 rows x 4 along
// K, transposed by two levels of shuffles; then each K step broadcasts one
// element of each of the block's 2 rows and multiplies it with the panel
// row's 2 vectors (2 x 2 accumulators of 4 lanes: a block of 2 x 8).
// OUTER-LABEL: func @plain
// OUTER: scf.forall
// OUTER: %[[PANEL:.*]] = tensor.empty() : tensor<1x20x8xf32>
// OUTER: scf.for %{{.*}} = %c0{{.*}} to %{{.*}} step %c4{{.*}} iter_args(%{{.*}} = %[[PANEL]])
// OUTER: scf.for %{{.*}} = %c0{{.*}} to %c20{{.*}} step %c4
// OUTER-COUNT-4: vector.transfer_read {{.*}} {in_bounds = [true]} : tensor<3x12x20xf32>, vector<4xf32>
// OUTER: vector.shuffle %{{.*}}, %{{.*}} [0, 1, 4, 5] : vector<4xf32>, vector<4xf32>
// OUTER: vector.shuffle %{{.*}}, %{{.*}} [2, 3, 6, 7] : vector<4xf32>, vector<4xf32>
// OUTER: vector.shuffle %{{.*}}, %{{.*}} [0, 4, 2, 6] : vector<4xf32>, vector<4xf32>
// OUTER: vector.shuffle %{{.*}}, %{{.*}} [1, 5, 3, 7] : vector<4xf32>, vector<4xf32>
// OUTER-COUNT-4: vector.transfer_write {{.*}} : vector<4xf32>, tensor<1x20x8xf32>
// OUTER: scf.for %{{.*}} step %c8{{.*}} iter_args
// OUTER: scf.for %{{.*}} step %c2{{.*}} iter_args
// OUTER: scf.for %[[K:.*]] = %c0{{.*}} to %c20{{.*}} step %c1{{.*}} iter_args({{.*}}) -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>)
// OUTER-COUNT-2: vector.transfer_read %{{.*}}[%{{.*}}, %[[K]], %{{.*}}]{{.*}} : tensor<1x20x8xf32>, vector<4xf32>
// OUTER: tensor.extract %{{.*}} : tensor<?x20xf32>
// OUTER: vector.broadcast %{{.*}} : f32 to vector<4xf32>
// OUTER-COUNT-2: arith.mulf {{.*}} fastmath<contract> : vector<4xf32>
// OUTER: tensor.extract %{{.*}} : tensor<?x20xf32>
// OUTER: vector.broadcast %{{.*}} : f32 to vector<4xf32>
// OUTER-COUNT-2: arith.mulf {{.*}} fastmath<contract> : vector<4xf32>
// OUTER: scf.yield
// The block's sums, row by row, then one store of 8 columns per row.
// OUTER-COUNT-4: vector.insert_strided_slice {{.*}} : vector<4xf32> into vector<16xf32>
// OUTER: vector.transfer_write {{.*}} : vector<8xf32>, tensor<?x?xf32>
// OUTER: scf.forall.in_parallel

// K = 20 in chunks of 8: the first chunk writes the blocks' partial sums to
// an f32 scratch tile, a loop over the middle chunks adds to it, and the
// last chunk (here only the masked tail past K = 16) adds it to its own sums
// before the epilogue and the store into the result.
// bf16-dot leaves f32 operands to contractible multiply-adds.
// DOT-LABEL: func @plain
// DOT: arith.mulf {{.*}} fastmath<contract>
// DOT-NOT: x86vector

// CHUNK-LABEL: func @plain
// CHUNK: scf.forall
// CHUNK: %[[SCRATCH:.*]] = tensor.empty() : tensor<1x32x8xf32>
// CHUNK: %[[FIRST:.*]] = scf.for {{.*}} iter_args(%{{.*}} = %[[SCRATCH]]) -> (tensor<1x32x8xf32>)
// CHUNK: scf.for %{{.*}} = %c0{{.*}} to %c8{{.*}} step %c8
// CHUNK: vector.transfer_write {{.*}} : vector<2xf32>, tensor<1x32x8xf32>
// CHUNK: %[[MIDDLE:.*]] = scf.for %[[K0:.*]] = %c8{{.*}} to %c16{{.*}} step %c8{{.*}} iter_args(%{{.*}} = %[[FIRST]]) -> (tensor<1x32x8xf32>)
// CHUNK: %[[K1:.*]] = arith.addi %[[K0]], %c8
// CHUNK: scf.for %{{.*}} = %[[K0]] to %[[K1]] step %c8
// CHUNK: vector.transfer_read {{.*}} : tensor<1x32x8xf32>, vector<2xf32>
// CHUNK: vector.transfer_write {{.*}} : vector<2xf32>, tensor<1x32x8xf32>
// CHUNK: vector.transfer_read %{{.*}}[%{{.*}}, %c16{{.*}}], %{{.*}} : tensor<?x20xf32>, vector<8xf32>
// CHUNK: vector.transfer_read %[[MIDDLE]]{{.*}} : tensor<1x32x8xf32>, vector<2xf32>
// CHUNK: arith.addf
// CHUNK: vector.transfer_write {{.*}} : vector<2xf32>, tensor<?x?xf32>
// CHUNK: scf.forall.in_parallel

// CHECK-LABEL: func @plain
// CHECK-SAME: (%[[X:.*]]: tensor<?x20xf32>, %[[W:.*]]: tensor<3x12x20xf32>, %[[OFF:.*]]: tensor<4xi32>)
func.func @plain(%x: tensor<?x20xf32>, %w: tensor<3x12x20xf32>,
                 %off: tensor<4xi32>) -> tensor<?x12xf32> {
  // The work: ceil(12 / 8) column tiles times the row tiles of the schedule.
  // CHECK: %[[TILES:.*]] = moe.tile_schedule %[[OFF]] tile_rows(32) : tensor<4xi32> -> tensor<?x3xi32>
  // CHECK: %[[NUM:.*]] = tensor.dim %[[TILES]]
  // CHECK: %[[INIT:.*]] = tensor.empty(%{{.*}}) : tensor<?x12xf32>
  // CHECK: %[[Y:.*]] = scf.forall (%{{.*}}, %[[T:.*]]) in (2, %[[NUM]]) shared_outs(%[[O:.*]] = %[[INIT]]) -> (tensor<?x12xf32>)
  // (group, first row, rows) of the tile, clamped to the operands.
  // CHECK: tensor.extract %[[TILES]][%[[T]], %{{.*}}]
  // CHECK: %[[G:.*]] = arith.minui %{{.*}}, %c2
  // CHECK: %[[SLICE:.*]] = tensor.extract_slice %[[O]]
  // Register blocks: columns (2 per block), then rows (2 per block).
  // CHECK: %[[BLOCK:.*]] = scf.for %{{.*}} step %c2{{.*}} iter_args(%{{.*}} = %[[SLICE]])
  // CHECK: scf.for %{{.*}} step %c2{{.*}} iter_args
  // Two full vector steps along K, 2 x 2 accumulators...
  // CHECK: scf.for %{{.*}} = %c0{{.*}} to %c16{{.*}} step %c8{{.*}} iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
  // CHECK-COUNT-2: vector.transfer_read %[[X]]{{.*}} {in_bounds = [true]} : tensor<?x20xf32>, vector<8xf32>
  // CHECK-COUNT-2: vector.transfer_read %[[W]][%[[G]], {{.*}} {in_bounds = [true]} : tensor<3x12x20xf32>, vector<8xf32>
  // CHECK-COUNT-4: arith.addf {{.*}} fastmath<contract> : vector<8xf32>
  // CHECK: scf.yield
  // ...then a masked step over the last 4 of K = 20.
  // CHECK: vector.transfer_read %[[X]][%{{.*}}, %c16{{.*}}], %{{.*}} : tensor<?x20xf32>, vector<8xf32>
  // CHECK-COUNT-4: arith.addf {{.*}} fastmath<contract> : vector<8xf32>
  // The block's 4 horizontal sums by a shuffle tree (8 lanes: 3 levels)...
  // CHECK: %[[L1:.*]] = vector.shuffle %{{.*}}, %{{.*}} [0, 1, 2, 3, 8, 9, 10, 11] : vector<8xf32>, vector<8xf32>
  // CHECK: vector.shuffle %{{.*}}, %{{.*}} [4, 5, 6, 7, 12, 13, 14, 15]
  // CHECK: arith.addf
  // CHECK: vector.shuffle %{{.*}}, %{{.*}} [0, 1, 4, 5, 8, 9, 12, 13]
  // CHECK: vector.shuffle %{{.*}}, %{{.*}} [0, 2, 4, 6, 8, 10, 12, 14]
  // CHECK: %[[SUMS:.*]] = arith.addf
  // CHECK: %[[BLOCK_SUMS:.*]] = vector.extract_strided_slice %[[SUMS]] {offsets = [0], sizes = [4], strides = [1]}
  // ...then one store per row of its 2 columns, if the row is in the tile.
  // CHECK: %[[ROW0:.*]] = vector.extract_strided_slice %[[BLOCK_SUMS]] {offsets = [0], sizes = [2], strides = [1]}
  // CHECK: scf.if
  // CHECK: vector.transfer_write %[[ROW0]], {{.*}} : vector<2xf32>, tensor<?x?xf32>
  // CHECK: vector.extract_strided_slice %[[BLOCK_SUMS]] {offsets = [2], sizes = [2], strides = [1]}
  // CHECK: scf.if
  // CHECK: vector.transfer_write {{.*}} : vector<2xf32>, tensor<?x?xf32>
  // CHECK: scf.forall.in_parallel
  // CHECK: tensor.parallel_insert_slice %[[BLOCK]] into %[[O]]
  // CHECK: return %[[Y]]
  %y = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x20xf32>, tensor<3x12x20xf32>, tensor<4xi32>) -> tensor<?x12xf32>
  return %y : tensor<?x12xf32>
}

// -----

// With bf16-dot, bf16 operands go to the AVX-512 BF16 dot product as they
// are: 16 bf16 elements (pairs for 8 f32 lanes) per step, K = 16 in one.
// DOT-LABEL: func @swiglu_bf16
// DOT: scf.for %{{.*}} = %c0{{.*}} to %c16{{.*}} step %c16{{.*}} iter_args
// DOT-NOT: arith.extf
// DOT: vector.transfer_read {{.*}} : tensor<?x16xbf16>, vector<16xbf16>
// DOT: vector.transfer_read {{.*}} : tensor<3x12x16xbf16>, vector<16xbf16>
// DOT-COUNT-4: x86vector.avx512.dot %{{.*}}, %{{.*}}, %{{.*}} : vector<16xbf16> -> vector<8xf32>
// DOT-NOT: arith.mulf
// DOT: scf.yield

// CHECK-LABEL: func @swiglu_bf16
// CHECK-SAME: (%[[X:.*]]: tensor<?x16xbf16>, %[[W:.*]]: tensor<3x12x16xbf16>, %[[U:.*]]: tensor<3x12x16xbf16>, %{{.*}}: tensor<4xi32>, %[[S:.*]]: tensor<?xf32>)
func.func @swiglu_bf16(%x: tensor<?x16xbf16>, %w: tensor<3x12x16xbf16>,
                       %u: tensor<3x12x16xbf16>, %off: tensor<4xi32>,
                       %s: tensor<?xf32>) -> tensor<?x12xbf16> {
  // Gate and up share each pass over K: micro-cols=2 gives one column per
  // weight, so 2 rows x 1 column x 2 weights accumulators in f32.
  // CHECK: scf.for %{{.*}} step %c1{{.*}} iter_args
  // CHECK: scf.for %{{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
  // CHECK: vector.transfer_read %[[X]]{{.*}} : tensor<?x16xbf16>, vector<8xbf16>
  // CHECK: arith.extf {{.*}} : vector<8xbf16> to vector<8xf32>
  // CHECK: vector.transfer_read %[[W]]
  // CHECK: vector.transfer_read %[[U]]
  // CHECK-COUNT-4: arith.addf {{.*}} fastmath<contract> : vector<8xf32>
  // K = 16 needs no masked step.
  // CHECK-NOT: vector.transfer_read
  // Epilogue in registers on the whole block (gate sums in lanes 0-1, up
  // sums in 2-3): silu(gate) * up, with exp a vector polynomial rather than
  // a libm call per lane, the row scales, bf16, then a store per row.
  // CHECK-DAG: %[[GATE:.*]] = vector.extract_strided_slice %{{.*}} {offsets = [0], sizes = [2], strides = [1]} : vector<8xf32> to vector<2xf32>
  // CHECK-DAG: %[[UP:.*]] = vector.extract_strided_slice %{{.*}} {offsets = [2], sizes = [2], strides = [1]} : vector<8xf32> to vector<2xf32>
  // CHECK-NOT: math.exp
  // CHECK: math.floor {{.*}} : vector<2xf32>
  // CHECK-NOT: math.fma
  // CHECK: arith.mulf {{.*}} fastmath<contract> : vector<2xf32>
  // CHECK-NOT: math.fma
  // CHECK: arith.divf %[[GATE]]
  // CHECK: arith.mulf %{{.*}}, %[[UP]]
  // CHECK: tensor.extract %[[S]]
  // CHECK: tensor.extract %[[S]]
  // CHECK: vector.from_elements {{.*}} : vector<2xf32>
  // CHECK: arith.mulf
  // CHECK: arith.truncf {{.*}} : vector<2xf32> to vector<2xbf16>
  // CHECK: vector.transfer_write {{.*}} : vector<1xbf16>, tensor<?x?xbf16>
  // CHECK: vector.transfer_write {{.*}} : vector<1xbf16>, tensor<?x?xbf16>
  %y = moe.grouped_matmul %x, %w, %u offsets(%off) scale(%s) epilogue(swiglu)
      : (tensor<?x16xbf16>, tensor<3x12x16xbf16>, tensor<3x12x16xbf16>,
         tensor<4xi32>, tensor<?xf32>) -> tensor<?x12xbf16>
  return %y : tensor<?x12xbf16>
}

// -----

// A dynamic weight shape is left to convert-moe-to-linalg.
// CHECK-LABEL: func @dynamic_weight
// CHECK-NOT: scf.forall
// CHECK: moe.grouped_matmul
func.func @dynamic_weight(%x: tensor<?x?xf32>, %w: tensor<3x?x?xf32>,
                          %off: tensor<4xi32>) -> tensor<?x?xf32> {
  %y = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x?xf32>, tensor<3x?x?xf32>, tensor<4xi32>) -> tensor<?x?xf32>
  return %y : tensor<?x?xf32>
}

// -----

// Static rows: the loop's result has the input's static shape and is cast,
// after the loop, to the op's more dynamic result type.
// CHECK-LABEL: func @static_rows
// CHECK: %[[Y:.*]] = scf.forall {{.*}} -> (tensor<6x5xf32>)
// CHECK: scf.forall.in_parallel
// CHECK-NOT: tensor.cast
// CHECK: }
// CHECK: %[[CAST:.*]] = tensor.cast %[[Y]] : tensor<6x5xf32> to tensor<?x5xf32>
// CHECK: return %[[CAST]]
func.func @static_rows(%x: tensor<6x20xf32>, %w: tensor<3x5x20xf32>,
                       %off: tensor<4xi32>) -> tensor<?x5xf32> {
  %y = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<6x20xf32>, tensor<3x5x20xf32>, tensor<4xi32>) -> tensor<?x5xf32>
  return %y : tensor<?x5xf32>
}
