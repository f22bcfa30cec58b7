// RUN: moec-opt %s -split-input-file -moe-tile-attention -canonicalize | FileCheck %s
// RUN: not moec-opt %s -split-input-file -moe-tile-attention="vector-width=6" 2>&1 | FileCheck %s --check-prefix=BAD-OPTIONS

// A sliding window, bf16 operands, 2 heads x 8 positions = 16 query rows
// (2 vectors of 8 lanes) per work item, key blocks of 32.
// CHECK-LABEL: func @sliding
// CHECK-SAME: (%[[Q:.*]]: tensor<?x?x4x8xbf16>, %[[K:.*]]: tensor<?x?x2x8xbf16>, %[[V:.*]]: tensor<?x?x2x8xbf16>)
// CHECK-DAG: %[[NEG_INF:.*]] = arith.constant dense<0xFF800000> : vector<8xf32>
// CHECK-DAG: %[[T:.*]] = tensor.dim %[[Q]], %c1
// CHECK: %[[BLOCKS:.*]] = arith.ceildivui %[[T]], %c8
// CHECK: scf.forall (%[[B:.*]], %[[BLK:.*]], %[[STEP:.*]]) in (%{{.*}}, %[[BLOCKS]], 2) shared_outs(%[[OUT:.*]] = %{{.*}})
// The block order alternates short and long causal rows.
// CHECK: %[[IDX:.*]] = arith.select
// CHECK: %[[Q0:.*]] = arith.muli %[[IDX]], %c8
// CHECK: %[[H0:.*]] = arith.muli %[[STEP]], %c2
// CHECK: %[[KVH:.*]] = arith.divui %[[H0]], %c2
// CHECK: %[[VALID:.*]] = arith.minui %{{.*}}, %c8
// CHECK: %[[END:.*]] = arith.addi %[[Q0]], %[[VALID]]
// The queries, widened and transposed once: [Dh, rows].
// CHECK: %[[QT:.*]] = scf.for {{.*}} -> (tensor<8x16xf32>)
// CHECK: tensor.extract %[[Q]]
// CHECK: arith.extf %{{.*}} : bf16 to f32
// CHECK: tensor.insert
// The keys of the item start at its first row's window: max(q0 - 15, 0).
// CHECK: %[[FIRST:.*]] = arith.subi %[[Q0]], %c15
// CHECK: %[[LO:.*]] = arith.maxsi %[[FIRST]], %c0
// CHECK: scf.for %[[J0:.*]] = %[[LO]] to %[[END]] step %c32 iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, tensor<8x16xf32>, tensor<32x16xf32>)
// Scores: register blocks of 4 keys x 2 row vectors, K along Dh; each key
// element is broadcast against the transposed queries' row vectors.
// CHECK: scf.for %{{.*}} = %c0 to %c32 step %c4
// CHECK: scf.for %[[D:.*]] = %c0 to %c8 step %c1 iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: vector.transfer_read %[[QT]][%[[D]], %c0]
// CHECK: vector.transfer_read %[[QT]][%[[D]], %c8]
// CHECK: %[[KEY:.*]] = tensor.extract %[[K]][%[[B]], %{{.*}}, %[[KVH]], %[[D]]]
// CHECK: %[[KEYF:.*]] = arith.extf %[[KEY]]
// CHECK: vector.broadcast %[[KEYF]] : f32 to vector<8xf32>
// CHECK: arith.mulf {{.*}} fastmath<contract> : vector<8xf32>
// CHECK: arith.addf {{.*}} fastmath<contract> : vector<8xf32>
// Scaled by 1/sqrt(8), masked to lo <= j <= p per row, running max.
// CHECK: arith.mulf %{{.*}}, %cst{{.*}} : vector<8xf32>
// CHECK: arith.cmpi sle
// CHECK: arith.cmpi sle
// CHECK: %[[KEEP:.*]] = arith.andi
// CHECK: arith.select %[[KEEP]], %{{.*}}, %[[NEG_INF]]
// CHECK: arith.maximumf
// A row with every key so far masked subtracts 0; the exps are polynomials.
// CHECK: %[[M:.*]] = arith.maximumf %{{.*}}, %{{.*}}#1
// CHECK: %[[EMPTY:.*]] = arith.cmpf oeq, %[[M]], %[[NEG_INF]]
// CHECK: arith.select %[[EMPTY]]
// CHECK-NOT: math.exp
// CHECK: math.floor
// Values: the accumulators rescaled once per key block, then blocks of 4
// head dimensions x 2 row vectors over the block's keys before hi.
// CHECK: scf.for %{{.*}} = %c0 to %c8 step %c1
// CHECK: vector.transfer_read
// CHECK: arith.mulf %{{.*}} : vector<8xf32>
// CHECK: vector.transfer_write
// CHECK: %[[COUNT:.*]] = arith.minui %{{.*}}, %c32
// CHECK: scf.for %{{.*}} = %c0 to %c8 step %c4
// CHECK: scf.for %[[J:.*]] = %c0 to %[[COUNT]] step %c1 iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: tensor.extract %[[V]][%[[B]], %{{.*}}, %[[KVH]], %{{.*}}]
// The rows are normalised and narrowed into the item's slice of the output.
// CHECK: arith.divf
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: scf.forall.in_parallel
// CHECK: tensor.parallel_insert_slice %{{.*}} into %[[OUT]][%[[B]], %[[Q0]], %[[H0]], 0] [1, %[[VALID]], 2, 8]
// CHECK-NOT: math.exp
func.func @sliding(%q: tensor<?x?x4x8xbf16>, %k: tensor<?x?x2x8xbf16>, %v: tensor<?x?x2x8xbf16>) -> tensor<?x?x4x8xbf16> {
  %o = moe.attention %q, %k, %v window(16) {moe.kernel = #moe.attention_kernel<heads_per_step = 2, query_block = 8, key_block = 32, micro_rows = 4, vector_width = 8>}
      : (tensor<?x?x4x8xbf16>, tensor<?x?x2x8xbf16>, tensor<?x?x2x8xbf16>) -> tensor<?x?x4x8xbf16>
  return %o : tensor<?x?x4x8xbf16>
}

// -----

// GMHA: local keys from the group start (or the window), then the means of
// the complete groups before the last row's group, 0 .. (q0 + valid - 1) / G,
// in the same softmax. Without a moe.kernel the pass options apply (one
// head, 16 positions, 8 lanes).
// CHECK-LABEL: func @grouped
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]
// CHECK: %[[MEANS:.*]]:2 = linalg.generic
// CHECK: scf.forall (%{{.*}}, %{{.*}}) in (%{{.*}}, 4)
// CHECK: %[[Q0:.*]] = arith.muli %{{.*}}, %c16
// CHECK: %[[LAST:.*]] = arith.subi %{{.*}}, %c1
// CHECK: %[[GROUP:.*]] = arith.divui %[[Q0]], %c32
// CHECK: %[[START:.*]] = arith.muli %[[GROUP]], %c32
// CHECK: %[[FIRST:.*]] = arith.subi %[[Q0]], %c19
// CHECK: %[[LO:.*]] = arith.maxsi %[[START]], %[[FIRST]]
// CHECK: %[[LOCAL:.*]]:6 = scf.for %{{.*}} = %[[LO]] to %{{.*}} step %c64
// CHECK: %[[GROUPS:.*]] = arith.divui %[[LAST]], %c32
// CHECK: scf.for %{{.*}} = %c0 to %[[GROUPS]] step %c64 iter_args(%{{.*}} = %[[LOCAL]]#0, %{{.*}} = %[[LOCAL]]#1, %{{.*}} = %[[LOCAL]]#2, %{{.*}} = %[[LOCAL]]#3, %{{.*}} = %[[LOCAL]]#4
// CHECK: tensor.extract %[[MEANS]]#0
// CHECK: tensor.extract %[[MEANS]]#1
func.func @grouped(%q: tensor<1x?x4x16xf32>, %k: tensor<1x?x4x16xf32>, %v: tensor<1x?x4x16xf32>) -> tensor<1x?x4x16xf32> {
  %o = moe.grouped_attention %q, %k, %v group_size(32) window(20)
      : (tensor<1x?x4x16xf32>, tensor<1x?x4x16xf32>, tensor<1x?x4x16xf32>) -> tensor<1x?x4x16xf32>
  return %o : tensor<1x?x4x16xf32>
}

// -----

// Queries at positions of their own (a decode step against a cache) are
// left to convert-moe-to-linalg's lowering.
// CHECK-LABEL: func @offset
// CHECK-NOT: scf.forall
// CHECK: moe.attention %{{.*}}, %{{.*}}, %{{.*}} offset(%{{.*}}) window(8)
func.func @offset(%q: tensor<?x1x4x16xf32>, %k: tensor<?x?x2x16xf32>, %p: index) -> tensor<?x1x4x16xf32> {
  %o = moe.attention %q, %k, %k offset(%p) window(8)
      : (tensor<?x1x4x16xf32>, tensor<?x?x2x16xf32>, tensor<?x?x2x16xf32>, index) -> tensor<?x1x4x16xf32>
  return %o : tensor<?x1x4x16xf32>
}

// BAD-OPTIONS: error: attention_kernel needs its query rows (heads_per_step x query_block = 16) to be a multiple of vector_width (6)
