// RUN: moec-opt %s -moe-map-allocs-to-gpu | FileCheck %s
// RUN: moec-opt %s -moe-map-allocs-to-gpu="host-shared=false" | FileCheck %s --check-prefix=DEVICE
// RUN: moec-opt %s -moe-map-allocs-to-gpu="host-shared=false" -gpu-async-region | FileCheck %s --check-prefix=STREAM

module attributes {gpu.container_module} {
  // CHECK-LABEL: func @host
  // DEVICE-LABEL: func @host
  func.func @host(%n: index) {
    %c1 = arith.constant 1 : index
    // CHECK: %[[BUF:.*]] = gpu.alloc host_shared (%{{.*}}) : memref<?x8xf32>
    // Device memory: synchronous forms, which gpu-async-region chains on
    // one stream, waited for once at the end.
    // DEVICE: %[[BUF:.*]] = gpu.alloc  (%{{.*}}) : memref<?x8xf32>
    // DEVICE-NOT: gpu.wait
    // STREAM: %[[T0:.*]] = gpu.wait async
    // STREAM-NEXT: %[[BUF:.*]], %[[T1:.*]] = gpu.alloc async [%[[T0]]] (%{{.*}}) : memref<?x8xf32>
    // STREAM-NEXT: %[[T2:.*]] = gpu.launch_func async [%[[T1]]]
    // STREAM-NEXT: %[[T3:.*]] = gpu.dealloc async [%[[T2]]] %[[BUF]] : memref<?x8xf32>
    // STREAM-NEXT: gpu.wait [%[[T3]]]
    // STREAM-NEXT: return
    %buf = memref.alloc(%n) : memref<?x8xf32>
    gpu.launch_func @kernels::@k blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
        args(%buf : memref<?x8xf32>)
    // Managed memory: the deallocation in the async form gpu-to-llvm
    // lowers, waited for at once.
    // CHECK: %[[READY:.*]] = gpu.wait async
    // CHECK-NEXT: %[[DONE:.*]] = gpu.dealloc async [%[[READY]]] %[[BUF]] : memref<?x8xf32>
    // CHECK-NEXT: gpu.wait [%[[DONE]]]
    // DEVICE: gpu.dealloc  %[[BUF]] : memref<?x8xf32>
    memref.dealloc %buf : memref<?x8xf32>
    return
  }

  // Copies between host-side buffers become GPU copies.
  // CHECK-LABEL: func @copy
  // CHECK-SAME: (%[[A:.*]]: memref<?xf32>, %[[B:.*]]: memref<?xf32, strided<[1], offset: ?>>)
  // CHECK: %[[READY:.*]] = gpu.wait async
  // CHECK-NEXT: %[[DONE:.*]] = gpu.memcpy async [%[[READY]]] %[[B]], %[[A]]
  // CHECK-NEXT: gpu.wait [%[[DONE]]]
  // CHECK-NOT: memref.copy
  func.func @copy(%a: memref<?xf32>, %b: memref<?xf32, strided<[1], offset: ?>>) {
    memref.copy %a, %b : memref<?xf32> to memref<?xf32, strided<[1], offset: ?>>
    return
  }

  // Allocations inside kernels stay.
  // CHECK: gpu.module @kernels
  gpu.module @kernels {
    gpu.func @k(%buf: memref<?x8xf32>) kernel {
      // CHECK: memref.alloca() : memref<4xf32>
      %scratch = memref.alloca() : memref<4xf32>
      // CHECK: memref.alloc() : memref<4xf32>
      %local = memref.alloc() : memref<4xf32>
      // CHECK: memref.dealloc
      memref.dealloc %local : memref<4xf32>
      gpu.return
    }
  }
}
