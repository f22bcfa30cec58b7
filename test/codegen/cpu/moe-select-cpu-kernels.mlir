// The kernel shapes chosen per target CPU (the CPUs are named, so the
// choices do not depend on the machine running the test), the overrides,
// and the errors.
// RUN: moec-opt %s -moe-select-cpu-kernels="cpu=znver3" | FileCheck %s --check-prefix=AVX2
// RUN: moec-opt %s -moe-select-cpu-kernels="cpu=znver4 cpu-features=-avx512f" | FileCheck %s --check-prefix=AVX2
// RUN: moec-opt %s -moe-select-cpu-kernels="cpu=znver4" | FileCheck %s --check-prefix=AVX512
// RUN: moec-opt %s -moe-select-cpu-kernels="cpu=skylake-avx512" | FileCheck %s --check-prefix=AVX512
// RUN: moec-opt %s -moe-select-cpu-kernels="cpu=x86-64" | FileCheck %s --check-prefix=SSE
// RUN: moec-opt %s -moe-select-cpu-kernels="cpu=znver3 micro-rows=4 tile-k=1024 heads-per-step=1" | FileCheck %s --check-prefix=OVERRIDE
// RUN: moec-opt %s -moe-select-cpu-kernels="cpu=znver3 vector-width=16 query-block=8 key-block=32 attention-micro-rows=2" | FileCheck %s --check-prefix=ATTENTION
// RUN: moec-opt %s -moe-select-cpu-kernels="cpu=znver3 kernel=dot" | FileCheck %s --check-prefix=AVX2-DOT
// RUN: moec-opt %s -moe-select-cpu-kernels="cpu=znver4 bf16-dot=true" | FileCheck %s --check-prefix=BF16
// RUN: moec-opt %s -moe-select-cpu-kernels="cpu=znver3 kernel=outer" | FileCheck %s --check-prefix=OUTER
// RUN: not moec-opt %s -moe-select-cpu-kernels="cpu=bogus" 2>&1 | FileCheck %s --check-prefix=BAD-CPU
// RUN: not moec-opt %s -moe-select-cpu-kernels="cpu=znver3 cpu-features=+nonsense" 2>&1 | FileCheck %s --check-prefix=BAD-FEATURE
// RUN: not moec-opt %s -moe-select-cpu-kernels="cpu=znver3 cpu-features=avx2" 2>&1 | FileCheck %s --check-prefix=BAD-SIGN
// RUN: not moec-opt %s -moe-select-cpu-kernels="cpu=znver3 bf16-dot=true" 2>&1 | FileCheck %s --check-prefix=BAD-BF16
// RUN: not moec-opt %s -moe-select-cpu-kernels="cpu=znver3 kernel=inner" 2>&1 | FileCheck %s --check-prefix=BAD-KIND
// RUN: not moec-opt %s -moe-select-cpu-kernels="cpu=znver3 micro-cols=12" 2>&1 | FileCheck %s --check-prefix=BAD-SHAPE
// RUN: not moec-opt %s -moe-select-cpu-kernels="cpu=znver3 heads-per-step=3" 2>&1 | FileCheck %s --check-prefix=BAD-HEADS
// RUN: not moec-opt %s -moe-select-cpu-kernels="cpu=znver3 query-block=3" 2>&1 | FileCheck %s --check-prefix=BAD-ROWS
// RUN: not moec-opt %s -moe-select-cpu-kernels="cpu=znver3 attention-micro-rows=5" 2>&1 | FileCheck %s --check-prefix=BAD-MICRO

// 16 registers of 8 lanes (AVX2): outer products on packed panels, 6 rows x
// 2 vectors; attention work items of 2 row vectors (16 query rows: a whole
// GQA group of 2 or 4 heads times 8 or 4 positions), register blocks of 4.
// AVX2-LABEL: func @kernels
// AVX2: moe.grouped_matmul {{.*}} {moe.kernel = #moe.cpu_matmul_kernel<outer, tile_rows = 192, tile_cols = 64, tile_k = 512, micro_rows = 6, micro_cols = 16, vector_width = 8>}
// AVX2: moe.grouped_matmul {{.*}} {moe.kernel = #moe.cpu_matmul_kernel<outer, tile_rows = 192, tile_cols = 64, tile_k = 512, micro_rows = 6, micro_cols = 16, vector_width = 8>}
// AVX2-NOT: moe.kernel
// AVX2: moe.grouped_matmul
// AVX2: moe.attention {{.*}} {moe.kernel = #moe.attention_kernel<heads_per_step = 2, query_block = 8, key_block = 64, micro_rows = 4, vector_width = 8>}
// AVX2: moe.grouped_attention {{.*}} {moe.kernel = #moe.attention_kernel<heads_per_step = 4, query_block = 4, key_block = 64, micro_rows = 4, vector_width = 8>}

