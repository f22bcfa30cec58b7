// RUN: moec-opt %s -split-input-file -moe-tile-attention-sm90 | FileCheck %s
// RUN: moec-opt %s -split-input-file -moe-tile-attention-sm90 \
// RUN: | FileCheck %s --check-prefix=KERNEL
// RUN: moec-opt %s -split-input-file -moe-tile-attention-sm90="sm-count=16" \
// RUN: | FileCheck %s --check-prefix=SMS
// SMS-LABEL: func.func @decode
// SMS: arith.ceildivui %c32, %{{.*}}
// RUN: not moec-opt %s -split-input-file -moe-tile-attention-sm90="sm-count=0" 2>&1 \
// RUN: | FileCheck %s --check-prefix=BAD
// BAD: moe-tile-attention-sm90: sm-count must be positive
// RUN: not moec-opt %s -split-input-file -moe-tile-attention-sm90="warps=6" 2>&1 \
// RUN: | FileCheck %s --check-prefix=BAD-WARPS
// BAD-WARPS: moe-tile-attention-sm90: warps must be 4 or 8
// With 8 warps a CTA takes 128 rows (32 positions x 4 heads), 256 threads;
// a decode step keeps 4 warps.
// RUN: moec-opt %s -split-input-file -moe-tile-attention-sm90="warps=8" \
// RUN: | FileCheck %s --check-prefix=WARPS
// WARPS-LABEL: func.func @causal
// WARPS: arith.ceildivui %{{.*}}, %c32
// WARPS: gpu.launch_func @attention_sm90_h8_kv2_d64_8warps_f32::@attention_sm90_h8_kv2_d64_8warps_f32
// WARPS-SAME: threads in (%c256,
// WARPS: gpu.func @attention_sm90_h8_kv2_d64_8warps_f32
// WARPS-SAME: known_block_size = array<i32: 256, 1, 1>
// WARPS-COUNT-4: nvgpu.device_async_copy %arg{{[12]}}
// WARPS-NOT: nvgpu.device_async_copy
// WARPS: nvgpu.device_async_create_group
// WARPS-LABEL: func.func @decode
// WARPS: gpu.launch_func @attention_sm90_h32_kv8_d128_split_f32::

// Causal GQA, 4 heads per kv-head: a CTA takes 64 rows = 16 positions x 4
// heads, on a grid of (query tiles, kv-heads, batch), each at least 1; two
// buffers of a 64 x 64 bf16 key tile and value tile (32 KiB).
// CHECK-LABEL: func.func @causal
// CHECK-SAME: (%[[Q:.*]]: tensor<?x?x8x64xbf16>, %[[K:.*]]: tensor<?x?x2x64xbf16>, %[[V:.*]]: tensor<?x?x2x64xbf16>)
// CHECK: %[[QB:.*]] = bufferization.to_buffer %[[Q]] read_only
// CHECK: %[[KB:.*]] = bufferization.to_buffer %[[K]] read_only
// CHECK: %[[VB:.*]] = bufferization.to_buffer %[[V]] read_only
// CHECK: %[[B:.*]] = memref.dim %[[QB]], %c0
// CHECK: %[[T:.*]] = memref.dim %[[QB]], %c1
// CHECK: %[[OUT:.*]] = memref.alloc(%[[B]], %[[T]]) : memref<?x?x8x64xf32>
// CHECK: %[[TILES:.*]] = arith.ceildivui %[[T]], %c16
// CHECK: %[[X:.*]] = arith.maxui %[[TILES]], %c1
// CHECK: %[[ZERO:.*]] = arith.constant 0 : index
// CHECK: %[[Z:.*]] = arith.maxui %[[B]], %c1
// CHECK: gpu.launch_func @attention_sm90_h8_kv2_d64_f32::@attention_sm90_h8_kv2_d64_f32
// CHECK-SAME: blocks in (%[[X]], %c2, %[[Z]]) threads in (%c128,
// CHECK-SAME: dynamic_shared_memory_size %c32768_i32
// CHECK-SAME: args(%[[QB]] : memref<?x?x8x64xbf16>, %[[KB]] : memref<?x?x2x64xbf16>, %[[VB]] : memref<?x?x2x64xbf16>, %[[OUT]] : memref<?x?x8x64xf32>, %[[ZERO]] : index)
// CHECK: %[[R:.*]] = bufferization.to_tensor %[[OUT]] restrict writable
// CHECK: return %[[R]]

