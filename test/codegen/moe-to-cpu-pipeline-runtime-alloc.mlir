// With runtime-alloc (what moec compile uses) buffers come from the model
// runtime's arena through MLIR's generic allocation functions; by default
// from malloc / free.
// RUN: moec-opt %s -moe-to-cpu-pipeline="runtime-alloc=true" | FileCheck %s
// RUN: moec-opt %s -moe-to-cpu-pipeline | FileCheck %s --check-prefix=MALLOC

// CHECK-DAG: llvm.func @_mlir_memref_to_llvm_alloc(i64) -> !llvm.ptr
// CHECK-DAG: llvm.func @_mlir_memref_to_llvm_free(!llvm.ptr)
// CHECK-LABEL: llvm.func @split_merge
// CHECK: llvm.call @_mlir_memref_to_llvm_alloc
// CHECK-NOT: llvm.call @malloc
// MALLOC-LABEL: llvm.func @split_merge
// MALLOC: llvm.call @malloc
// MALLOC-NOT: _mlir_memref_to_llvm_alloc
func.func @split_merge(%x: tensor<?x8xf32>, %w: tensor<2x4x4xf32>, %off: tensor<3xi32>) -> tensor<?x8xf32> {
  %s = moe.split_tokens %x heads(2) : tensor<?x8xf32> -> tensor<?x4xf32>
  %y = moe.grouped_matmul %s, %w offsets(%off)
      : (tensor<?x4xf32>, tensor<2x4x4xf32>, tensor<3xi32>) -> tensor<?x4xf32>
  %m = moe.merge_tokens %y heads(2) : tensor<?x4xf32> -> tensor<?x8xf32>
  return %m : tensor<?x8xf32>
}
