// Runs moe.grouped_matmul (plain and SwiGLU) and moe.combine on a CUDA GPU
// through the CUDA pipeline and the moec runtime; the same inputs and
// NumPy-computed expectations as codegen/moe-to-cpu-pipeline.mlir. Managed
// memory (host-shared), so that the host prints the results.
// REQUIRES: cuda-gpu, cuda-toolkit
// RUN: moec-opt %s -moe-to-cuda-pipeline=host-shared \
// RUN: | mlir-runner -e main -entry-point-result=i32 \
// RUN:     -shared-libs=%moec_cuda_runtime,%mlir_runner_utils,%mlir_c_runner_utils \
// RUN: | FileCheck %s
// The same module linked ahead of time into an executable with the moec
// runtime, as a compiled model is, instead of JIT-run: its kernels' modules
// then unload from global destructors after the driver's own exit-time
// teardown, which must stay silent (MOEC_CUDA_RUNTIME_FATAL=1 aborts on any
// runtime error, and @main's i32 result is the exit status).
// RUN: moec-opt %s -moe-to-cuda-pipeline=host-shared | mlir-translate --mlir-to-llvmir -o %t.ll
// RUN: llc -O2 -filetype=obj -relocation-model=pic %t.ll -o %t.o
// RUN: %cc %t.o %moec_cuda_runtime %mlir_runner_utils %mlir_c_runner_utils \
// RUN:     -Wl,-rpath,%moec_lib_dir -Wl,-rpath,%llvm_lib_dir -o %t.exe
// RUN: env MOEC_CUDA_RUNTIME_FATAL=1 %t.exe 2>&1 | FileCheck %s --check-prefixes=CHECK,AOT

func.func private @printMemrefF32(tensor<*xf32>)