// The kernel, per CTA: the latest query tiles first; the queries' A
// fragments from global memory; the first key block's copies.
// KERNEL-LABEL: gpu.func @attention_sm90_h8_kv2_d64_f32
// KERNEL-SAME: known_block_size = array<i32: 128, 1, 1>
// KERNEL: %[[GX:.*]] = gpu.grid_dim x
// KERNEL: %[[LAST:.*]] = arith.subi %[[GX]], %c1
// KERNEL: %[[BX:.*]] = gpu.block_id x
// KERNEL: arith.subi %[[LAST]], %[[BX]]
// KERNEL: scf.if
// KERNEL: gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
// KERNEL-COUNT-16: vector.load %arg0{{.*}} : memref<?x?x8x64xbf16>, vector<2xbf16>
// KERNEL: scf.if
// KERNEL-COUNT-8: nvgpu.device_async_copy %arg{{[12]}}[{{.*}}], %view{{.*}}, 8, %{{.*}} {bypassL1} : memref<?x?x2x64xbf16> to memref<64x64xbf16, #gpu.address_space<workgroup>>
// KERNEL: nvgpu.device_async_create_group
// The loop over the visible key blocks: the next block's copies into the
// other buffer, then wait for this one's (all groups but the newest).
// KERNEL: scf.for
// KERNEL: scf.if
// KERNEL-COUNT-8: nvgpu.device_async_copy
// KERNEL: %[[TOKEN:.*]] = nvgpu.device_async_create_group
// KERNEL: nvgpu.device_async_wait %[[TOKEN]] {numGroups = 1 : i32}
// KERNEL-NEXT: gpu.barrier
// S = Q K^T: per 8 keys, an ldmatrix.x4 of two k-steps of 16 and their
// two mma.sync (Dh = 64: 2 x 4 x 8 = 32 products).
// KERNEL: nvgpu.ldmatrix %{{.*}} {numTiles = 4 : i32, transpose = false} : memref<64x64xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
// KERNEL: nvvm.mma.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// The mask, only on blocks that straddle the causal bound.
// KERNEL: %[[STRADDLES:.*]] = arith.cmpi ugt
// KERNEL: scf.if %[[STRADDLES]] -> (!llvm.struct<(f32, f32, f32, f32)>
// KERNEL: arith.cmpi ugt
// KERNEL: arith.select %{{.*}}, %cst{{.*}}, %{{.*}} : f32
// KERNEL: } else {
// The online softmax: the row max over the 4 lanes of a row, exp2.
// KERNEL: gpu.shuffle  xor %{{.*}}, %c1_i32{{.*}}, %c32_i32{{.*}} : f32
// KERNEL: gpu.shuffle  xor %{{.*}}, %c2_i32{{.*}}, %c32_i32{{.*}} : f32
// KERNEL: math.exp2
// P in bf16 pairs; O += P V with values transposed by ldmatrix.
// KERNEL: arith.truncf %{{.*}} : f32 to bf16
// KERNEL: nvgpu.ldmatrix %{{.*}} {numTiles = 4 : i32, transpose = true}
// KERNEL: nvvm.mma.sync
// KERNEL: gpu.barrier
// KERNEL-NEXT: scf.yield
// The rows divided by their sums (summed over the 4 lanes), stored where
// valid.
// KERNEL: gpu.shuffle  xor
// KERNEL: gpu.shuffle  xor
// KERNEL: arith.divf
// KERNEL: scf.if
// KERNEL: memref.store %{{.*}}, %arg3[{{.*}}] : memref<?x?x8x64xf32>
// KERNEL: gpu.return

func.func @causal(%q: tensor<?x?x8x64xbf16>, %k: tensor<?x?x2x64xbf16>,
                  %v: tensor<?x?x2x64xbf16>) -> tensor<?x?x8x64xf32> {
  %o = moe.attention %q, %k, %v
      : (tensor<?x?x8x64xbf16>, tensor<?x?x2x64xbf16>, tensor<?x?x2x64xbf16>)
      -> tensor<?x?x8x64xf32>
  return %o : tensor<?x?x8x64xf32>
}

// -----