// 32 registers of 16 lanes (AVX-512): 6 rows x 4 vectors; attention work
// items of 2 row vectors (32 query rows), register blocks of 8.
// AVX512-LABEL: func @kernels
// AVX512: moe.grouped_matmul {{.*}} {moe.kernel = #moe.cpu_matmul_kernel<outer, tile_rows = 192, tile_cols = 64, tile_k = 512, micro_rows = 6, micro_cols = 64, vector_width = 16>}
// AVX512: moe.attention {{.*}} {moe.kernel = #moe.attention_kernel<heads_per_step = 2, query_block = 16, key_block = 64, micro_rows = 8, vector_width = 16>}
// AVX512: moe.grouped_attention {{.*}} {moe.kernel = #moe.attention_kernel<heads_per_step = 4, query_block = 8, key_block = 64, micro_rows = 8, vector_width = 16>}

// 16 registers of 4 lanes (baseline x86-64, SSE).
// SSE-LABEL: func @kernels
// SSE: moe.grouped_matmul {{.*}} {moe.kernel = #moe.cpu_matmul_kernel<outer, tile_rows = 192, tile_cols = 64, tile_k = 512, micro_rows = 6, micro_cols = 8, vector_width = 4>}
// SSE: moe.attention {{.*}} {moe.kernel = #moe.attention_kernel<heads_per_step = 2, query_block = 4, key_block = 64, micro_rows = 4, vector_width = 4>}
// SSE: moe.grouped_attention {{.*}} {moe.kernel = #moe.attention_kernel<heads_per_step = 4, query_block = 2, key_block = 64, micro_rows = 4, vector_width = 4>}

// OVERRIDE-LABEL: func @kernels
// OVERRIDE: #moe.cpu_matmul_kernel<outer, tile_rows = 192, tile_cols = 64, tile_k = 1024, micro_rows = 4, micro_cols = 16, vector_width = 8>
// One head per work item keeps the 16 rows: 16 positions.
// OVERRIDE: moe.attention {{.*}} {moe.kernel = #moe.attention_kernel<heads_per_step = 1, query_block = 16, key_block = 64, micro_rows = 4, vector_width = 8>}
// ATTENTION: moe.attention {{.*}} {moe.kernel = #moe.attention_kernel<heads_per_step = 2, query_block = 8, key_block = 32, micro_rows = 2, vector_width = 16>}

// Asking for the other kernel starts from its own shape for the target.
// AVX2-DOT: #moe.cpu_matmul_kernel<dot, tile_rows = 64, tile_cols = 64, tile_k = 1024, micro_rows = 4, micro_cols = 3, vector_width = 8>

// The BF16 dot product multiplies along K: the dot kernel.
// BF16: #moe.cpu_matmul_kernel<dot, tile_rows = 64, tile_cols = 64, tile_k = 1024, micro_rows = 4, micro_cols = 4, vector_width = 16, bf16_dot = true>

// BAD-CPU: error: moe-select-cpu-kernels: unknown CPU 'bogus'
// BAD-CPU-NOT: not a recognized
// BAD-FEATURE: error: moe-select-cpu-kernels: unknown CPU feature 'nonsense'
// BAD-SIGN: error: moe-select-cpu-kernels: CPU feature 'avx2' must start with '+' or '-'
// BAD-BF16: error: moe-select-cpu-kernels: bf16-dot needs a CPU with avx512bf16, and znver3 has none
// BAD-KIND: error: moe-select-cpu-kernels: kernel must be dot or outer, got 'inner'
// BAD-HEADS: error: 'moe.attention' op heads-per-step 3 does not divide the heads per kv-head (2)
// BAD-ROWS: error: 'moe.attention' op attention_kernel needs its query rows (heads_per_step x query_block = 6) to be a multiple of vector_width (8)
// BAD-MICRO: error: 'moe.attention' op attention-micro-rows 5 does not divide the head dimension (64)
// BAD-SHAPE: error: an outer cpu_matmul_kernel needs micro_cols (12) to be a multiple of vector_width (8)

