// RUN: moec-opt %s -moe-fuse-routing-weights | FileCheck %s

// CHECK-LABEL: func @fuse
// CHECK-SAME: (%[[X:.*]]: tensor<?x4xf32>, %[[IDS:.*]]: tensor<?x2xi32>, %[[W:.*]]: tensor<?x2xf32>, %[[N:.*]]: tensor<?xi32>, %[[W2:.*]]: tensor<3x4x4xf32>)
// CHECK: %[[ROWS:.*]], %[[OFF:.*]], %[[R2T:.*]], %[[S2R:.*]] = moe.dispatch
// CHECK: %[[RW:.*]] = moe.row_weights %[[W]], %[[S2R]], %[[R2T]] : (tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?xf32>
// CHECK: %[[Y:.*]] = moe.grouped_matmul %[[ROWS]], %[[W2]] offsets(%[[OFF]]) scale(%[[RW]])
// CHECK: moe.combine %[[Y]], %[[S2R]], %[[N]] : (tensor<?x4xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x4xf32>
func.func @fuse(%x: tensor<?x4xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                %n: tensor<?xi32>, %w2: tensor<3x4x4xf32>) -> tensor<?x4xf32> {
  %rows, %off, %r2t, %s2r = moe.dispatch %x, %ids, %n
      : tensor<?x4xf32>, tensor<?x2xi32>, tensor<?xi32>
      -> tensor<?x4xf32>, tensor<4xi32>, tensor<?xi32>, tensor<?x2xi32>
  %y = moe.grouped_matmul %rows, %w2 offsets(%off)
      : (tensor<?x4xf32>, tensor<3x4x4xf32>, tensor<4xi32>) -> tensor<?x4xf32>
  %out = moe.combine %y, %w, %s2r, %n
      : (tensor<?x4xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x4xf32>
  return %out : tensor<?x4xf32>
}

// The rows have another user: scaling them would change it.
// CHECK-LABEL: func @rows_used_twice
// CHECK-NOT: moe.row_weights
// CHECK: moe.combine %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} :
func.func @rows_used_twice(%x: tensor<?x4xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                           %n: tensor<?xi32>, %w2: tensor<3x4x4xf32>)
    -> (tensor<?x4xf32>, tensor<?x4xf32>) {
  %rows, %off, %r2t, %s2r = moe.dispatch %x, %ids, %n
      : tensor<?x4xf32>, tensor<?x2xi32>, tensor<?xi32>
      -> tensor<?x4xf32>, tensor<4xi32>, tensor<?xi32>, tensor<?x2xi32>
  %y = moe.grouped_matmul %rows, %w2 offsets(%off)
      : (tensor<?x4xf32>, tensor<3x4x4xf32>, tensor<4xi32>) -> tensor<?x4xf32>
  %out = moe.combine %y, %w, %s2r, %n
      : (tensor<?x4xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x4xf32>
  return %out, %y : tensor<?x4xf32>, tensor<?x4xf32>
}

// A matmul that already scales its rows is left alone.
// CHECK-LABEL: func @already_scaled
// CHECK-NOT: moe.row_weights
// CHECK: moe.combine %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} :
func.func @already_scaled(%x: tensor<?x4xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                          %n: tensor<?xi32>, %w2: tensor<3x4x4xf32>,
                          %s: tensor<?xf32>) -> tensor<?x4xf32> {
  %rows, %off, %r2t, %s2r = moe.dispatch %x, %ids, %n
      : tensor<?x4xf32>, tensor<?x2xi32>, tensor<?xi32>
      -> tensor<?x4xf32>, tensor<4xi32>, tensor<?xi32>, tensor<?x2xi32>
  %y = moe.grouped_matmul %rows, %w2 offsets(%off) scale(%s)
      : (tensor<?x4xf32>, tensor<3x4x4xf32>, tensor<4xi32>, tensor<?xf32>) -> tensor<?x4xf32>
  %out = moe.combine %y, %w, %s2r, %n
      : (tensor<?x4xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x4xf32>
  return %out : tensor<?x4xf32>
}

// Without the dispatch there is no row-to-token map to gather weights with.
// CHECK-LABEL: func @no_dispatch
// CHECK-NOT: moe.row_weights
func.func @no_dispatch(%rows: tensor<?x4xf32>, %off: tensor<4xi32>, %w: tensor<?x2xf32>,
                       %s2r: tensor<?x2xi32>, %n: tensor<?xi32>,
                       %w2: tensor<3x4x4xf32>) -> tensor<?x4xf32> {
  %y = moe.grouped_matmul %rows, %w2 offsets(%off)
      : (tensor<?x4xf32>, tensor<3x4x4xf32>, tensor<4xi32>) -> tensor<?x4xf32>
  %out = moe.combine %y, %w, %s2r, %n
      : (tensor<?x4xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x4xf32>
  return %out : tensor<?x4xf32>
}
