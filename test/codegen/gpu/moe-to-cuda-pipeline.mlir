// The CUDA pipeline: kernels outlined from the moe ops, compiled by the NVPTX
// backend for sm_90a, assembled into a cubin by ptxas, launched from host
// code through the mgpu* runtime ABI.

// PTX needs no CUDA toolkit: check the kernels and the host side.
// RUN: moec-opt %s -moe-to-cuda-pipeline="format=isa" | FileCheck %s

// With ptxas, the object is a real sm_90a cubin.
// RUN: %if cuda-toolkit %{ moec-opt %s -moe-to-cuda-pipeline > %t.mlir %}
// RUN: %if cuda-toolkit %{ FileCheck %s --check-prefix=BIN < %t.mlir %}
// RUN: %if cuda-toolkit %{ %python %test_utils/extract_gpu_binary.py %t.mlir %t.cubin %}
// RUN: %if cuda-toolkit %{ llvm-readelf -h %t.cubin | FileCheck %s --check-prefix=ELF %}
// RUN: %if cuda-toolkit %{ llvm-strings %t.cubin | FileCheck %s --check-prefix=PTXAS %}

// CHECK-LABEL: llvm.func @grouped
// Buffers live in device memory, every op on one stream, synchronised once.
// CHECK: %[[STREAM:.*]] = llvm.call @mgpuStreamCreate()
// CHECK: llvm.call @mgpuMemAlloc
// CHECK: gpu.launch_func <%[[STREAM]] : !llvm.ptr> @grouped_kernel::@grouped_kernel
// CHECK: gpu.launch_func
// CHECK: llvm.call @mgpuStreamSynchronize(%[[STREAM]])
// CHECK-NOT: llvm.call @mgpuStreamSynchronize
// CHECK: llvm.return

// CHECK: gpu.binary @grouped_kernel [#gpu.object<#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">
// CHECK-SAME: assembly = "
// CHECK-SAME: .target sm_90a
// CHECK-SAME: .visible .entry grouped_kernel(

// BIN: gpu.binary @grouped_kernel [#gpu.object<#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">
// BIN-SAME: bin = "\7FELF
// ELF: Machine: NVIDIA CUDA architecture
// ELF: Flags: {{.*}} sm_90
// PTXAS: -arch sm_90a

func.func @grouped(%x: tensor<?x4xf32>, %w: tensor<3x2x4xf32>,
                   %offsets: tensor<4xi32>) -> tensor<?x2xf32> {
  %y = moe.grouped_matmul %x, %w offsets(%offsets)
      : (tensor<?x4xf32>, tensor<3x2x4xf32>, tensor<4xi32>) -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}
