// RUN: moec-opt %s -convert-moe-to-linalg -split-input-file -verify-diagnostics | FileCheck %s
// RUN: moec-opt %s -convert-moe-to-linalg=static-row-bound -split-input-file -verify-diagnostics | FileCheck %s --check-prefix=STATIC

// CHECK-DAG: #[[ROW_GROUP_IN:.*]] = affine_map<(d0, d1) -> (d1)>
// CHECK-DAG: #[[ROW_GROUP_OUT:.*]] = affine_map<(d0, d1) -> (d0)>
// CHECK-DAG: #[[RK:.*]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[R:.*]] = affine_map<(d0, d1, d2) -> (d0)>
// CHECK-DAG: #[[RN:.*]] = affine_map<(d0, d1, d2) -> (d0, d1)>

// CHECK-LABEL: func @grouped_matmul
// CHECK-SAME: (%[[X:.*]]: tensor<?x4xf32>, %[[W:.*]]: tensor<3x2x4xf32>, %[[OFF:.*]]: tensor<4xi32>)
func.func @grouped_matmul(%x: tensor<?x4xf32>, %w: tensor<3x2x4xf32>,
                          %off: tensor<4xi32>) -> tensor<?x2xf32> {
  // Group ends, then each row's group as a count of ends at or before it.
  // CHECK: %[[ENDS:.*]] = tensor.extract_slice %[[OFF]][1] [3] [1]
  // CHECK: %[[GROUPS:.*]] = linalg.generic {indexing_maps = [#[[ROW_GROUP_IN]], #[[ROW_GROUP_OUT]]], iterator_types = ["parallel", "reduction"]}
  // CHECK-SAME: ins(%[[ENDS]] : tensor<3xi32>)
  // CHECK: arith.cmpi sle
  // The product reads the row's group weight with tensor.extract.
  // CHECK: linalg.generic {indexing_maps = [#[[RK]], #[[R]], #[[RN]]], iterator_types = ["parallel", "parallel", "reduction"]}
  // CHECK-SAME: ins(%[[X]], %[[GROUPS]] : tensor<?x4xf32>, tensor<?xi32>)
  // CHECK: arith.minui
  // CHECK: tensor.extract %[[W]]
  // CHECK: arith.mulf
  // CHECK: arith.addf
  // CHECK-NOT: linalg.generic
  // CHECK: return
  %y = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x4xf32>, tensor<3x2x4xf32>, tensor<4xi32>) -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// CHECK-LABEL: func @grouped_matmul_swiglu_bf16
func.func @grouped_matmul_swiglu_bf16(%x: tensor<?x4xbf16>, %w: tensor<3x2x4xbf16>,
                                      %u: tensor<3x2x4xbf16>, %off: tensor<4xi32>,
                                      %s: tensor<?xf32>) -> tensor<?x2xbf16> {
  // Gate and up products accumulate together, in f32.
  // CHECK: linalg.generic {{.*}} outs(%{{.*}}, %{{.*}} : tensor<?x2xf32>, tensor<?x2xf32>)
  // CHECK: arith.extf {{.*}} : bf16 to f32
  // CHECK: tensor.extract %{{.*}} : tensor<3x2x4xbf16>
  // CHECK: tensor.extract %{{.*}} : tensor<3x2x4xbf16>
  // Epilogue: silu(gate) * up * scale, then back to bf16.
  // CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]
  // CHECK: math.exp
  // CHECK: arith.divf
  // CHECK: arith.mulf
  // CHECK: arith.mulf
  // CHECK: arith.truncf {{.*}} : f32 to bf16
  %y = moe.grouped_matmul %x, %w, %u offsets(%off) scale(%s) epilogue(swiglu)
      : (tensor<?x4xbf16>, tensor<3x2x4xbf16>, tensor<3x2x4xbf16>, tensor<4xi32>,
         tensor<?xf32>) -> tensor<?x2xbf16>
  return %y : tensor<?x2xbf16>
}

