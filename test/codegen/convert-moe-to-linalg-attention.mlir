// RUN: moec-opt %s -convert-moe-to-linalg -split-input-file | FileCheck %s
// RUN: moec-opt %s -moe-to-cpu-pipeline -split-input-file | FileCheck %s --check-prefix=OMP

// Full causal attention: one forall iteration per (batch, query, pair of
// heads sharing a kv-head), an online softmax per head over keys 0..i with
// the query rows and the accumulators in vector registers: per key one read
// of the key and value rows, then per head one vector dot product (a
// reassociating reduction) and one vector FMA over Dh.
// CHECK-LABEL: func @full
// CHECK-SAME: (%[[Q:.*]]: tensor<?x?x4x8xf32>, %[[K:.*]]: tensor<?x?x2x8xf32>, %[[V:.*]]: tensor<?x?x2x8xf32>)
// CHECK: %[[ZERO:.*]] = linalg.fill {{.*}} -> tensor<?x?x4x8xf32>
// CHECK: %[[OUT:.*]] = scf.forall (%[[B:.*]], %[[I:.*]], %[[STEP:.*]]) in (%{{.*}}, %{{.*}}, 2) shared_outs(%[[ACC:.*]] = %[[ZERO]])
// CHECK: %[[H0:.*]] = arith.muli %[[STEP]], %c2
// Positions are interleaved (i / 2 for even i, T - 1 - i / 2 for odd) so
// that contiguous chunks of iterations mix short and long causal rows.
// CHECK: %[[HALF:.*]] = arith.divui %[[I]], %c2
// CHECK: %[[ODD:.*]] = arith.cmpi ne
// CHECK: %[[MIRROR:.*]] = arith.subi %{{.*}}, %[[HALF]]
// CHECK: %[[POS:.*]] = arith.select %[[ODD]], %[[MIRROR]], %[[HALF]]
// CHECK: %[[ROWS:.*]] = tensor.extract_slice %[[ACC]][%[[B]], %[[POS]], %[[H0]], 0] [1, 1, 2, 8] [1, 1, 1, 1] : tensor<?x?x4x8xf32> to tensor<2x8xf32>
// Heads 0, 1 read kv-head 0; heads 2, 3 kv-head 1.
// CHECK: %[[KVH:.*]] = arith.divui %[[H0]], %c2
// CHECK: %[[ZEROS:.*]] = arith.constant dense<0.000000e+00> : vector<8xf32>
// CHECK: %[[Q0:.*]] = vector.transfer_read %[[Q]][%[[B]], %[[POS]], %[[H0]], %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x?x4x8xf32>, vector<8xf32>
// CHECK: %[[NEG_INF:.*]] = arith.constant 0xFF800000 : f32
// CHECK: %[[H1:.*]] = arith.addi %[[H0]], %c1
// CHECK: %[[Q1:.*]] = vector.transfer_read %[[Q]][%[[B]], %[[POS]], %[[H1]], %{{.*}}]
// CHECK: %[[END:.*]] = arith.addi %[[POS]], %c1
// CHECK: %[[SOFTMAX:.*]]:6 = scf.for %[[J:.*]] = %{{.*}} to %[[END]] {{.*}} iter_args(%[[M:.*]] = %[[NEG_INF]], %[[L:.*]] = %{{.*}}, %[[A:.*]] = %[[ZEROS]], %[[M1:.*]] = %{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %[[ZEROS]]) -> (f32, f32, vector<8xf32>, f32, f32, vector<8xf32>)
// CHECK: %[[KROW:.*]] = vector.transfer_read %[[K]][%[[B]], %[[J]], %[[KVH]], %{{.*}}]
// CHECK: %[[VROW:.*]] = vector.transfer_read %[[V]][%[[B]], %[[J]], %[[KVH]], %{{.*}}]
// CHECK: %[[QK:.*]] = arith.mulf %[[Q0]], %[[KROW]] : vector<8xf32>
// CHECK: %[[DOT:.*]] = vector.reduction <add>, %[[QK]] fastmath<reassoc> : vector<8xf32> into f32
// CHECK: %[[SCORE:.*]] = arith.mulf %[[DOT]], %{{.*}} : f32
// One exp per key: exp(-|score - max|) is the new key's weight or the old
// state's rescale, whichever is not 1.
// CHECK: %[[D:.*]] = arith.subf %[[SCORE]], %[[M]]
// CHECK: %[[RAISES:.*]] = arith.cmpf ogt, %[[D]], %{{.*}} : f32
// CHECK: %[[ABS:.*]] = math.absf %[[D]]
// CHECK: %[[NEG:.*]] = arith.negf %[[ABS]]
// The exp is inline, MLIR's polynomial approximation (no libm call):
// CHECK-NOT: math.exp
// CHECK: arith.constant 1.44269502 : f32
// CHECK: arith.cmpf uge, %[[NEG]]
// CHECK-NOT: math.exp
// CHECK: %[[MAX:.*]] = arith.select %[[RAISES]], %[[SCORE]], %[[M]]
// CHECK: %[[RESCALE:.*]] = arith.select %[[RAISES]], %[[E:.*]], %{{.*}}
// CHECK: %[[P:.*]] = arith.select %[[RAISES]], %{{.*}}, %[[E]]
// CHECK: %[[L_SCALED:.*]] = arith.mulf %[[L]], %[[RESCALE]]
// CHECK: arith.addf %[[L_SCALED]], %[[P]]
// CHECK: %[[PV:.*]] = vector.broadcast %[[P]] : f32 to vector<8xf32>
// CHECK: %[[RV:.*]] = vector.broadcast %[[RESCALE]] : f32 to vector<8xf32>
// CHECK: %[[A_SCALED:.*]] = arith.mulf %[[A]], %[[RV]] : vector<8xf32>
// CHECK: %[[PVV:.*]] = arith.mulf %[[PV]], %[[VROW]] fastmath<contract> : vector<8xf32>
// CHECK: arith.addf %[[PVV]], %[[A_SCALED]] fastmath<contract> : vector<8xf32>
// The second head reuses the same key and value rows.
// CHECK-NOT: vector.transfer_read
// CHECK: %[[QK1:.*]] = arith.mulf %[[Q1]], %[[KROW]] : vector<8xf32>
// CHECK-NOT: vector.transfer_read
// CHECK: arith.subf %{{.*}}, %[[M1]]
// CHECK-NOT: vector.transfer_read
// CHECK: arith.mulf %{{.*}}, %[[VROW]] fastmath<contract> : vector<8xf32>
// CHECK: scf.yield
// CHECK: %[[INV:.*]] = arith.divf %{{.*}}, %[[SOFTMAX]]#1
// CHECK: %[[INVV:.*]] = vector.broadcast %[[INV]]
// CHECK: %[[NORMV:.*]] = arith.mulf %[[SOFTMAX]]#2, %[[INVV]] : vector<8xf32>
// CHECK: %[[NORM0:.*]] = vector.transfer_write %[[NORMV]], %[[ROWS]][%c0{{.*}}, %c0{{.*}}]
// CHECK: %[[INV1:.*]] = arith.divf %{{.*}}, %[[SOFTMAX]]#4
// CHECK: %[[NORM1:.*]] = vector.transfer_write %{{.*}}, %[[NORM0]][%c1{{.*}}, %c0{{.*}}]
// CHECK: scf.forall.in_parallel
// CHECK-NEXT: tensor.parallel_insert_slice %[[NORM1]] into %[[ACC]][%[[B]], %[[POS]], %[[H0]], 0] [1, 1, 2, 8]
// CHECK-NOT: linalg.generic
// CHECK: return %[[OUT]]
// OMP-LABEL: llvm.func @full
// OMP: omp.parallel
// OMP: omp.wsloop
// OMP-NOT: expf
func.func @full(%q: tensor<?x?x4x8xf32>, %k: tensor<?x?x2x8xf32>,
                %v: tensor<?x?x2x8xf32>) -> tensor<?x?x4x8xf32> {
  %o = moe.attention %q, %k, %v {moe.kernel = #moe.attention_kernel<heads_per_step = 2, query_block = 4, key_block = 64, micro_rows = 4, vector_width = 8>}
      : (tensor<?x?x4x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>) -> tensor<?x?x4x8xf32>
  return %o : tensor<?x?x4x8xf32>
}

// -----

// Eight heads on one kv-head at Dh = 64, four per iteration (the op's
// moe.kernel), so each kv-head takes two iterations.
// CHECK-LABEL: func @wide_group
// CHECK: scf.forall (%{{.*}}, %{{.*}}, %[[STEP:.*]]) in (%{{.*}}, %{{.*}}, 2)
// CHECK: %[[H0:.*]] = arith.muli %[[STEP]], %c4
// CHECK: tensor.extract_slice %{{.*}} [1, 1, 4, 64] [1, 1, 1, 1] : tensor<?x?x8x64xf32> to tensor<4x64xf32>
// CHECK: arith.divui %[[H0]], %c8
// CHECK: scf.for {{.*}} -> (f32, f32, vector<64xf32>, f32, f32, vector<64xf32>, f32, f32, vector<64xf32>, f32, f32, vector<64xf32>)
// CHECK-COUNT-2: vector.transfer_read
// CHECK-NOT: vector.transfer_read
// CHECK: scf.yield
func.func @wide_group(%q: tensor<?x?x8x64xf32>, %k: tensor<?x?x1x64xf32>,
                      %v: tensor<?x?x1x64xf32>) -> tensor<?x?x8x64xf32> {
  %o = moe.attention %q, %k, %v {moe.kernel = #moe.attention_kernel<heads_per_step = 4, query_block = 2, key_block = 64, micro_rows = 4, vector_width = 8>}
      : (tensor<?x?x8x64xf32>, tensor<?x?x1x64xf32>, tensor<?x?x1x64xf32>) -> tensor<?x?x8x64xf32>
  return %o : tensor<?x?x8x64xf32>
}

// -----

// Without a moe.kernel (moe-select-cpu-kernels chooses per target) each
// of the eight heads is its own iteration.
// CHECK-LABEL: func @one_head_per_step
// CHECK: scf.forall (%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}}, %{{.*}}, 8)
// CHECK: tensor.extract_slice %{{.*}} [1, 1, 1, 64] [1, 1, 1, 1] : tensor<?x?x8x64xf32> to tensor<1x64xf32>
// CHECK: scf.for {{.*}} -> (f32, f32, vector<64xf32>)
func.func @one_head_per_step(%q: tensor<?x?x8x64xf32>, %k: tensor<?x?x1x64xf32>,
                             %v: tensor<?x?x1x64xf32>) -> tensor<?x?x8x64xf32> {
  %o = moe.attention %q, %k, %v
      : (tensor<?x?x8x64xf32>, tensor<?x?x1x64xf32>, tensor<?x?x1x64xf32>) -> tensor<?x?x8x64xf32>
  return %o : tensor<?x?x8x64xf32>
}

// -----

// Queries with an offset (a decode step) take their whole GQA group per
// iteration, so each cached key row is read once for its four heads; the
// keys run to the query's position among them, p.
// CHECK-LABEL: func @decode_group_per_step
// CHECK-SAME: %[[P:[a-z0-9]+]]: index)
// CHECK: scf.forall (%{{.*}}, %[[I:.*]], %{{.*}}) in (%{{.*}}, 1, 2)
// CHECK: tensor.extract_slice %{{.*}} [1, 1, 4, 64] [1, 1, 1, 1] : tensor<?x1x8x64xf32> to tensor<4x64xf32>
// CHECK: %[[AT:.*]] = arith.addi %{{.*}}, %[[P]]
// CHECK: %[[END:.*]] = arith.addi %[[AT]], %c1
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[END]] {{.*}} -> (f32, f32, vector<64xf32>, f32, f32, vector<64xf32>, f32, f32, vector<64xf32>, f32, f32, vector<64xf32>)
// CHECK-COUNT-2: vector.transfer_read
// CHECK-NOT: vector.transfer_read
// CHECK: scf.yield
func.func @decode_group_per_step(%q: tensor<?x1x8x64xf32>, %k: tensor<?x?x2x64xf32>,
                                 %v: tensor<?x?x2x64xf32>, %p: index) -> tensor<?x1x8x64xf32> {
  %o = moe.attention %q, %k, %v offset(%p)
      : (tensor<?x1x8x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>, index) -> tensor<?x1x8x64xf32>
  return %o : tensor<?x1x8x64xf32>
}

// -----

// A sliding window starts the key loop at max(0, i - W + 1); bf16 operands
// are widened inside the loops and the f32 result is narrowed at the end.
// CHECK-LABEL: func @sliding_bf16
// CHECK: scf.forall (%{{.*}}, %[[I:.*]], %{{.*}}) in
// CHECK: %[[POS:.*]] = arith.select
// CHECK: arith.extf %{{.*}} : vector<8xbf16> to vector<8xf32>
// CHECK: %[[C15:.*]] = arith.constant 15 : index
// CHECK: %[[FIRST:.*]] = arith.subi %[[POS]], %[[C15]]
// CHECK: %[[LO:.*]] = arith.maxsi %{{.*}}, %[[FIRST]]
// CHECK: %[[HI:.*]] = arith.addi %[[POS]]
// CHECK: scf.for %{{.*}} = %[[LO]] to %[[HI]]
// CHECK: arith.extf %{{.*}} : vector<8xbf16> to vector<8xf32>
// CHECK: arith.extf %{{.*}} : vector<8xbf16> to vector<8xf32>
// CHECK: scf.forall.in_parallel
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "parallel"]
// CHECK-SAME: ins(%{{.*}} : tensor<?x?x4x8xf32>) outs(%{{.*}} : tensor<?x?x4x8xbf16>)
// CHECK: arith.truncf %{{.*}} : f32 to bf16
func.func @sliding_bf16(%q: tensor<?x?x4x8xbf16>, %k: tensor<?x?x2x8xbf16>,
                        %v: tensor<?x?x2x8xbf16>) -> tensor<?x?x4x8xbf16> {
  %o = moe.attention %q, %k, %v window(16)
      : (tensor<?x?x4x8xbf16>, tensor<?x?x2x8xbf16>, tensor<?x?x2x8xbf16>) -> tensor<?x?x4x8xbf16>
  return %o : tensor<?x?x4x8xbf16>
}

