// moe-to-cuda-pipeline with attention-tensor-cores on sm_90a: the
// flash-attention kernels of moe-tile-attention-sm90 down to PTX, the cubin
// and its SASS, offline (that they compute the right numbers needs a GPU:
// scripts/gpu-check.sh runs test/gpu/attention_sm90.py).
// RUN: moec-opt %s -moe-to-cuda-pipeline="format=isa attention-tensor-cores=true" > %t.mlir
// RUN: FileCheck %s < %t.mlir
// RUN: %if cuda-toolkit %{ %python %test_utils/check_gpu_kernels.py %t.mlir --ptxas %cuda_toolkit/bin/ptxas --name attention | FileCheck %s --check-prefix=PTXAS %}
// RUN: %if cuda-toolkit && cuobjdump %{ %python %test_utils/check_gpu_kernels.py %t.mlir --ptxas %cuda_toolkit/bin/ptxas --cuobjdump %cuobjdump --name attention | FileCheck %s --check-prefix=SASS %}
// Off (the default), or for another chip: the generic f32 kernels.
// RUN: moec-opt %s -moe-to-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=GENERIC
// RUN: moec-opt %s -moe-to-cuda-pipeline="format=isa attention-tensor-cores=true chip=sm_80 features=+ptx70" | FileCheck %s --check-prefix=GENERIC

// Host: f32 operands rounded to bf16 by a kernel, then the attention
// kernel, on the function's one stream, synchronised once at the end.
// CHECK-LABEL: llvm.func @layer
// CHECK: %[[STREAM:.*]] = llvm.call @mgpuStreamCreate()
// CHECK: gpu.launch_func <%[[STREAM]] : !llvm.ptr> @layer_kernel
// CHECK: gpu.launch_func <%[[STREAM]] : !llvm.ptr> @attention_sm90_h32_kv8_d128_f32::
// CHECK: gpu.launch_func <%[[STREAM]] : !llvm.ptr> @attention_sm90_h4_kv2_d64_w512_bf16::
// CHECK: llvm.call @mgpuStreamSynchronize(%[[STREAM]])
// CHECK-NOT: llvm.call @mgpuStreamSynchronize
// CHECK: llvm.return

// The PTX: key and value tiles by cp.async (16 bytes, zero-filled past the
// last key), fragments by ldmatrix (transposed for the values), bf16
// mma.sync with f32 accumulators, the row max across a row's 4 lanes, exp2
// (in whatever order the blocks are laid out).
// CHECK: gpu.binary @attention_sm90_h32_kv8_d128_f32
// CHECK-DAG: cp.async.cg.shared.global [%rd{{[0-9]+}}{{(\+[0-9]+)?}}], [%rd{{[0-9]+}}], 16, %r{{[0-9]+}};
// CHECK-DAG: cp.async.commit_group
// CHECK-DAG: cp.async.wait_group {{(\\09)?}}1;
// CHECK-DAG: bar.sync {{(\\09)?}}0;
// CHECK-DAG: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// CHECK-DAG: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-DAG: shfl.sync.bfly.b32
// CHECK-DAG: ex2.approx
// CHECK-DAG: cvt.rn.bf16x2.f32
// CHECK-DAG: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// CHECK: gpu.binary @attention_sm90_h4_kv2_d64_w512_bf16

// ptxas finds no spills; 64 + 64 products per key block at Dh = 128, 32 +
// 32 at Dh = 64.
// PTXAS: kernel attention_sm90_h32_kv8_d128_f32: {{[0-9]+}} registers, 0 bytes spill stores, 0 bytes spill loads
// PTXAS: ptx attention_sm90_h32_kv8_d128_f32: 0 wgmma.mma_async, 0 cp.async.bulk.tensor, 0 mbarrier waits, 128 mma.sync
// PTXAS: kernel attention_sm90_h4_kv2_d64_w512_bf16: {{[0-9]+}} registers, 0 bytes spill stores, 0 bytes spill loads
// PTXAS: ptx attention_sm90_h4_kv2_d64_w512_bf16: 0 wgmma.mma_async, 0 cp.async.bulk.tensor, 0 mbarrier waits, 64 mma.sync

// In the SASS, the tensor cores' HMMA.
// SASS: sass attention_sm90_h32_kv8_d128_f32: 0 HGMMA, 0 UTMALDG, {{[0-9]+}} FFMA, {{[1-9][0-9]*}} HMMA
// SASS: sass attention_sm90_h4_kv2_d64_w512_bf16: 0 HGMMA, 0 UTMALDG, {{[0-9]+}} FFMA, {{[1-9][0-9]*}} HMMA

// GENERIC-NOT: attention_sm90
// GENERIC-NOT: mma.sync

func.func @layer(%q: tensor<1x?x32x128xf32>, %k: tensor<1x?x8x128xbf16>,
                 %v: tensor<1x?x8x128xbf16>, %q2: tensor<?x?x4x64xbf16>,
                 %k2: tensor<?x?x2x64xbf16>, %v2: tensor<?x?x2x64xbf16>)
    -> (tensor<1x?x32x128xf32>, tensor<?x?x4x64xbf16>) {
  %o = moe.attention %q, %k, %v
      : (tensor<1x?x32x128xf32>, tensor<1x?x8x128xbf16>, tensor<1x?x8x128xbf16>)
      -> tensor<1x?x32x128xf32>
  %o2 = moe.attention %q2, %k2, %v2 window(512)
      : (tensor<?x?x4x64xbf16>, tensor<?x?x2x64xbf16>, tensor<?x?x2x64xbf16>)
      -> tensor<?x?x4x64xbf16>
  return %o, %o2 : tensor<1x?x32x128xf32>, tensor<?x?x4x64xbf16>
}
