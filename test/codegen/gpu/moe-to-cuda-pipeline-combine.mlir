// moe-to-cuda-pipeline on a top-2 MoE block whose result is added to a
// residual: where the routed experts' sum (moe.combine) is computed.
// RUN: moec-opt %s -moe-to-cuda-pipeline="format=isa" > %t.gather.mlir
// RUN: FileCheck %s --check-prefix=GATHER < %t.gather.mlir
// RUN: moec-opt %s -moe-to-cuda-pipeline="format=isa combine-scatter=true" > %t.scatter.mlir
// RUN: FileCheck %s --check-prefix=SCATTER < %t.scatter.mlir
// RUN: %if cuda-toolkit %{ %python %test_utils/check_gpu_kernels.py %t.scatter.mlir --ptxas %cuda_toolkit/bin/ptxas --name scatter | FileCheck %s --check-prefix=PTXAS %}
// RUN: %if cuda-toolkit %{ moec-opt %s -moe-to-cuda-pipeline="format=isa combine-scatter=true tile-cols=256" > %t.wide.mlir %}
// RUN: %if cuda-toolkit %{ %python %test_utils/check_gpu_kernels.py %t.wide.mlir --ptxas %cuda_toolkit/bin/ptxas --name scatter | FileCheck %s --check-prefix=WIDE %}
// RUN: %if cuda-toolkit && cuobjdump %{ %python %test_utils/check_gpu_kernels.py %t.scatter.mlir --ptxas %cuda_toolkit/bin/ptxas --cuobjdump %cuobjdump --name scatter | FileCheck %s --check-prefix=SASS %}

// By default the down projection stores its rows, and a kernel of its own
// gathers each token's two rows: four GEMM launches (router logits, SwiGLU,
// down, and nothing else), one of them the plain scaled down projection.
// GATHER-LABEL: llvm.func @block
// GATHER: gpu.launch_func <%{{.*}}> @grouped_matmul_sm90_g8_n512_k256_swiglu_bf16::
// GATHER: gpu.launch_func <%{{.*}}> @grouped_matmul_sm90_g8_n256_k512_scale_f32::
// GATHER-NOT: scatter
// GATHER: llvm.return

// With combine-scatter, the down projection's epilogue adds each row into
// its token's row of a zeroed output (a fill kernel first), and no gather
// runs after it: the next launch is the residual add.
// SCATTER-LABEL: llvm.func @block
// SCATTER: gpu.launch_func <%{{.*}}> @grouped_matmul_sm90_g8_n512_k256_swiglu_bf16::
// SCATTER: gpu.launch_func <%{{.*}}> @grouped_matmul_sm90_g8_n256_k512_scale_scatter_f32::
// SCATTER: gpu.binary @grouped_matmul_sm90_g8_n256_k512_scale_scatter_f32
// SCATTER-SAME: atom.global.add.f32

// PTXAS: kernel grouped_matmul_sm90_g8_n256_k512_scale_scatter_f32: {{[0-9]+}} registers, 0 bytes spill stores, 0 bytes spill loads, 0 wgmma serialisations
// PTXAS: ptx grouped_matmul_sm90_g8_n256_k512_scale_scatter_f32: {{.*}} 128 atom.global.add.f32
// The same on 128 x 256 tiles (two warpgroups).
// WIDE: kernel grouped_matmul_sm90_g8_n256_k512_scale_scatter_w256_f32: {{[0-9]+}} registers, 0 bytes spill stores, 0 bytes spill loads, 0 wgmma serialisations
// WIDE: ptx grouped_matmul_sm90_g8_n256_k512_scale_scatter_w256_f32: {{[1-9][0-9]*}} wgmma.mma_async, {{.*}} 128 atom.global.add.f32
// The adds' results are unused: ptxas makes them reductions in L2.
// SASS: sass grouped_matmul_sm90_g8_n256_k512_scale_scatter_f32: {{.*}} 128 RED.ADD.F32

func.func @block(%x: tensor<?x256xbf16>, %gate: tensor<8x256xbf16>,
                 %w1: tensor<8x512x256xbf16>, %w3: tensor<8x512x256xbf16>,
                 %w2: tensor<8x256x512xbf16>) -> tensor<?x256xbf16> {
  %y = moe.moe_block %x gate(%gate : tensor<8x256xbf16>)
      experts(%w1, %w3, %w2 : tensor<8x512x256xbf16>, tensor<8x512x256xbf16>,
              tensor<8x256x512xbf16>)
      policy(#moe.top_k<k = 2>) : tensor<?x256xbf16> -> tensor<?x256xbf16>
  return %y : tensor<?x256xbf16>
}