// CHECK-LABEL: func @combine
// CHECK-SAME: (%[[ROWS:.*]]: tensor<?x8xf32>
func.func @combine(%rows: tensor<?x8xf32>, %w: tensor<?x2xf32>,
                   %slots: tensor<?x2xi32>, %n: tensor<?xi32>) -> tensor<?x8xf32> {
  // CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
  // Unused slots (k >= count) are skipped, never read.
  // CHECK: %[[USED:.*]] = arith.cmpi slt
  // CHECK: scf.if %[[USED]] -> (f32)
  // CHECK: tensor.extract %[[ROWS]]
  // CHECK: } else {
  %y = moe.combine %rows, %w, %slots, %n
      : (tensor<?x8xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// Without weights, the slot reduction adds the rows as they are.
// CHECK-LABEL: func @combine_unweighted
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-SAME: ins(%{{.*}}, %{{.*}} : tensor<?x2xi32>, tensor<?xi32>)
// CHECK: scf.if
// CHECK: %[[V:.*]] = tensor.extract
// CHECK-NOT: arith.mulf
// CHECK: arith.addf %{{.*}}, %[[V]]
func.func @combine_unweighted(%rows: tensor<?x8xf32>, %slots: tensor<?x2xi32>,
                              %n: tensor<?xi32>) -> tensor<?x8xf32> {
  %y = moe.combine %rows, %slots, %n
      : (tensor<?x8xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// Each row takes the weight of the one slot of its token that points at it.
// CHECK-LABEL: func @row_weights
// CHECK-SAME: (%[[W:.*]]: tensor<?x2xf32>, %[[S2R:.*]]: tensor<?x2xi32>, %[[R2T:.*]]: tensor<?xi32>)
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]
// CHECK-SAME: ins(%[[R2T]], %{{.*}} : tensor<?xi32>, tensor<2xi32>)
// CHECK: %[[TARGET:.*]] = tensor.extract %[[S2R]]
// CHECK: %[[MINE:.*]] = arith.cmpi eq, %[[TARGET]]
// CHECK: %[[WV:.*]] = tensor.extract %[[W]]
// CHECK: arith.select %[[MINE]], %[[WV]]
func.func @row_weights(%w: tensor<?x2xf32>, %s2r: tensor<?x2xi32>,
                       %r2t: tensor<?xi32>) -> tensor<?xf32> {
  %rw = moe.row_weights %w, %s2r, %r2t
      : (tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?xf32>
  return %rw : tensor<?xf32>
}

// CHECK-LABEL: func @dispatch
// CHECK-SAME: (%[[X:.*]]: tensor<?x8xf32>, %[[IDS:.*]]: tensor<?x2xi32>, %[[N:.*]]: tensor<?xi32>)
// STATIC-LABEL: func @dispatch
func.func @dispatch(%x: tensor<?x8xf32>, %ids: tensor<?x2xi32>, %n: tensor<?xi32>)
    -> (tensor<?x8xf32>, tensor<5xi32>, tensor<?xi32>, tensor<?x2xi32>) {
  // Every step is a generic parallel over its output; no loop over all the
  // tokens outside one. Per chunk of 32 tokens and expert, its slots routed
  // there (a scan of the chunk's used slots):
  // CHECK: %[[T:.*]] = tensor.dim %[[X]], %c0
  // CHECK: %[[CHUNKS:.*]] = arith.ceildivui %[[T]], %c32
  // CHECK: %[[COUNTS:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]} outs(%{{.*}} : tensor<?x4xi32>)
  // CHECK: scf.for
  // CHECK: tensor.extract %[[N]]
  // CHECK: scf.for
  // CHECK: tensor.extract %[[IDS]]
  // Rows per expert, their exclusive prefix sum (the offsets):
  // CHECK: %[[PER_EXPERT:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%[[COUNTS]] : tensor<?x4xi32>) outs(%{{.*}} : tensor<4xi32>)
  // CHECK: %[[OFFSETS:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%[[PER_EXPERT]] : tensor<4xi32>) outs(%{{.*}} : tensor<5xi32>)
  // Each chunk's first row per expert:
  // CHECK: %[[STARTS:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]} outs(%{{.*}} : tensor<?x4xi32>)
  // CHECK: tensor.extract %[[OFFSETS]]
  // CHECK: scf.for
  // CHECK: tensor.extract %[[COUNTS]]
  // Each slot's row: its chunk's start plus the chunk's earlier slots of
  // its expert (stable: token order).
  // CHECK: %[[SLOT_TO_ROW:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]} ins(%[[N]] : tensor<?xi32>) outs(%{{.*}} : tensor<?x2xi32>)
  // CHECK: tensor.extract %[[STARTS]]
  // R is the last offset (without the static bound).
  // CHECK: %[[R:.*]] = tensor.extract %[[OFFSETS]][%c4] : tensor<5xi32>
  // CHECK: %[[RI:.*]] = arith.index_cast %[[R]]
  // STATIC-NOT: tensor.extract %{{.*}}[%c4] : tensor<5xi32>
  // STATIC: %[[BOUND:.*]] = arith.muli %{{.*}}, %c2
  // STATIC: tensor.empty(%[[BOUND]]) : tensor<?xi32>
  // Each row's expert, then its token: the chunk that holds the row, then
  // a scan of that chunk.
  // CHECK: %[[EXPERTS:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]}
  // CHECK: %[[ROW_TO_TOKEN:.*]] = linalg.generic {{.*}} iterator_types = ["parallel"]} ins(%[[EXPERTS]] : tensor<?xi32>)
  // CHECK: scf.for %{{.*}} = %c0{{.*}} to %[[CHUNKS]]
  // The gather of the token rows.
  // CHECK: %[[ROWS:.*]] = linalg.generic {{.*}} ins(%[[ROW_TO_TOKEN]] : tensor<?xi32>) outs(%{{.*}} : tensor<?x8xf32>)
  // CHECK: tensor.extract %[[X]]
  // CHECK: return %[[ROWS]], %[[OFFSETS]], %[[ROW_TO_TOKEN]], %[[SLOT_TO_ROW]]
  %rows, %offsets, %row_to_token, %slot_to_row = moe.dispatch %x, %ids, %n
      : tensor<?x8xf32>, tensor<?x2xi32>, tensor<?xi32>
      -> tensor<?x8xf32>, tensor<5xi32>, tensor<?xi32>, tensor<?x2xi32>
  return %rows, %offsets, %row_to_token, %slot_to_row
      : tensor<?x8xf32>, tensor<5xi32>, tensor<?xi32>, tensor<?x2xi32>
}

// CHECK-LABEL: func @tile_schedule
// CHECK-SAME: (%[[OFF:.*]]: tensor<5xi32>)
func.func @tile_schedule(%off: tensor<5xi32>) -> tensor<?x3xi32> {
  // A first scan over the groups counts ceil(rows / 16) tiles each...
  // CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
  // CHECK-DAG: %[[C1:.*]] = arith.constant 1 : index
  // CHECK-DAG: %[[C4:.*]] = arith.constant 4 : index
  // CHECK: %[[COUNT:.*]] = scf.for %{{.*}} = %[[C0]] to %[[C4]] step %[[C1]] iter_args(%{{.*}} = %[[C0]]) -> (index)
  // CHECK: arith.maxsi
  // CHECK: arith.divui
  // CHECK: %[[INIT:.*]] = tensor.empty(%[[COUNT]]) : tensor<?x3xi32>
  // ...a second writes (group, first row, rows) for each, groups in order,
  // the group's t tiles rows / t long, the first rows % t one row longer.
  // CHECK: %[[FILL:.*]]:2 = scf.for %{{.*}} = %[[C0]] to %[[C4]] step %[[C1]] iter_args(%{{.*}} = %[[C0]], %{{.*}} = %[[INIT]])
  // CHECK: %[[T:.*]] = arith.divui
  // CHECK: scf.for %[[J:.*]] = %[[C0]] to %[[T]]
  // CHECK: %[[BASE:.*]] = arith.divui %{{.*}}, %[[T]]
  // CHECK: %[[EXTRA:.*]] = arith.remui %{{.*}}, %[[T]]
  // CHECK: arith.minui %[[J]], %[[EXTRA]]
  // CHECK: %[[LONGER:.*]] = arith.cmpi ult, %[[J]], %[[EXTRA]]
  // CHECK: arith.select %[[LONGER]]
  // CHECK: tensor.insert
  // CHECK: tensor.insert
  // CHECK: tensor.insert
  // CHECK: return %[[FILL]]#1
  %t = moe.tile_schedule %off tile_rows(16) : tensor<5xi32> -> tensor<?x3xi32>
  return %t : tensor<?x3xi32>
}

// CHECK-LABEL: func @split_tokens
func.func @split_tokens(%x: tensor<?x64xf32>) -> tensor<?x16xf32> {
  // CHECK: tensor.expand_shape %{{.*}} {{\[\[}}0], [1, 2]] output_shape [%{{.*}}, 4, 16] : tensor<?x64xf32> into tensor<?x4x16xf32>
  // CHECK: tensor.collapse_shape %{{.*}} {{\[\[}}0, 1], [2]] : tensor<?x4x16xf32> into tensor<?x16xf32>
  %s = moe.split_tokens %x heads(4) : tensor<?x64xf32> -> tensor<?x16xf32>
  return %s : tensor<?x16xf32>
}

// CHECK-LABEL: func @merge_tokens
func.func @merge_tokens(%x: tensor<?x16xf32>) -> tensor<?x64xf32> {
  // CHECK: tensor.expand_shape %{{.*}} {{\[\[}}0, 1], [2]] output_shape [%{{.*}}, 4, 16] : tensor<?x16xf32> into tensor<?x4x16xf32>
  // CHECK: tensor.collapse_shape %{{.*}} {{\[\[}}0], [1, 2]] : tensor<?x4x16xf32> into tensor<?x64xf32>
  %m = moe.merge_tokens %x heads(4) : tensor<?x16xf32> -> tensor<?x64xf32>
  return %m : tensor<?x64xf32>
}

// -----

// A weight tensor becomes the buffer of its table entry, read-only
// (to_tensor restrict, not writable); buffers stay.
// CHECK-LABEL: func @weight
// CHECK-SAME: (%[[TABLE:.*]]: !llvm.ptr, %[[SLOT:.*]]: index)
func.func @weight(%table: !llvm.ptr, %slot: index)
    -> (tensor<8x64xbf16>, memref<4x64xf32>) {
  // CHECK: %[[BUF:.*]] = moe.weight %[[TABLE]][%[[SLOT]]] "gate.weight" : memref<8x64xbf16>
  // CHECK: %[[T:.*]] = bufferization.to_tensor %[[BUF]] restrict : memref<8x64xbf16> to tensor<8x64xbf16>
  // CHECK-NOT: writable
  %g = moe.weight %table[%slot] "gate.weight" : tensor<8x64xbf16>
  // CHECK: %[[M:.*]] = moe.weight %[[TABLE]][%[[SLOT]]] "norm.weight" : memref<4x64xf32>
  %m = moe.weight %table[%slot] "norm.weight" : memref<4x64xf32>
  // CHECK: return %[[T]], %[[M]]
  return %g, %m : tensor<8x64xbf16>, memref<4x64xf32>
}

// -----

// Ops without a lowering yet are reported, not silently left behind.
func.func @router(%l: tensor<?x8xf32>) -> tensor<?xi32> {
  // expected-error @+1 {{failed to legalize operation 'moe.router'}}
  %i, %w, %n = moe.router %l policy(#moe.top_k<k = 2>)
      : tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>, tensor<?xi32>
  return %n : tensor<?xi32>
}

// -----

// A kernel shape that does not fit the op is reported.
func.func @heads_per_step(%q: tensor<?x?x4x8xf32>, %k: tensor<?x?x1x8xf32>) -> tensor<?x?x4x8xf32> {
  // expected-error @+2 {{kernel heads_per_step 3 does not divide the heads per kv-head (4)}}
  // expected-error @+1 {{failed to legalize operation 'moe.attention'}}
  %o = moe.attention %q, %k, %k {moe.kernel = #moe.attention_kernel<heads_per_step = 3, query_block = 8, key_block = 64, micro_rows = 4, vector_width = 8>}
      : (tensor<?x?x4x8xf32>, tensor<?x?x1x8xf32>, tensor<?x?x1x8xf32>) -> tensor<?x?x4x8xf32>
  return %o : tensor<?x?x4x8xf32>
}
