// RUN: moec-opt %s -resolve-ranked-shaped-type-result-dims -split-input-file | FileCheck %s

// The sizes of a grouped matmul's result: the input's rows, the weights'
// rows.
// CHECK-LABEL: func.func @grouped_matmul_dims
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[W:.*]]: tensor<2x?x64xf32>, %[[OFF:.*]]: tensor<3xi32>)
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[C1:.*]] = arith.constant 1 : index
// CHECK-DAG: %[[R:.*]] = tensor.dim %[[X]], %[[C0]]
// CHECK-DAG: %[[N:.*]] = tensor.dim %[[W]], %[[C1]]
// CHECK: return %[[R]], %[[N]]
func.func @grouped_matmul_dims(%x: tensor<?x64xf32>, %w: tensor<2x?x64xf32>,
                               %off: tensor<3xi32>) -> (index, index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %y = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x64xf32>, tensor<2x?x64xf32>, tensor<3xi32>) -> tensor<?x?xf32>
  %r = tensor.dim %y, %c0 : tensor<?x?xf32>
  %n = tensor.dim %y, %c1 : tensor<?x?xf32>
  return %r, %n : index, index
}

// -----

// A combine's: the tokens of slot_to_row, the rows' width.
// CHECK-LABEL: func.func @combine_dims
// CHECK-SAME: (%[[ROWS:.*]]: tensor<?x?xf32>, %[[SLOTS:.*]]: tensor<?x2xi32>, %[[COUNTS:.*]]: tensor<?xi32>)
// CHECK-DAG: %[[T:.*]] = tensor.dim %[[SLOTS]], %c0
// CHECK-DAG: %[[D:.*]] = tensor.dim %[[ROWS]], %c1
// CHECK: return %[[T]], %[[D]]
func.func @combine_dims(%rows: tensor<?x?xf32>, %slots: tensor<?x2xi32>,
                        %counts: tensor<?xi32>) -> (index, index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %y = moe.combine %rows, %slots, %counts
      : (tensor<?x?xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x?xf32>
  %t = tensor.dim %y, %c0 : tensor<?x?xf32>
  %d = tensor.dim %y, %c1 : tensor<?x?xf32>
  return %t, %d : index, index
}
