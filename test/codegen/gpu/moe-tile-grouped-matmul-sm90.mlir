// RUN: moec-opt %s -split-input-file -moe-tile-grouped-matmul-sm90 | FileCheck %s
// RUN: moec-opt %s -split-input-file -moe-tile-grouped-matmul-sm90="stages=3 sm-count=114" \
// RUN: | FileCheck %s --check-prefix=OPTS
// RUN: not moec-opt %s -split-input-file -moe-tile-grouped-matmul-sm90="stages=1" 2>&1 \
// RUN: | FileCheck %s --check-prefix=BAD

// BAD: moe-tile-grouped-matmul-sm90: stages must be 2 to 6

// A plain grouped matmul: the host side takes buffers of the operands,
// builds TMA descriptors (boxes of 128 rows x 64 bf16) of the rows and of
// the [G * N, K] weights, and launches one CTA of 128 threads per SM.
// CHECK-LABEL: func.func @plain
// CHECK-SAME: (%[[X:.*]]: tensor<?x320xbf16>, %[[W:.*]]: tensor<4x256x320xbf16>, %[[OFF:.*]]: tensor<5xi32>)
// CHECK: %[[XB:.*]] = bufferization.to_buffer %[[X]] read_only
// CHECK: %[[ROWS:.*]] = memref.dim %[[XB]], %{{.*}} : memref<?x320xbf16>
// CHECK: %[[OUT:.*]] = memref.alloc(%[[ROWS]]) : memref<?x256xf32>
// CHECK: %[[OB:.*]] = bufferization.to_buffer %[[OFF]] read_only
// CHECK: nvgpu.tma.create.descriptor %{{.*}} box[%c128{{.*}}, %c64{{.*}}] : memref<*xbf16> -> <tensor = memref<128x64xbf16, #gpu.address_space<workgroup>>, swizzle = swizzle_128b, {{.*}}oob = zero
// CHECK: %[[WB:.*]] = bufferization.to_buffer %[[W]] read_only
// CHECK: memref.collapse_shape %[[WB]] {{\[}}[0, 1], [2]] : memref<4x256x320xbf16> into memref<1024x320xbf16>
// CHECK: nvgpu.tma.create.descriptor %{{.*}} box[%c128{{.*}}, %c64{{.*}}]
// 1024 bytes of alignment + 4 stages of 32 KiB + 5 tile starts.
// CHECK: %[[SMEM:.*]] = arith.constant 132128 : i32
// CHECK: gpu.launch_func @grouped_matmul_sm90_g4_n256_k320_f32::@grouped_matmul_sm90_g4_n256_k320_f32
// CHECK-SAME: blocks in (%c132, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}) threads in (%c128{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}})
// CHECK-SAME: dynamic_shared_memory_size %[[SMEM]]
// CHECK-SAME: args(%[[OB]] : memref<5xi32>, %[[OUT]] : memref<?x256xf32>, %{{.*}} : !llvm.ptr, %{{.*}} : !llvm.ptr)
// CHECK: %[[Y:.*]] = bufferization.to_tensor %[[OUT]] restrict writable
// CHECK: return %[[Y]]

