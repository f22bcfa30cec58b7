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

// The grouped GEMM's tile loop (moe-tile-grouped-matmul) is an OpenMP loop
// too, over (column tile, row tile) collapsed, with the vector micro-kernel
// inside.
// CHECK-LABEL: llvm.func @grouped_matmul
// CHECK: omp.parallel
// CHECK: omp.wsloop
// CHECK: omp.loop_nest (%{{.*}}, %{{.*}}) : i64 {{.*}} collapse(2)
// CHECK: llvm.fmul {{.*}} {fastmathFlags = #llvm.fastmath<contract>}
// CHECK: llvm.shufflevector
// CHECK: llvm.intr.masked.store
// SERIAL-LABEL: llvm.func @grouped_matmul
// SERIAL-NOT: omp.
// SERIAL: llvm.return
func.func @grouped_matmul(%x: tensor<?x64xf32>, %w: tensor<8x128x64xf32>,
                          %offsets: tensor<9xi32>) -> tensor<?x128xf32> {
  %y = moe.grouped_matmul %x, %w offsets(%offsets)
      : (tensor<?x64xf32>, tensor<8x128x64xf32>, tensor<9xi32>) -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}