func.func @grouped(%x: tensor<?x4xf32>, %w: tensor<3x2x4xf32>,
                   %offsets: tensor<4xi32>) -> tensor<?x2xf32> {
  %y = moe.grouped_matmul %x, %w offsets(%offsets)
      : (tensor<?x4xf32>, tensor<3x2x4xf32>, tensor<4xi32>) -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

func.func @grouped_swiglu(%x: tensor<?x4xf32>, %w: tensor<3x2x4xf32>,
                          %u: tensor<3x2x4xf32>, %offsets: tensor<4xi32>,
                          %scale: tensor<?xf32>) -> tensor<?x2xf32> {
  %y = moe.grouped_matmul %x, %w, %u offsets(%offsets) scale(%scale)
      epilogue(swiglu)
      : (tensor<?x4xf32>, tensor<3x2x4xf32>, tensor<3x2x4xf32>, tensor<4xi32>,
         tensor<?xf32>) -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

func.func @combine(%rows: tensor<?x3xf32>, %weights: tensor<?x2xf32>,
                   %slots: tensor<?x2xi32>, %counts: tensor<?xi32>)
    -> tensor<?x3xf32> {
  %y = moe.combine %rows, %weights, %slots, %counts
      : (tensor<?x3xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>)
      -> tensor<?x3xf32>
  return %y : tensor<?x3xf32>
}

func.func @main() -> i32 {
  // Constants live in host memory; alloc_tensor copies become GPU-visible
  // (managed) buffers through moe-map-allocs-to-gpu.
  %x_c = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, -1.0],
                               [2.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0],
                               [-1.0, 0.5, 2.0, 0.0]]> : tensor<5x4xf32>
  %w_c = arith.constant dense<[[[-1.25, -1.125, -1.0, -0.875], [-0.75, -0.625, -0.5, -0.375]],
                               [[-0.25, -0.125, 0.0, 0.125], [0.25, 0.375, 0.5, 0.625]],
                               [[0.75, 0.875, 1.0, 1.125], [1.25, 1.375, 1.5, 1.625]]]> : tensor<3x2x4xf32>
  %u_c = arith.constant dense<[[[1.1, 1.0, 0.9, 0.8], [0.7, 0.6, 0.5, 0.4]],
                               [[0.3, 0.2, 0.1, 0.0], [-0.1, -0.2, -0.3, -0.4]],
                               [[-0.5, -0.6, -0.7, -0.8], [-0.9, -1.0, -1.1, -1.2]]]> : tensor<3x2x4xf32>
  %off_c = arith.constant dense<[0, 2, 2, 5]> : tensor<4xi32>
  %scale_c = arith.constant dense<[0.5, 1.0, 2.0, -1.0, 0.25]> : tensor<5xf32>
  %x0 = bufferization.alloc_tensor() copy(%x_c) : tensor<5x4xf32>
  %w = bufferization.alloc_tensor() copy(%w_c) : tensor<3x2x4xf32>
  %u = bufferization.alloc_tensor() copy(%u_c) : tensor<3x2x4xf32>
  %offsets = bufferization.alloc_tensor() copy(%off_c) : tensor<4xi32>
  %scale0 = bufferization.alloc_tensor() copy(%scale_c) : tensor<5xf32>
  %x = tensor.cast %x0 : tensor<5x4xf32> to tensor<?x4xf32>
  %scale = tensor.cast %scale0 : tensor<5xf32> to tensor<?xf32>

  %y = call @grouped(%x, %w, %offsets)
      : (tensor<?x4xf32>, tensor<3x2x4xf32>, tensor<4xi32>) -> tensor<?x2xf32>
  %y_u = tensor.cast %y : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%y_u) : (tensor<*xf32>) -> ()
  // CHECK: rank = 2 offset = 0 sizes = [5, 2]
  // CHECK-NEXT: [-10, -5]
  // CHECK-NEXT: [-0.25, -0.25]
  // CHECK-NEXT: [2.5, 4]
  // CHECK-NEXT: [3.75, 5.75]
  // CHECK-NEXT: [1.6875, 2.4375]

  %h = call @grouped_swiglu(%x, %w, %u, %offsets, %scale)
      : (tensor<?x4xf32>, tensor<3x2x4xf32>, tensor<3x2x4xf32>, tensor<4xi32>,
         tensor<?xf32>) -> tensor<?x2xf32>
  %h_u = tensor.cast %h : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%h_u) : (tensor<*xf32>) -> ()
  // CHECK: rank = 2 offset = 0 sizes = [5, 2]
  // CHECK-NEXT: [-0.00204{{[0-9]*}}, -0.08366{{[0-9]*}}]
  // CHECK-NEXT: [-0.02189{{[0-9]*}}, -0.02189{{[0-9]*}}]
  // CHECK-NEXT: [-7.8552{{[0-9]*}}, -22.782{{[0-9]*}}]
  // CHECK-NEXT: [9.5259{{[0-9]*}}, 24.073{{[0-9]*}}]
  // CHECK-NEXT: [-0.42722{{[0-9]*}}, -1.0087{{[0-9]*}}]

  %rows_c = arith.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0],
                                  [7.0, 8.0, 9.0], [-1.0, -2.0, -3.0]]> : tensor<4x3xf32>
  %weights_c = arith.constant dense<[[0.75, 0.25], [1.0, 0.0], [0.0, 0.0], [0.5, 0.0]]> : tensor<4x2xf32>
  %slots_c = arith.constant dense<[[0, 2], [1, -1], [-1, -1], [3, -1]]> : tensor<4x2xi32>
  %counts_c = arith.constant dense<[2, 1, 0, 1]> : tensor<4xi32>
  %rows0 = bufferization.alloc_tensor() copy(%rows_c) : tensor<4x3xf32>
  %weights0 = bufferization.alloc_tensor() copy(%weights_c) : tensor<4x2xf32>
  %slots0 = bufferization.alloc_tensor() copy(%slots_c) : tensor<4x2xi32>
  %counts0 = bufferization.alloc_tensor() copy(%counts_c) : tensor<4xi32>
  %rows = tensor.cast %rows0 : tensor<4x3xf32> to tensor<?x3xf32>
  %weights = tensor.cast %weights0 : tensor<4x2xf32> to tensor<?x2xf32>
  %slots = tensor.cast %slots0 : tensor<4x2xi32> to tensor<?x2xi32>
  %counts = tensor.cast %counts0 : tensor<4xi32> to tensor<?xi32>
  %c = call @combine(%rows, %weights, %slots, %counts)
      : (tensor<?x3xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>)
      -> tensor<?x3xf32>
  %c_u = tensor.cast %c : tensor<?x3xf32> to tensor<*xf32>
  call @printMemrefF32(%c_u) : (tensor<*xf32>) -> ()
  // CHECK: rank = 2 offset = 0 sizes = [4, 3]
  // CHECK-NEXT: [2.5, 3.5, 4.5]
  // CHECK-NEXT: [4, 5, 6]
  // CHECK-NEXT: [0, 0, 0]
  // CHECK-NEXT: [-0.5, -1, -1.5]
  // AOT-NOT: moec-cuda-runtime
  %ok = arith.constant 0 : i32
  return %ok : i32
}