// f32 operands become bf16 once: q's elementwise producer, read only by the
// attention, yields bf16 itself; k (also returned) and v (an argument) get
// a truncating copy. The window and the offset reach the kernel: its name
// and its last argument.
#id4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @f32_operands
// CHECK-SAME: (%[[X:.*]]: tensor<?x?x4x32xf32>, %[[K:.*]]: tensor<?x?x1x32xf32>, %[[V:.*]]: tensor<?x?x1x32xf32>, %[[P:.*]]: index)
// CHECK: %[[V16:.*]] = linalg.generic {{.*}} ins(%[[V]] : tensor<?x?x1x32xf32>) outs(%{{.*}} : tensor<?x?x1x32xbf16>)
// CHECK: arith.truncf
// CHECK: %[[K16:.*]] = linalg.generic {{.*}} ins(%[[K]] : tensor<?x?x1x32xf32>) outs(%{{.*}} : tensor<?x?x1x32xbf16>)
// CHECK: %[[Q16:.*]] = linalg.generic {{.*}} ins(%[[X]] : tensor<?x?x4x32xf32>) outs(%{{.*}} : tensor<?x?x4x32xbf16>)
// CHECK-NEXT: ^bb0
// CHECK-NEXT: arith.mulf
// CHECK-NEXT: arith.truncf
// CHECK: bufferization.to_buffer %[[Q16]] read_only
// CHECK: bufferization.to_buffer %[[K16]] read_only
// CHECK: bufferization.to_buffer %[[V16]] read_only
// CHECK: memref.alloc({{.*}}) : memref<?x?x4x32xbf16>
// CHECK: gpu.launch_func @attention_sm90_h4_kv1_d32_w100_bf16::@attention_sm90_h4_kv1_d32_w100_bf16
// CHECK-SAME: dynamic_shared_memory_size %c16384_i32
// CHECK-SAME: %[[P]] : index)
// CHECK-NOT: linalg.generic
// CHECK: return %{{.*}}, %[[K]]

// With a window the first visible block starts at the first row's window
// (position - 99 when past 99), and the mask also hides keys at or before
// a row's position - 100.
// KERNEL-LABEL: gpu.func @attention_sm90_h4_kv1_d32_w100_bf16
// KERNEL: %[[PAST:.*]] = arith.cmpi ugt, %[[FIRST:.*]], %c99
// KERNEL: %[[START:.*]] = arith.subi %[[FIRST]], %c99
// KERNEL: arith.select %[[PAST]], %[[START]], %c0
// KERNEL: scf.for
// KERNEL: arith.cmpi ule, %{{.*}}, %{{.*}} : index
// KERNEL: scf.if
// KERNEL: arith.addi %{{.*}}, %c100
// KERNEL: arith.cmpi ule
// KERNEL: arith.ori
// KERNEL: memref.store %{{.*}}, %arg3[{{.*}}] : memref<?x?x4x32xbf16>

