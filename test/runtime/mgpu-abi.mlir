// Every mgpu* function that the CUDA pipeline's host code calls (kernel
// launch, module loading, streams, allocation) must be defined by the moec
// CUDA runtime, or a compiled program fails to link or load.
// REQUIRES: cuda-runtime
// PTX objects are loaded with the JIT entry point, cubins without it;
// device-only buffers use the async allocation path.
// RUN: moec-opt %s -moe-to-cuda-pipeline="format=isa" | mlir-translate -mlir-to-llvmir -o %t.ll
// RUN: %python %test_utils/check_mgpu_abi.py %t.ll %moec_cuda_runtime llvm-nm | FileCheck %s --check-prefixes=CHECK,JIT
// RUN: moec-opt %s -moe-to-cuda-pipeline="format=llvm host-shared=false" | mlir-translate -mlir-to-llvmir -o %t.device.ll
// RUN: %python %test_utils/check_mgpu_abi.py %t.device.ll %moec_cuda_runtime llvm-nm | FileCheck %s --check-prefixes=CHECK

// JIT-DAG: OK mgpuModuleLoadJIT
// CHECK-DAG: OK mgpuModuleGetFunction
// CHECK-DAG: OK mgpuLaunchKernel
// CHECK-DAG: OK mgpuStreamCreate
// CHECK-DAG: OK mgpuStreamSynchronize
// CHECK-DAG: OK mgpuMemAlloc
// CHECK-DAG: OK mgpuMemFree
// CHECK-NOT: MISSING

func.func @grouped(%x: tensor<?x4xf32>, %w: tensor<3x2x4xf32>,
                   %offsets: tensor<4xi32>) -> tensor<?x2xf32> {
  %y = moe.grouped_matmul %x, %w offsets(%offsets)
      : (tensor<?x4xf32>, tensor<3x2x4xf32>, tensor<4xi32>) -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}
