// moe-to-cuda-pipeline on bf16 grouped matmuls for sm_90a: the tensor-core
// kernel of moe-tile-grouped-matmul-sm90 down to PTX, the cubin and its
// SASS, offline (that it computes the right numbers needs a GPU:
// scripts/gpu-check.sh runs test/gpu/grouped_gemm_sm90.py).
// RUN: moec-opt %s -moe-to-cuda-pipeline="format=isa" > %t.mlir
// RUN: FileCheck %s < %t.mlir
// RUN: %if cuda-toolkit %{ %python %test_utils/check_gpu_kernels.py %t.mlir --ptxas %cuda_toolkit/bin/ptxas --name sm90 | FileCheck %s --check-prefix=PTXAS %}
// RUN: %if cuda-toolkit && cuobjdump %{ %python %test_utils/check_gpu_kernels.py %t.mlir --ptxas %cuda_toolkit/bin/ptxas --cuobjdump %cuobjdump --name sm90 | FileCheck %s --check-prefix=SASS %}
// tile-cols=256: two warpgroups per CTA on 128 x 256 tiles.
// RUN: moec-opt %s -moe-to-cuda-pipeline="format=isa tile-cols=256" > %t.wide.mlir
// RUN: FileCheck %s --check-prefix=WIDE < %t.wide.mlir
// RUN: %if cuda-toolkit %{ %python %test_utils/check_gpu_kernels.py %t.wide.mlir --ptxas %cuda_toolkit/bin/ptxas --name sm90 | FileCheck %s --check-prefix=WIDE-PTXAS %}
// Without tensor cores, or for another chip, the generic f32 kernels.
// RUN: moec-opt %s -moe-to-cuda-pipeline="format=isa tensor-cores=false" | FileCheck %s --check-prefix=GENERIC
// RUN: moec-opt %s -moe-to-cuda-pipeline="format=isa chip=sm_80 features=+ptx70" | FileCheck %s --check-prefix=GENERIC

// Host: the descriptors come from the runtime, the launch is on the
// function's one stream, synchronised once at the end.
// CHECK-LABEL: llvm.func @experts
// CHECK: %[[STREAM:.*]] = llvm.call @mgpuStreamCreate()
// CHECK: llvm.call @mgpuTensorMapEncodeTiledMemref
// CHECK: gpu.launch_func <%[[STREAM]] : !llvm.ptr> @grouped_matmul_sm90_g8_n14336_k4096_swiglu_bf16::
// CHECK: llvm.call @mgpuTensorMapEncodeTiledMemref
// CHECK: gpu.launch_func <%[[STREAM]] : !llvm.ptr> @grouped_matmul_sm90_g8_n4096_k14336_scale_f32::
// CHECK: llvm.call @mgpuStreamSynchronize(%[[STREAM]])
// CHECK-NOT: llvm.call @mgpuStreamSynchronize
// CHECK: llvm.return

// The PTX: K-major bf16 wgmmas (imm-trans-a = imm-trans-b = 0) fed by
// bulk tensor copies completed on mbarriers.
// CHECK: gpu.binary @grouped_matmul_sm90_g8_n14336_k4096_swiglu_bf16
// CHECK-SAME: fence.proxy.async.shared::cta
// CHECK-SAME: @%p{{[0-9]+}} cp.async.bulk.tensor.2d.shared::cluster.global{{(.tile)?}}.mbarrier::complete_tx::bytes
// CHECK-SAME: mbarrier.try_wait.parity
// CHECK-SAME: wgmma.fence.sync.aligned
// CHECK-SAME: wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {{.*}} p, 1,  1, 0,  0;
// CHECK-SAME: wgmma.commit_group.sync.aligned
// CHECK-SAME: wgmma.wait_group.sync.aligned {{(\\09)?}}1;
// CHECK: gpu.binary @grouped_matmul_sm90_g8_n4096_k14336_scale_f32

// ptxas finds no spills.
// PTXAS: kernel grouped_matmul_sm90_g8_n14336_k4096_swiglu_bf16: {{[0-9]+}} registers, 0 bytes spill stores, 0 bytes spill loads, 0 wgmma serialisations
// PTXAS: ptx grouped_matmul_sm90_g8_n14336_k4096_swiglu_bf16: {{[1-9][0-9]*}} wgmma.mma_async, {{[1-9][0-9]*}} cp.async.bulk.tensor
// PTXAS: kernel grouped_matmul_sm90_g8_n4096_k14336_scale_f32: {{[0-9]+}} registers, 0 bytes spill stores, 0 bytes spill loads, 0 wgmma serialisations
// PTXAS: ptx grouped_matmul_sm90_g8_n4096_k14336_scale_f32: {{[1-9][0-9]*}} wgmma.mma_async, {{[1-9][0-9]*}} cp.async.bulk.tensor

// In the SASS, the tensor cores' warpgroup MMA fed by the TMA unit.
// SASS: sass grouped_matmul_sm90_g8_n14336_k4096_swiglu_bf16: {{[1-9][0-9]*}} HGMMA, {{[1-9][0-9]*}} UTMALDG
// SASS: sass grouped_matmul_sm90_g8_n4096_k14336_scale_f32: {{[1-9][0-9]*}} HGMMA, {{[1-9][0-9]*}} UTMALDG

// WIDE: gpu.launch_func <%{{.*}}> @grouped_matmul_sm90_g8_n14336_k4096_swiglu_w256_bf16::
// WIDE: gpu.binary @grouped_matmul_sm90_g8_n14336_k4096_swiglu_w256_bf16
// WIDE-SAME: .maxntid 256, 1, 1
// WIDE-SAME: wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16
// WIDE-PTXAS: kernel grouped_matmul_sm90_g8_n14336_k4096_swiglu_w256_bf16: {{[0-9]+}} registers, 0 bytes spill stores, 0 bytes spill loads, 0 wgmma serialisations
// WIDE-PTXAS: kernel grouped_matmul_sm90_g8_n4096_k14336_scale_w256_f32: {{[0-9]+}} registers, 0 bytes spill stores, 0 bytes spill loads, 0 wgmma serialisations

// GENERIC-LABEL: llvm.func @experts
// GENERIC-NOT: mgpuTensorMapEncodeTiledMemref
// GENERIC-NOT: wgmma

// Mixtral-8x7B's expert shapes (D = 4096, F = 14336).
func.func @experts(%x: tensor<?x4096xbf16>, %w1: tensor<8x14336x4096xbf16>,
                   %w3: tensor<8x14336x4096xbf16>, %w2: tensor<8x4096x14336xbf16>,
                   %off: tensor<9xi32>, %s: tensor<?xf32>) -> tensor<?x4096xf32> {
  %h = moe.grouped_matmul %x, %w1, %w3 offsets(%off) epilogue(swiglu)
      : (tensor<?x4096xbf16>, tensor<8x14336x4096xbf16>, tensor<8x14336x4096xbf16>,
         tensor<9xi32>) -> tensor<?x14336xbf16>
  %y = moe.grouped_matmul %h, %w2 offsets(%off) scale(%s)
      : (tensor<?x14336xbf16>, tensor<8x4096x14336xbf16>, tensor<9xi32>,
         tensor<?xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}