func.func @f32_operands(%x: tensor<?x?x4x32xf32>, %k: tensor<?x?x1x32xf32>,
                        %v: tensor<?x?x1x32xf32>, %p: index)
    -> (tensor<?x?x4x32xbf16>, tensor<?x?x1x32xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %b = tensor.dim %x, %c0 : tensor<?x?x4x32xf32>
  %t = tensor.dim %x, %c1 : tensor<?x?x4x32xf32>
  %e = tensor.empty(%b, %t) : tensor<?x?x4x32xf32>
  %q = linalg.generic {indexing_maps = [#id4, #id4],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%x : tensor<?x?x4x32xf32>) outs(%e : tensor<?x?x4x32xf32>) {
  ^bb0(%a: f32, %o: f32):
    %s = arith.mulf %a, %a : f32
    linalg.yield %s : f32
  } -> tensor<?x?x4x32xf32>
  %o = moe.attention %q, %k, %v offset(%p) window(100)
      : (tensor<?x?x4x32xf32>, tensor<?x?x1x32xf32>, tensor<?x?x1x32xf32>, index)
      -> tensor<?x?x4x32xbf16>
  return %o, %k : tensor<?x?x4x32xbf16>, tensor<?x?x1x32xf32>
}

// -----

// Two layers of one shape share a kernel; Dh = 128 (two x4 loads per 8 keys,
// 64 products for S and 64 for P V per block) and 8 heads per kv-head
// (8 positions per CTA).
// CHECK-LABEL: func.func @shared_kernel
// CHECK: arith.ceildivui %{{.*}}, %c8
// CHECK: gpu.launch_func @attention_sm90_h8_kv1_d128_f32::@attention_sm90_h8_kv1_d128_f32
// CHECK-SAME: dynamic_shared_memory_size %c65536_i32
// CHECK: gpu.launch_func @attention_sm90_h8_kv1_d128_f32::@attention_sm90_h8_kv1_d128_f32
// CHECK: gpu.module @attention_sm90_h8_kv1_d128_f32
// CHECK-NOT: gpu.module
// KERNEL-LABEL: gpu.func @attention_sm90_h8_kv1_d128_f32
// KERNEL: scf.for
// KERNEL-COUNT-64: nvvm.mma.sync
// KERNEL-NOT: nvvm.mma.sync
// KERNEL: math.exp2
// KERNEL-COUNT-64: nvvm.mma.sync
// KERNEL-NOT: nvvm.mma.sync
// KERNEL: gpu.return

func.func @shared_kernel(%q: tensor<1x?x8x128xbf16>, %k: tensor<1x?x1x128xbf16>,
                         %v: tensor<1x?x1x128xbf16>) -> tensor<1x?x8x128xf32> {
  %o = moe.attention %q, %k, %v
      : (tensor<1x?x8x128xbf16>, tensor<1x?x1x128xbf16>, tensor<1x?x1x128xbf16>)
      -> tensor<1x?x8x128xf32>
  %q2 = arith.truncf %o : tensor<1x?x8x128xf32> to tensor<1x?x8x128xbf16>
  %o2 = moe.attention %q2, %k, %v
      : (tensor<1x?x8x128xbf16>, tensor<1x?x1x128xbf16>, tensor<1x?x1x128xbf16>)
      -> tensor<1x?x8x128xf32>
  return %o2 : tensor<1x?x8x128xf32>
}

// -----

// GMHA: the summaries (the complete groups' f32 means, rounded to bf16
// once) are a second key range of the kernel, walked before the local keys
// under the same softmax.
// CHECK-LABEL: func.func @gmha
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]
// CHECK: %[[MEANS:.*]]:2 = linalg.generic
// CHECK: %[[VM:.*]] = linalg.generic {{.*}} ins(%[[MEANS]]#1 : tensor<?x?x2x64xf32>) outs(%{{.*}} : tensor<?x?x2x64xbf16>)
// CHECK: %[[KM:.*]] = linalg.generic {{.*}} ins(%[[MEANS]]#0 : tensor<?x?x2x64xf32>) outs(%{{.*}} : tensor<?x?x2x64xbf16>)
// CHECK: %[[KMB:.*]] = bufferization.to_buffer %[[KM]] read_only
// CHECK: %[[VMB:.*]] = bufferization.to_buffer %[[VM]] read_only
// CHECK: gpu.launch_func @attention_sm90_h8_kv2_d64_g128_w64_f32::@attention_sm90_h8_kv2_d64_g128_w64_f32
// CHECK-SAME: args(%{{.*}} : memref<?x?x8x64xbf16>, %{{.*}} : memref<?x?x2x64xbf16>, %{{.*}} : memref<?x?x2x64xbf16>, %[[KMB]] : memref<?x?x2x64xbf16>, %[[VMB]] : memref<?x?x2x64xbf16>, %{{.*}} : memref<?x?x8x64xf32>, %{{.*}} : index)

// The summaries' loop: summary s hidden from rows of group s or earlier;
// then the local keys from the first row's group start, hidden before a
// row's group start.
// KERNEL-LABEL: gpu.func @attention_sm90_h8_kv2_d64_g128_w64_f32
// KERNEL: memref.dim %arg3, %c1
// KERNEL: scf.for
// KERNEL: nvgpu.device_async_copy %arg3{{.*}} : memref<?x?x2x64xbf16> to
// KERNEL: nvgpu.device_async_copy %arg4{{.*}} : memref<?x?x2x64xbf16> to
// KERNEL: scf.if
// KERNEL: arith.cmpi uge, %{{.*}}, %{{.*}} : index
// KERNEL: scf.yield
// KERNEL: memref.dim %arg1, %c1
// KERNEL: arith.muli %{{.*}}, %c128
// KERNEL: arith.maxui
// KERNEL: scf.for
// KERNEL: nvgpu.device_async_copy %arg1
// KERNEL: scf.if
// KERNEL: arith.cmpi ult, %{{.*}}, %{{.*}} : index
// KERNEL: memref.store %{{.*}}, %arg5[{{.*}}] : memref<?x?x8x64xf32>

