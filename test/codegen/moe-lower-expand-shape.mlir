// RUN: moec-opt %s -moe-lower-expand-shape | FileCheck %s

// [B * T, 16] rows viewed as [B, T, 16]: two dynamic sizes in one group.
// CHECK-LABEL: func @split_rows
// CHECK-SAME: (%[[A:.*]]: memref<?x16xf32>, %[[B:.*]]: index, %[[T:.*]]: index)
// CHECK: %[[S:.*]] = arith.muli %c16, %[[T]]
// CHECK: memref.reinterpret_cast %[[A]] to offset: [0], sizes: [%[[B]], %[[T]], 16], strides: [%[[S]], 16, 1]
// CHECK-NOT: memref.expand_shape
func.func @split_rows(%a: memref<?x16xf32>, %b: index, %t: index) -> memref<?x?x16xf32> {
  %e = memref.expand_shape %a [[0, 1], [2]] output_shape [%b, %t, 16]
      : memref<?x16xf32> into memref<?x?x16xf32>
  return %e : memref<?x?x16xf32>
}

// Both groups split: strides are suffix products of the sizes.
// CHECK-LABEL: func @heads
// CHECK: memref.reinterpret_cast %{{.*}} to offset: [0], sizes: [%{{.*}}, %{{.*}}, 2, 8], strides: [%{{.*}}, 16, 8, 1]
func.func @heads(%a: memref<?x16xf32>, %b: index, %t: index) -> memref<?x?x2x8xf32> {
  %e = memref.expand_shape %a [[0, 1], [2, 3]] output_shape [%b, %t, 2, 8]
      : memref<?x16xf32> into memref<?x?x2x8xf32>
  return %e : memref<?x?x2x8xf32>
}

// One dynamic size per group: expand-strided-metadata handles it.
// CHECK-LABEL: func @one_dynamic
// CHECK: memref.expand_shape
func.func @one_dynamic(%a: memref<?x16xf32>, %b: index) -> memref<?x2x8xf32> {
  %e = memref.expand_shape %a [[0], [1, 2]] output_shape [%b, 2, 8]
      : memref<?x16xf32> into memref<?x2x8xf32>
  return %e : memref<?x2x8xf32>
}

// A strided source is not contiguous: left alone.
// CHECK-LABEL: func @strided_source
// CHECK: memref.expand_shape
func.func @strided_source(%a: memref<?x16xf32, strided<[32, 1]>>, %b: index, %t: index)
    -> memref<?x?x16xf32, strided<[?, 32, 1]>> {
  %e = memref.expand_shape %a [[0, 1], [2]] output_shape [%b, %t, 16]
      : memref<?x16xf32, strided<[32, 1]>> into memref<?x?x16xf32, strided<[?, 32, 1]>>
  return %e : memref<?x?x16xf32, strided<[?, 32, 1]>>
}