// -----

// GMHA: the means of the complete groups are computed once, by a generic
// over (batch, group, kv-head, d, member) on the keys and values viewed as
// [B, T / G, G, KVH, Dh]; each query then folds its local keys
// max(g * G, i - W + 1) .. i and the means of groups 0 .. g - 1 into one
// online softmax. No tensor has two token dimensions.
// CHECK-LABEL: func @grouped
// CHECK-SAME: (%[[Q:.*]]: tensor<?x?x4x8xf32>, %[[K:.*]]: tensor<?x?x2x8xf32>, %[[V:.*]]: tensor<?x?x2x8xf32>)
// CHECK: %[[T:.*]] = tensor.dim %[[K]], %c1
// CHECK: %[[NG:.*]] = arith.divui %[[T]], %[[G:.*]] : index
// CHECK: %[[COVERED:.*]] = arith.muli %[[NG]], %[[G]]
// CHECK: %[[KP:.*]] = tensor.extract_slice %[[K]][0, 0, 0, 0] [%{{.*}}, %[[COVERED]], 2, 8]
// CHECK: %[[KG:.*]] = tensor.expand_shape %[[KP]] {{\[}}[0], [1, 2], [3], [4]] output_shape [%{{.*}}, %[[NG]], 4, 2, 8] : tensor<?x?x2x8xf32> into tensor<?x?x4x2x8xf32>
// CHECK: %[[VG:.*]] = tensor.expand_shape
// CHECK: %[[SUMS:.*]]:2 = linalg.generic {indexing_maps = [#[[GROUPED:.*]], #[[GROUPED]], #[[MEAN:.*]], #[[MEAN]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%[[KG]], %[[VG]] : tensor<?x?x4x2x8xf32>, tensor<?x?x4x2x8xf32>) outs(%{{.*}}, %{{.*}} : tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>)
// CHECK: %[[MEANS:.*]]:2 = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%[[SUMS]]#0, %[[SUMS]]#1
// CHECK: arith.constant 2.500000e-01 : f32
// CHECK: scf.forall (%[[B:.*]], %[[I:.*]], %[[STEP:.*]]) in
// CHECK: %[[H0:.*]] = arith.muli %[[STEP]]
// CHECK: %[[POS:.*]] = arith.select
// CHECK: %[[KVH:.*]] = arith.divui %[[H0]]
// CHECK: %[[GROUP:.*]] = arith.divui %[[POS]], %[[C4:.*]] : index
// CHECK: %[[START:.*]] = arith.muli %[[GROUP]], %[[C4]]
// CHECK: %[[FIRST:.*]] = arith.subi %[[POS]], %c2
// CHECK: %[[LO:.*]] = arith.maxsi %[[START]], %[[FIRST]]
// CHECK: %[[HI:.*]] = arith.addi %[[POS]]
// CHECK: %[[LOCAL:.*]]:6 = scf.for %[[J:.*]] = %[[LO]] to %[[HI]]
// CHECK: vector.transfer_read %[[K]][%[[B]], %[[J]], %[[KVH]], %{{.*}}]
// CHECK: vector.transfer_read %[[V]][%[[B]], %[[J]], %[[KVH]], %{{.*}}]
// CHECK: %[[ALL:.*]]:6 = scf.for %[[S:.*]] = %{{.*}} to %[[GROUP]] {{.*}} iter_args(%{{.*}} = %[[LOCAL]]#0, %{{.*}} = %[[LOCAL]]#1, %{{.*}} = %[[LOCAL]]#2, %{{.*}} = %[[LOCAL]]#3, %{{.*}} = %[[LOCAL]]#4, %{{.*}} = %[[LOCAL]]#5)
// CHECK: vector.transfer_read %[[MEANS]]#0[%[[B]], %[[S]], %[[KVH]], %{{.*}}]
// CHECK: vector.transfer_read %[[MEANS]]#1[%[[B]], %[[S]], %[[KVH]], %{{.*}}]
// CHECK: arith.constant 1.44269502 : f32
// CHECK: arith.divf %{{.*}}, %[[ALL]]#1
// CHECK: scf.forall.in_parallel
// CHECK-NOT: tensor<?x?xf32>
// CHECK: return
// OMP-LABEL: llvm.func @grouped
// OMP-COUNT-2: omp.wsloop
func.func @grouped(%q: tensor<?x?x4x8xf32>, %k: tensor<?x?x2x8xf32>,
                   %v: tensor<?x?x2x8xf32>) -> tensor<?x?x4x8xf32> {
  %o = moe.grouped_attention %q, %k, %v group_size(4) window(3) {moe.kernel = #moe.attention_kernel<heads_per_step = 2, query_block = 4, key_block = 64, micro_rows = 4, vector_width = 8>}
      : (tensor<?x?x4x8xf32>, tensor<?x?x2x8xf32>, tensor<?x?x2x8xf32>) -> tensor<?x?x4x8xf32>
  return %o : tensor<?x?x4x8xf32>
}