func.func @gmha(%q: tensor<?x?x8x64xf32>, %k: tensor<?x?x2x64xf32>,
                %v: tensor<?x?x2x64xf32>) -> tensor<?x?x8x64xf32> {
  %o = moe.grouped_attention %q, %k, %v group_size(128) window(64)
      : (tensor<?x?x8x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>)
      -> tensor<?x?x8x64xf32>
  return %o : tensor<?x?x8x64xf32>
}

// -----

// A decode step (one query, static): the keys split over
// min(ceil(264 / (B x KVH)), key blocks) CTAs (sm-count 132), at least 1;
// the partials (output, max, sum) merged by three generics: the rows' max,
// the weighted sums, the division.
// CHECK-LABEL: func.func @decode
// CHECK: %[[KB:.*]] = bufferization.to_buffer %{{.*}} read_only : tensor<?x?x8x128xbf16>
// CHECK: %[[B:.*]] = memref.dim %{{.*}}, %c0
// CHECK: %[[TK:.*]] = memref.dim %[[KB]], %c1
// CHECK: %[[BLOCKS:.*]] = arith.ceildivui %[[TK]], %c64
// CHECK: %[[BK:.*]] = arith.muli %[[B]], %c8
// CHECK: %[[CTAS:.*]] = arith.maxui %[[BK]], %c1
// CHECK: %[[WANTED:.*]] = arith.ceildivui %c264, %[[CTAS]]
// CHECK: %[[FEWER:.*]] = arith.minui %[[WANTED]], %[[BLOCKS]]
// CHECK: %[[SPLITS:.*]] = arith.maxui %[[FEWER]], %c1
// CHECK: %[[O:.*]] = memref.alloc(%[[B]], %[[SPLITS]], %{{.*}}) : memref<?x?x?x32x128xf32>
// CHECK: %[[M:.*]] = memref.alloc(%[[B]], %[[SPLITS]], %{{.*}}) : memref<?x?x?x32xf32>
// CHECK: %[[L:.*]] = memref.alloc(%[[B]], %[[SPLITS]], %{{.*}}) : memref<?x?x?x32xf32>
// CHECK: gpu.launch_func @attention_sm90_h32_kv8_d128_split_f32::@attention_sm90_h32_kv8_d128_split_f32
// CHECK-SAME: blocks in (%[[SPLITS]], %c8
// CHECK-SAME: %[[O]] : memref<?x?x?x32x128xf32>, %[[M]] : memref<?x?x?x32xf32>, %[[L]] : memref<?x?x?x32xf32>, %{{.*}} : index)
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK: arith.maxnumf
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK: math.exp2
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]
// CHECK: math.exp2
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "parallel"]
// CHECK: arith.divf
// CHECK: return

// The kernel: this CTA's share of the visible blocks, ceil(blocks / splits)
// each; the rows' unnormalised output, and (lane 0 of a row) its max and
// sum.
// KERNEL-LABEL: gpu.func @attention_sm90_h32_kv8_d128_split_f32
// KERNEL: %[[SPLIT:.*]] = gpu.block_id x
// KERNEL: %[[SPLITS:.*]] = gpu.grid_dim x
// KERNEL: %[[PER:.*]] = arith.ceildivui %{{.*}}, %[[SPLITS]]
// KERNEL: arith.muli %[[SPLIT]], %[[PER]]
// KERNEL: scf.for
// KERNEL: memref.store %{{.*}}, %arg3[%{{.*}}, %[[SPLIT]], %{{.*}}, %{{.*}}, %{{.*}}] : memref<?x?x?x32x128xf32>
// KERNEL: memref.store %{{.*}}, %arg4[%{{.*}}, %[[SPLIT]], %{{.*}}, %{{.*}}] : memref<?x?x?x32xf32>
// KERNEL: memref.store %{{.*}}, %arg5[%{{.*}}, %[[SPLIT]], %{{.*}}, %{{.*}}] : memref<?x?x?x32xf32>

func.func @decode(%q: tensor<?x1x32x128xbf16>, %k: tensor<?x?x8x128xbf16>,
                  %v: tensor<?x?x8x128xbf16>, %p: index) -> tensor<?x1x32x128xf32> {
  %o = moe.attention %q, %k, %v offset(%p)
      : (tensor<?x1x32x128xbf16>, tensor<?x?x8x128xbf16>, tensor<?x?x8x128xbf16>, index)
      -> tensor<?x1x32x128xf32>
  return %o : tensor<?x1x32x128xf32>
}