// The kernel. Schedule: thread 0 initialises two mbarriers per stage
// (`full`: one arrival plus the TMA bytes; `empty`: one arrival per warp)
// and writes each group's first row tile (a prefix sum of ceil(rows / 128)).
// CHECK: gpu.module @grouped_matmul_sm90_g4_n256_k320_f32
// CHECK: gpu.func @grouped_matmul_sm90_g4_n256_k320_f32(%[[KOFF:.*]]: memref<5xi32>, %[[KOUT:.*]]: memref<?x256xf32>, %[[DA:.*]]: !llvm.ptr, %[[DW:.*]]: !llvm.ptr) kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK: %[[TID:.*]] = gpu.thread_id x
// CHECK: %[[CTA:.*]] = gpu.block_id x
// CHECK: %[[CTAS:.*]] = gpu.grid_dim x
// CHECK: %[[STARTS:.*]] = memref.view {{.*}} to memref<5xi32, #gpu.address_space<workgroup>>
// CHECK: %[[FULL:.*]] = nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 4>
// CHECK: %[[EMPTY:.*]] = nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 4>
// CHECK: scf.if
// CHECK: nvgpu.mbarrier.init %[[FULL]][%c0{{.*}}], %c1
// CHECK: nvgpu.mbarrier.init %[[EMPTY]][%c0{{.*}}], %c4
// CHECK-COUNT-3: nvgpu.mbarrier.init %[[FULL]]
// CHECK: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK: scf.for %[[G:.*]] = %c0{{.*}} to %c4{{.*}} step %c1{{.*}} iter_args(%[[FIRST:.*]] =
// CHECK: memref.store %{{.*}}, %[[STARTS]][%[[G]]]
// CHECK: arith.divui %{{.*}}, %c128
// CHECK: gpu.barrier
// Work items: (row tile, column tile), two column tiles of 128 for N = 256.
// Thread 0 starts the first item's first stages - 1 = 3 K blocks: each waits
// for its stage to be empty, arms the full barrier with the stage's 32 KiB
// and issues two TMA loads (A rows, weight rows).
// CHECK: %[[ITEMS:.*]] = arith.muli %{{.*}}, %c2
// CHECK: scf.if
// CHECK: nvgpu.mbarrier.try_wait.parity %[[EMPTY]]
// CHECK: nvgpu.mbarrier.arrive.expect_tx %[[FULL]][%{{.*}}], %c32768
// CHECK: nvgpu.tma.async.load %{{.*}}[%{{.*}}, %{{.*}}], %[[FULL]]
// CHECK: nvgpu.tma.async.load
// CHECK: nvgpu.mbarrier.try_wait.parity %[[EMPTY]]
// CHECK: nvgpu.mbarrier.arrive.expect_tx %[[FULL]][%{{.*}}], %c32768
// CHECK: nvgpu.tma.async.load %{{.*}}[%{{.*}}, %{{.*}}], %[[FULL]]
// CHECK: nvgpu.tma.async.load
// CHECK: nvgpu.mbarrier.try_wait.parity %[[EMPTY]]
// CHECK: nvgpu.mbarrier.arrive.expect_tx %[[FULL]][%{{.*}}], %c32768
// CHECK: nvgpu.tma.async.load %{{.*}}[%{{.*}}, %{{.*}}], %[[FULL]]
// CHECK: nvgpu.tma.async.load
// CTA b walks items b, b + grid, ...
// CHECK: scf.for %[[ITEM:.*]] = %[[CTA]] to %[[ITEMS]] step %[[CTAS]] iter_args(%[[CONSUMED:.*]] = %c0
// The row tile's group: the groups whose tiles end at or before it.
// CHECK: scf.for
// CHECK: arith.cmpi ule
// The K loop (5 blocks of 64 for K = 320): wait for the stage's data, 4 K
// steps x 2 row halves of m64n128k16 with K-major A and B, committed as
// one group; wait for the previous group, after which lane 0 of each warp
// releases its stage; thread 0 refills it 3 blocks ahead, with this item's
// blocks or, past its end, the next item's.
// CHECK: scf.for %[[KB:.*]] = %c0{{.*}} to %c5{{.*}} step %c1{{.*}} iter_args(%[[ACC0:.*]] = %{{.*}}, %[[ACC1:.*]] = %{{.*}}) -> (!llvm.struct<(f32, f32
// CHECK: nvgpu.mbarrier.try_wait.parity %[[FULL]]
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-8: nvvm.wgmma.mma_async {{.*}} <m = 64, n = 128, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: scf.if
// CHECK: scf.if
// CHECK: nvgpu.mbarrier.arrive %[[EMPTY]]
// CHECK: scf.if
// CHECK: nvgpu.mbarrier.try_wait.parity %[[EMPTY]]
// CHECK: nvgpu.tma.async.load {{.*}} to %{{.*}} : <tensor = memref<128x64xbf16
// CHECK: nvgpu.tma.async.load {{.*}} to %{{.*}} : <tensor = memref<128x64xbf16
// CHECK: scf.if
// CHECK: nvgpu.mbarrier.try_wait.parity %[[EMPTY]]
// CHECK: nvgpu.tma.async.load
// CHECK: scf.yield
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: nvgpu.mbarrier.arrive %[[EMPTY]]
// The epilogue: each fragment row is stored if it is a row of the group;
// columns need no check (N is a multiple of the tile).
// CHECK: %[[ROWOK:.*]] = arith.cmpi ult, %{{.*}}, %{{.*}} : index
// CHECK: scf.if %[[ROWOK]]
// CHECK-NOT: scf.if
// CHECK: llvm.extractvalue
// CHECK: memref.store %{{.*}}, %[[KOUT]]
// CHECK: gpu.return

