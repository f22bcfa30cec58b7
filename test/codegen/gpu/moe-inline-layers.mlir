// RUN: moec-opt %s -moe-inline-layers | FileCheck %s

// Both calls of the layer function become its body, launching the same
// kernel; the function is erased. Other calls stay. The layer's branch on
// its flag argument (a prefill's cache writes) folds at each call site: the
// launch it guards stays where the flag is true and goes where it is false.
module attributes {gpu.container_module} {
  gpu.module @layer_kernel {
    gpu.func @layer_kernel(%buf: memref<?xf32>) kernel { gpu.return }
    gpu.func @fill_kernel(%buf: memref<?xf32>) kernel { gpu.return }
  }

  func.func private @layer(%buf: memref<?xf32>, %slot: index, %fill: i1) attributes {moe.layers = array<i64: 0, 1>} {
    %c1 = arith.constant 1 : index
    gpu.launch_func @layer_kernel::@layer_kernel blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%buf : memref<?xf32>)
    scf.if %fill {
      gpu.launch_func @layer_kernel::@fill_kernel blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%buf : memref<?xf32>)
    }
    return
  }

  func.func private @helper(%buf: memref<?xf32>)

  // CHECK-NOT: func.func private @layer(
  // CHECK-LABEL: func @forward
  // CHECK-NOT: call @layer
  // CHECK-NOT: scf.if
  // CHECK: gpu.launch_func @layer_kernel::@layer_kernel
  // CHECK-NOT: @fill_kernel
  // CHECK: gpu.launch_func @layer_kernel::@layer_kernel
  // CHECK: gpu.launch_func @layer_kernel::@fill_kernel
  // CHECK-NOT: @fill_kernel
  // CHECK: call @helper
  // CHECK-NOT: call @layer
  // CHECK-NOT: scf.if
  func.func @forward(%buf: memref<?xf32>) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %false = arith.constant false
    %true = arith.constant true
    call @layer(%buf, %c0, %false) {no_inline} : (memref<?xf32>, index, i1) -> ()
    call @layer(%buf, %c1, %true) {no_inline} : (memref<?xf32>, index, i1) -> ()
    call @helper(%buf) : (memref<?xf32>) -> ()
    return
  }
}
