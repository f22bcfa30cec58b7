// RUN: moec-opt %s -convert-to-llvm | FileCheck %s

// moe.weight's buffer form reaches the LLVM dialect through the moe
// dialect's ConvertToLLVMPatternInterface: the table entry's pointer is the
// descriptor's allocated and aligned pointer, with offset 0 and the static
// sizes and row-major strides.
// CHECK-LABEL: llvm.func @weight
// CHECK-SAME: (%[[TABLE:.*]]: !llvm.ptr, %[[SLOT:.*]]: i64)
// CHECK: %[[ENTRY:.*]] = llvm.getelementptr %[[TABLE]][%[[SLOT]]] : (!llvm.ptr, i64) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[DATA:.*]] = llvm.load %[[ENTRY]] : !llvm.ptr -> !llvm.ptr
// CHECK: %[[D0:.*]] = llvm.insertvalue %[[DATA]], %{{.*}}[0]
// CHECK: %[[D1:.*]] = llvm.insertvalue %[[DATA]], %[[D0]][1]
// CHECK: %[[ZERO:.*]] = llvm.mlir.constant(0 : index) : i64
// CHECK: llvm.insertvalue %[[ZERO]], %[[D1]][2]
// CHECK: %[[ROWS:.*]] = llvm.mlir.constant(4 : index) : i64
// CHECK: llvm.insertvalue %[[ROWS]], %{{.*}}[3, 0]
// CHECK: %[[COLS:.*]] = llvm.mlir.constant(64 : index) : i64
// CHECK: llvm.insertvalue %[[COLS]], %{{.*}}[4, 0]
// CHECK: llvm.insertvalue %{{.*}}, %{{.*}}[3, 1]
// CHECK: %[[ONE:.*]] = llvm.mlir.constant(1 : index) : i64
// CHECK: llvm.insertvalue %[[ONE]], %{{.*}}[4, 1]
func.func @weight(%table: !llvm.ptr, %slot: index) -> memref<4x64xf32> {
  %m = moe.weight %table[%slot] "norm.weight" : memref<4x64xf32>
  return %m : memref<4x64xf32>
}