func.func @kernels(%x: tensor<?x64xf32>, %w: tensor<8x32x64xf32>, %up: tensor<8x32x64xf32>,
                   %dyn: tensor<?x32x64xf32>, %off: tensor<9xi32>,
                   %q: tensor<?x?x16x64xf32>, %k: tensor<?x?x8x64xf32>,
                   %gq: tensor<?x?x8x16xf32>, %gk: tensor<?x?x2x16xf32>)
    -> (tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>,
        tensor<?x?x16x64xf32>, tensor<?x?x8x16xf32>) {
  %a = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x64xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<?x32xf32>
  %b = moe.grouped_matmul %x, %w, %up offsets(%off) epilogue(swiglu)
      : (tensor<?x64xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<?x32xf32>
  // A dynamic weight shape is left to convert-moe-to-linalg: no kernel.
  %c = moe.grouped_matmul %x, %dyn offsets(%off)
      : (tensor<?x64xf32>, tensor<?x32x64xf32>, tensor<9xi32>) -> tensor<?x32xf32>
  %o = moe.attention %q, %k, %k
      : (tensor<?x?x16x64xf32>, tensor<?x?x8x64xf32>, tensor<?x?x8x64xf32>) -> tensor<?x?x16x64xf32>
  %g = moe.grouped_attention %gq, %gk, %gk group_size(4) window(3)
      : (tensor<?x?x8x16xf32>, tensor<?x?x2x16xf32>, tensor<?x?x2x16xf32>) -> tensor<?x?x8x16xf32>
  return %a, %b, %c, %o, %g : tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>,
      tensor<?x?x16x64xf32>, tensor<?x?x8x16xf32>
}

// An attention with a query offset (a decode step) gets no kernel: the
// generic lowering serves its few queries.
// AVX2-LABEL: func @decode_attention
// AVX2: moe.attention %{{.*}}, %{{.*}}, %{{.*}} offset(%{{.*}}) :
// AVX2-NOT: moe.kernel
// AVX512-LABEL: func @decode_attention
// AVX512-NOT: moe.kernel
func.func @decode_attention(%q: tensor<?x1x16x64xf32>, %k: tensor<?x?x8x64xf32>, %p: index)
    -> tensor<?x1x16x64xf32> {
  %o = moe.attention %q, %k, %k offset(%p)
      : (tensor<?x1x16x64xf32>, tensor<?x?x8x64xf32>, tensor<?x?x8x64xf32>, index) -> tensor<?x1x16x64xf32>
  return %o : tensor<?x1x16x64xf32>
}

// In a decode step (`moe.decode_step`) a GEMM has about one row per
// sequence and group: the dot kernel, which reads the weights in place,
// with register blocks of 1 row x 4 columns. The overrides apply to it as
// well; asking for the outer kernel gives the outer kernel's shape.
// AVX2-LABEL: func @decode_step
// AVX2: moe.grouped_matmul {{.*}} {moe.kernel = #moe.cpu_matmul_kernel<dot, tile_rows = 64, tile_cols = 64, tile_k = 1024, micro_rows = 1, micro_cols = 4, vector_width = 8>}
// AVX512-LABEL: func @decode_step
// AVX512: moe.grouped_matmul {{.*}} {moe.kernel = #moe.cpu_matmul_kernel<dot, tile_rows = 64, tile_cols = 64, tile_k = 1024, micro_rows = 1, micro_cols = 4, vector_width = 16>}
// SSE-LABEL: func @decode_step
// SSE: #moe.cpu_matmul_kernel<dot, tile_rows = 64, tile_cols = 64, tile_k = 1024, micro_rows = 1, micro_cols = 4, vector_width = 4>
// BF16-LABEL: func @decode_step
// BF16: #moe.cpu_matmul_kernel<dot, tile_rows = 64, tile_cols = 64, tile_k = 1024, micro_rows = 1, micro_cols = 4, vector_width = 16, bf16_dot = true>
// OVERRIDE-LABEL: func @decode_step
// OVERRIDE: #moe.cpu_matmul_kernel<dot, tile_rows = 64, tile_cols = 64, tile_k = 1024, micro_rows = 4, micro_cols = 4, vector_width = 8>
// OUTER-LABEL: func @decode_step
// OUTER: #moe.cpu_matmul_kernel<outer, tile_rows = 192, tile_cols = 64, tile_k = 512, micro_rows = 6, micro_cols = 16, vector_width = 8>
func.func @decode_step(%x: tensor<?x64xf32>, %w: tensor<8x32x64xf32>, %off: tensor<9xi32>)
    -> tensor<?x32xf32> attributes {moe.decode_step} {
  %a = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x64xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<?x32xf32>
  return %a : tensor<?x32xf32>
}