// OPTS-LABEL: func.func @plain
// 1024 + 3 x 32 KiB + 5 tile starts.
// OPTS: arith.constant 99360 : i32
// OPTS: gpu.launch_func {{.*}} blocks in (%c114
// OPTS: nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 3>
func.func @plain(%x: tensor<?x320xbf16>, %w: tensor<4x256x320xbf16>,
                 %off: tensor<5xi32>) -> tensor<?x256xf32> {
  %y = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x320xbf16>, tensor<4x256x320xbf16>, tensor<5xi32>) -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}

// -----

// SwiGLU with a row scale, f32 rows and a bf16 result: the rows are first
// truncated to bf16; the gate and up weights have descriptors of 64-row
// boxes, loaded side by side into a stage's B tile, so one 128-column wgmma
// covers both and the epilogue finds gate column c and up column c + 64 in
// the same thread. Output tiles are 64 columns wide: N = 192 has 3.
// CHECK-LABEL: func.func @swiglu
// CHECK: linalg.generic
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: nvgpu.tma.create.descriptor {{.*}} box[%c128
// CHECK: nvgpu.tma.create.descriptor {{.*}} box[%c64{{.*}}, %c64{{.*}}] : memref<*xbf16> -> <tensor = memref<64x64xbf16
// CHECK: nvgpu.tma.create.descriptor {{.*}} box[%c64{{.*}}, %c64{{.*}}] : memref<*xbf16> -> <tensor = memref<64x64xbf16
// CHECK: %[[S:.*]] = bufferization.to_buffer %{{.*}} read_only : tensor<?xf32> to memref<?xf32>
// CHECK: gpu.launch_func @grouped_matmul_sm90_g2_n192_k64_swiglu_scale_bf16::
// CHECK-SAME: %[[S]] : memref<?xf32>
// CHECK: gpu.func @grouped_matmul_sm90_g2_n192_k64_swiglu_scale_bf16
// CHECK: arith.muli %{{.*}}, %c3
// Gate rows at the stage's B tile, up rows 8 KiB further.
// CHECK: nvgpu.tma.async.load {{.*}} : <tensor = memref<128x64xbf16
// CHECK: nvgpu.tma.async.load {{.*}} : <tensor = memref<64x64xbf16
// CHECK: nvgpu.tma.async.load {{.*}} : <tensor = memref<64x64xbf16
// CHECK: nvvm.wgmma.mma_async
// CHECK: scf.if
// CHECK: %[[SCALE:.*]] = memref.load %{{.*}} : memref<?xf32>
// CHECK: %[[GATE:.*]] = llvm.extractvalue %{{.*}}[0]
// CHECK: %[[UP:.*]] = llvm.extractvalue %{{.*}}[32]
// CHECK: math.exp
// CHECK: arith.mulf %{{.*}}, %[[UP]]
// CHECK: arith.mulf %{{.*}}, %[[SCALE]]
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: memref.store
func.func @swiglu(%x: tensor<?x64xf32>, %w: tensor<2x192x64xbf16>,
                  %u: tensor<2x192x64xbf16>, %off: tensor<3xi32>,
                  %s: tensor<?xf32>) -> tensor<?x192xbf16> {
  %y = moe.grouped_matmul %x, %w, %u offsets(%off) scale(%s) epilogue(swiglu)
      : (tensor<?x64xf32>, tensor<2x192x64xbf16>, tensor<2x192x64xbf16>,
         tensor<3xi32>, tensor<?xf32>) -> tensor<?x192xbf16>
  return %y : tensor<?x192xbf16>
}

// -----

// N = 200 is not a multiple of the tile: stores check the column too.
// K = 72 is one full K block and one partial one, which TMA zero-fills.
// CHECK-LABEL: func.func @partial
// CHECK: gpu.func @grouped_matmul_sm90_g1_n200_k72_f32
// CHECK: scf.for %{{.*}} = %c0{{.*}} to %c2{{.*}} step
// CHECK: scf.if
// CHECK: arith.cmpi ult, %{{.*}}, %c200
func.func @partial(%x: tensor<?x72xbf16>, %w: tensor<1x200x72xbf16>,
                   %off: tensor<2xi32>) -> tensor<?x200xf32> {
  %y = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x72xbf16>, tensor<1x200x72xbf16>, tensor<2xi32>) -> tensor<?x200xf32>
  return %y : tensor<?x200xf32>
}