// -----

// Ops of one shape but other static B, T or query counts share a kernel:
// its buffers are cast to dynamic B and T. With a window the splits are
// bounded by the blocks the window spans (W = 100, 4 queries: 3).
// CHECK-LABEL: func.func @shapes_share
// CHECK: memref.cast %{{.*}} : memref<1x1x32x128xbf16> to memref<?x?x32x128xbf16>
// CHECK: gpu.launch_func @attention_sm90_h32_kv8_d128_split_f32::
// CHECK: arith.minui %{{.*}}, %c3
// CHECK: gpu.launch_func @attention_sm90_h32_kv8_d128_w100_split_f32::
// CHECK: gpu.launch_func @attention_sm90_h32_kv8_d128_split_f32::
// CHECK-COUNT-2: gpu.module
// CHECK-NOT: gpu.module
func.func @shapes_share(%q: tensor<1x1x32x128xbf16>, %q4: tensor<?x4x32x128xbf16>,
                        %k: tensor<?x?x8x128xbf16>, %v: tensor<?x?x8x128xbf16>,
                        %p: index)
    -> (tensor<1x1x32x128xf32>, tensor<?x4x32x128xf32>, tensor<?x4x32x128xf32>) {
  %a = moe.attention %q, %k, %v offset(%p)
      : (tensor<1x1x32x128xbf16>, tensor<?x?x8x128xbf16>, tensor<?x?x8x128xbf16>, index)
      -> tensor<1x1x32x128xf32>
  %b = moe.attention %q4, %k, %v offset(%p) window(100)
      : (tensor<?x4x32x128xbf16>, tensor<?x?x8x128xbf16>, tensor<?x?x8x128xbf16>, index)
      -> tensor<?x4x32x128xf32>
  %c = moe.attention %q4, %k, %v offset(%p)
      : (tensor<?x4x32x128xbf16>, tensor<?x?x8x128xbf16>, tensor<?x?x8x128xbf16>, index)
      -> tensor<?x4x32x128xf32>
  return %a, %b, %c : tensor<1x1x32x128xf32>, tensor<?x4x32x128xf32>, tensor<?x4x32x128xf32>
}

// -----

// Left to the generic lowering: a head dimension past 128 (the registers),
// or not a multiple of 16 (the k-step); heads per kv-head that do not
// divide the CTA's 64 rows (attention and GMHA).
// CHECK-LABEL: func.func @not_taken
// CHECK-NOT: gpu.launch_func
// CHECK: moe.attention {{.*}} tensor<?x?x2x256xf32>
// CHECK: moe.attention {{.*}} tensor<?x?x2x40xf32>
// CHECK: moe.attention {{.*}} tensor<?x?x6x64xf32>
// CHECK: moe.grouped_attention
// CHECK-NOT: gpu.module
func.func @not_taken(%q: tensor<?x?x2x256xf32>, %k: tensor<?x?x1x256xf32>,
                     %q40: tensor<?x?x2x40xf32>, %k40: tensor<?x?x1x40xf32>,
                     %q3: tensor<?x?x6x64xf32>, %k3: tensor<?x?x2x64xf32>)
    -> (tensor<?x?x2x256xf32>, tensor<?x?x2x40xf32>, tensor<?x?x6x64xf32>,
        tensor<?x?x6x64xf32>) {
  %a = moe.attention %q, %k, %k
      : (tensor<?x?x2x256xf32>, tensor<?x?x1x256xf32>, tensor<?x?x1x256xf32>)
      -> tensor<?x?x2x256xf32>
  %b = moe.attention %q40, %k40, %k40
      : (tensor<?x?x2x40xf32>, tensor<?x?x1x40xf32>, tensor<?x?x1x40xf32>)
      -> tensor<?x?x2x40xf32>
  %c = moe.attention %q3, %k3, %k3
      : (tensor<?x?x6x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>)
      -> tensor<?x?x6x64xf32>
  %d = moe.grouped_attention %q3, %k3, %k3 group_size(64) window(32)
      : (tensor<?x?x6x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>)
      -> tensor<?x?x6x64xf32>
  return %a, %b, %c, %d : tensor<?x?x2x256xf32>, tensor<?x?x2x40xf32>,
                          tensor<?x?x6x64xf32>, tensor<?x?x6x64xf32>
}
