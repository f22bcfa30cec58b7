// The CPU pipeline runs the parallel loops of the lowered ops on OpenMP
// threads by default, and on the calling thread with openmp=false.
// RUN: moec-opt %s -moe-to-cpu-pipeline | FileCheck %s
// RUN: moec-opt %s -moe-to-cpu-pipeline="openmp=false" | FileCheck %s --check-prefix=SERIAL

// CHECK-LABEL: llvm.func @combine
// CHECK: omp.parallel
// CHECK: omp.wsloop
// SERIAL-LABEL: llvm.func @combine
// SERIAL-NOT: omp.
// SERIAL: llvm.return
func.func @combine(%rows: tensor<?x8xf32>, %w: tensor<?x2xf32>,
                   %slots: tensor<?x2xi32>, %n: tensor<?xi32>) -> tensor<?x8xf32> {
  %y = moe.combine %rows, %w, %slots, %n
      : (tensor<?x8xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