// -----

// f32 hidden rows read only as the rows of the next product are produced
// in bf16 (the reader would truncate them anyway): no truncation pass
// between the two kernels.
// CHECK-LABEL: func.func @expert_chain
// CHECK-NOT: linalg.generic
// CHECK: %[[H:.*]] = memref.alloc(%{{.*}}) : memref<?x128xbf16>
// CHECK: gpu.launch_func @grouped_matmul_sm90_g2_n128_k64_swiglu_bf16::
// CHECK-NOT: linalg.generic
// CHECK: gpu.launch_func @grouped_matmul_sm90_g2_n64_k128_f32::
func.func @expert_chain(%x: tensor<?x64xbf16>, %w1: tensor<2x128x64xbf16>,
                        %w3: tensor<2x128x64xbf16>, %w2: tensor<2x64x128xbf16>,
                        %off: tensor<3xi32>) -> tensor<?x64xf32> {
  %h = moe.grouped_matmul %x, %w1, %w3 offsets(%off) epilogue(swiglu)
      : (tensor<?x64xbf16>, tensor<2x128x64xbf16>, tensor<2x128x64xbf16>,
         tensor<3xi32>) -> tensor<?x128xf32>
  %y = moe.grouped_matmul %h, %w2 offsets(%off)
      : (tensor<?x128xf32>, tensor<2x64x128xbf16>, tensor<3xi32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Two products of one shape share one kernel.
// CHECK-LABEL: func.func @shared_kernel
// CHECK-COUNT-2: gpu.launch_func @grouped_matmul_sm90_g2_n64_k64_f32::@grouped_matmul_sm90_g2_n64_k64_f32
// CHECK-COUNT-1: gpu.module
// CHECK-NOT: gpu.module
func.func @shared_kernel(%x: tensor<?x64xbf16>, %w: tensor<2x64x64xbf16>,
                         %off: tensor<3xi32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %y = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x64xbf16>, tensor<2x64x64xbf16>, tensor<3xi32>) -> tensor<?x64xf32>
  %z = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x64xbf16>, tensor<2x64x64xbf16>, tensor<3xi32>) -> tensor<?x64xf32>
  return %y, %z : tensor<?x64xf32>, tensor<?x64xf32>
}

// -----

// Left to the generic lowering: f32 weights, router logits (their ranking
// decides routing, so they stay f32), and N or K not a multiple of 8.
// CHECK-LABEL: func.func @kept
// CHECK-COUNT-3: moe.grouped_matmul
// CHECK-NOT: gpu.launch_func
func.func @kept(%x: tensor<?x64xf32>, %wf: tensor<2x64x64xf32>,
                %wr: tensor<1x8x64xbf16>, %wn: tensor<1x6x64xbf16>,
                %off: tensor<3xi32>, %one: tensor<2xi32>)
    -> (tensor<?x64xf32>, tensor<?x8xf32>, tensor<?x6xf32>) {
  %a = moe.grouped_matmul %x, %wf offsets(%off)
      : (tensor<?x64xf32>, tensor<2x64x64xf32>, tensor<3xi32>) -> tensor<?x64xf32>
  %b = moe.grouped_matmul %x, %wr offsets(%one) {moe.routing_logits}
      : (tensor<?x64xf32>, tensor<1x8x64xbf16>, tensor<2xi32>) -> tensor<?x8xf32>
  %c = moe.grouped_matmul %x, %wn offsets(%one)
      : (tensor<?x64xf32>, tensor<1x6x64xbf16>, tensor<2xi32>) -> tensor<?x6xf32>
  return %a, %b, %c : tensor<?x64xf32>, tensor<?x8xf32>, tensor<?x6xf32>
}
