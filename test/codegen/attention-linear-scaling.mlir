// Attention memory and work are linear in T for a fixed window W and group
// size G, read off the bufferized loops (the prefix of moe-to-cpu-pipeline up
// to parallel loops): the only buffers are the output, [B, T, H, Dh], and for
// GMHA the group means, [B, T / G, KVH, Dh]; each iteration of the parallel
// loop (one query, the four heads of one kv-head, as the ops' moe.kernel
// says) runs at most W local keys
// (from max(g * G, i - W + 1) to i) and g = i / G summaries. Nothing is
// [T, T]. Not a timing test: see bench/attention_scaling.py for times.
// RUN: moec-opt %s -split-input-file -convert-moe-to-linalg -canonicalize \
// RUN:   -one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" \
// RUN:   -buffer-deallocation-pipeline -scf-forall-to-parallel \
// RUN:   -convert-linalg-to-parallel-loops -canonicalize | FileCheck %s

// CHECK-LABEL: func @gmha_4096
// CHECK-NOT: memref.alloc
// CHECK: %[[KS:.*]] = memref.alloc() {{.*}} : memref<1x32x2x64xf32>
// CHECK-NOT: memref.alloc
// CHECK: %[[VS:.*]] = memref.alloc() {{.*}} : memref<1x32x2x64xf32>
// CHECK-NOT: memref.alloc
// CHECK: %[[OUT:.*]] = memref.alloc() {{.*}} : memref<1x4096x8x64xf32>
// CHECK-NOT: memref.alloc
// CHECK: scf.parallel (%[[I:.*]], %[[H:.*]]) = (%c0, %c0) to (%c4096, %c2)
// CHECK: %[[POS:.*]] = arith.select
// CHECK: %[[G:.*]] = arith.divui %[[POS]], %c128
// CHECK: %[[START:.*]] = arith.muli %[[G]], %c128
// CHECK: %[[FIRST:.*]] = arith.subi %[[POS]], %c63
// CHECK: %[[LO:.*]] = arith.maxsi %[[START]], %[[FIRST]]
// CHECK: %[[HI:.*]] = arith.addi %[[POS]], %c1
// CHECK: scf.for %{{.*}} = %[[LO]] to %[[HI]]
// CHECK: scf.for %{{.*}} = %c0 to %[[G]]
// CHECK: vector.transfer_read %[[KS]]
// CHECK: vector.transfer_read %[[VS]]
// CHECK-NOT: memref.alloc
// CHECK: return %[[OUT]]
func.func @gmha_4096(%q: tensor<1x4096x8x64xf32>, %k: tensor<1x4096x2x64xf32>,
                     %v: tensor<1x4096x2x64xf32>) -> tensor<1x4096x8x64xf32> {
  %o = moe.grouped_attention %q, %k, %v group_size(128) window(64) {moe.kernel = #moe.attention_kernel<heads_per_step = 4, query_block = 2, key_block = 64, micro_rows = 4, vector_width = 8>}
      : (tensor<1x4096x8x64xf32>, tensor<1x4096x2x64xf32>, tensor<1x4096x2x64xf32>) -> tensor<1x4096x8x64xf32>
  return %o : tensor<1x4096x8x64xf32>
}

// -----

// Four times the tokens: four times the output and the means, the same loop
// structure.
// CHECK-LABEL: func @gmha_16384
// CHECK-NOT: memref.alloc
// CHECK: memref.alloc() {{.*}} : memref<1x128x2x64xf32>
// CHECK-NOT: memref.alloc
// CHECK: memref.alloc() {{.*}} : memref<1x128x2x64xf32>
// CHECK-NOT: memref.alloc
// CHECK: memref.alloc() {{.*}} : memref<1x16384x8x64xf32>
// CHECK-NOT: memref.alloc
// CHECK: scf.parallel (%[[I:.*]], %{{.*}}) = (%c0, %c0) to (%c16384, %c2)
// CHECK: %[[POS:.*]] = arith.select
// CHECK: %[[G:.*]] = arith.divui %[[POS]], %c128
// CHECK: arith.maxsi
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}}
// CHECK: scf.for %{{.*}} = %c0 to %[[G]]
// CHECK-NOT: memref.alloc
// CHECK: return
func.func @gmha_16384(%q: tensor<1x16384x8x64xf32>, %k: tensor<1x16384x2x64xf32>,
                      %v: tensor<1x16384x2x64xf32>) -> tensor<1x16384x8x64xf32> {
  %o = moe.grouped_attention %q, %k, %v group_size(128) window(64) {moe.kernel = #moe.attention_kernel<heads_per_step = 4, query_block = 2, key_block = 64, micro_rows = 4, vector_width = 8>}
      : (tensor<1x16384x8x64xf32>, tensor<1x16384x2x64xf32>, tensor<1x16384x2x64xf32>) -> tensor<1x16384x8x64xf32>
  return %o : tensor<1x16384x8x64xf32>
}

// -----

// A sliding window: the output is the only buffer, and a query's key loop
// covers at most W = 256 keys.
// CHECK-LABEL: func @sliding_4096
// CHECK-NOT: memref.alloc
// CHECK: %[[OUT:.*]] = memref.alloc() {{.*}} : memref<1x4096x8x64xf32>
// CHECK-NOT: memref.alloc
// CHECK: scf.parallel (%[[I:.*]], %{{.*}}) = (%c0, %c0) to (%c4096, %c2)
// CHECK: %[[POS:.*]] = arith.select
// CHECK: %[[FIRST:.*]] = arith.subi %[[POS]], %c255
// CHECK: %[[LO:.*]] = arith.maxsi %[[FIRST]], %c0
// CHECK: %[[HI:.*]] = arith.addi %[[POS]], %c1
// CHECK: scf.for %{{.*}} = %[[LO]] to %[[HI]]
// CHECK-NOT: memref.alloc
// CHECK: return %[[OUT]]
func.func @sliding_4096(%q: tensor<1x4096x8x64xf32>, %k: tensor<1x4096x2x64xf32>,
                        %v: tensor<1x4096x2x64xf32>) -> tensor<1x4096x8x64xf32> {
  %o = moe.attention %q, %k, %v window(256) {moe.kernel = #moe.attention_kernel<heads_per_step = 4, query_block = 2, key_block = 64, micro_rows = 4, vector_width = 8>}
      : (tensor<1x4096x8x64xf32>, tensor<1x4096x2x64xf32>, tensor<1x4096x2x64xf32>) -> tensor<1x4096x8x64xf32>
  return %o : tensor<1x4096x8x64xf32>
}
