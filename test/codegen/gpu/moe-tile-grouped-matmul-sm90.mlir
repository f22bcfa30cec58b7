// RUN: moec-opt %s -split-input-file -moe-tile-grouped-matmul-sm90 | FileCheck %s
// RUN: moec-opt %s -split-input-file -moe-tile-grouped-matmul-sm90="stages=3 sm-count=114" \
// RUN: | FileCheck %s --check-prefix=OPTS
// RUN: moec-opt %s -split-input-file -moe-tile-grouped-matmul-sm90="combine-scatter=true" \
// RUN: | FileCheck %s --check-prefix=SCATTER
// RUN: moec-opt %s -split-input-file -moe-tile-grouped-matmul-sm90="tile-cols=256" \
// RUN: | FileCheck %s --check-prefix=WIDE
// RUN: not moec-opt %s -split-input-file -moe-tile-grouped-matmul-sm90="stages=1" 2>&1 \
// RUN: | FileCheck %s --check-prefix=BAD
// RUN: not moec-opt %s -split-input-file -moe-tile-grouped-matmul-sm90="stages=5 tile-cols=256" 2>&1 \
// RUN: | FileCheck %s --check-prefix=BAD-WIDE
// RUN: not moec-opt %s -split-input-file -moe-tile-grouped-matmul-sm90="tile-cols=192" 2>&1 \
// RUN: | FileCheck %s --check-prefix=BAD-COLS

// BAD: moe-tile-grouped-matmul-sm90: stages must be 2 to 6 with tile-cols=128 (32 KiB of shared memory each)
// BAD-WIDE: moe-tile-grouped-matmul-sm90: stages must be 2 to 4 with tile-cols=256 (48 KiB of shared memory each)
// BAD-COLS: moe-tile-grouped-matmul-sm90: tile-cols must be 128 or 256

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
// Thread 0 starts the first item's first stages - 1 = 3 K blocks: every
// thread waits for the stage to be empty; thread 0 (a predicate, not a
// branch) arms the full barrier with the stage's 32 KiB and issues two TMA
// loads (A rows, weight rows).
// CHECK: %[[ITEMS:.*]] = arith.muli %{{.*}}, %c2
// CHECK: %[[FIRST:.*]] = arith.andi %[[LEADER:.*]], %{{.*}} : i1
// CHECK-NOT: scf.if
// CHECK: nvgpu.mbarrier.try_wait.parity %[[EMPTY]]
// CHECK: nvgpu.mbarrier.arrive.expect_tx %[[FULL]][%{{.*}}], %c32768{{[_0-9]*}}, predicate = %[[FIRST]]
// CHECK: nvgpu.tma.async.load %{{.*}}[%{{.*}}, %{{.*}}], %[[FULL]]{{.*}}, predicate = %[[FIRST]]
// CHECK: nvgpu.tma.async.load {{.*}}, predicate = %[[FIRST]]
// CHECK: nvgpu.mbarrier.try_wait.parity %[[EMPTY]]
// CHECK: nvgpu.mbarrier.arrive.expect_tx %[[FULL]][%{{.*}}], %c32768{{[_0-9]*}}, predicate = %[[FIRST]]
// CHECK: nvgpu.tma.async.load {{.*}}, predicate = %[[FIRST]]
// CHECK: nvgpu.tma.async.load {{.*}}, predicate = %[[FIRST]]
// CHECK: nvgpu.mbarrier.try_wait.parity %[[EMPTY]]
// CHECK: nvgpu.mbarrier.arrive.expect_tx %[[FULL]][%{{.*}}], %c32768{{[_0-9]*}}, predicate = %[[FIRST]]
// CHECK: nvgpu.tma.async.load {{.*}}, predicate = %[[FIRST]]
// CHECK: nvgpu.tma.async.load {{.*}}, predicate = %[[FIRST]]
// CTA b walks items b, b + grid, ...
// CHECK: scf.for %[[ITEM:.*]] = %[[CTA]] to %[[ITEMS]] step %[[CTAS]] iter_args(%[[CONSUMED:.*]] = %c0
// The row tile's group: the groups whose tiles end at or before it.
// CHECK: scf.for
// CHECK: arith.cmpi ule
// Block 0 of the item's 5 K blocks of 64 (K = 320), peeled: wait for the
// stage's data, 4 K steps x 2 row halves of m64n128k16 with K-major A and
// B, the first step of each half ignoring the (undefined) accumulators,
// committed as one group; then every thread waits for the stage 3 blocks
// ahead to be empty, and thread 0 refills it with this item's block or,
// past its end, the next item's (selected, not branched on), if any.
// CHECK: %[[UNDEF:.*]] = llvm.mlir.undef : !llvm.struct<(f32
// CHECK: nvgpu.mbarrier.try_wait.parity %[[FULL]]
// CHECK: nvvm.wgmma.fence.aligned
// CHECK: nvvm.wgmma.mma_async {{.*}}, %[[UNDEF]], <m = 64, n = 128, k = 16>, D[<f32>, <zero>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK: nvvm.wgmma.mma_async {{.*}}, %[[UNDEF]], <m = 64, n = 128, k = 16>, D[<f32>, <zero>]
// CHECK-COUNT-6: nvvm.wgmma.mma_async {{.*}} <m = 64, n = 128, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: %[[INITEM0:.*]] = arith.cmpi ult, %{{.*}}, %c5
// CHECK: %[[MORE0:.*]] = arith.ori %[[INITEM0]], %{{.*}} : i1
// CHECK: %[[ISSUE0:.*]] = arith.andi %[[LEADER]], %[[MORE0]] : i1
// CHECK: arith.select %[[INITEM0]]
// CHECK-NOT: scf.if
// CHECK: nvgpu.mbarrier.try_wait.parity %[[EMPTY]]
// CHECK: nvgpu.mbarrier.arrive.expect_tx %[[FULL]][%{{.*}}], %c32768{{[_0-9]*}}, predicate = %[[ISSUE0]]
// CHECK: nvgpu.tma.async.load {{.*}} predicate = %[[ISSUE0]] : <tensor = memref<128x64xbf16
// CHECK: nvgpu.tma.async.load {{.*}} predicate = %[[ISSUE0]] : <tensor = memref<128x64xbf16
// Blocks 1 to 4, in a loop LLVM may not unroll: the same, accumulating,
// and after the wait for the previous group lane 0 of each warp releases
// that block's stage (a predicated arrive: no branch in the loop).
// CHECK: scf.for %[[KB:.*]] = %c1{{.*}} to %c5{{.*}} step %c1{{.*}} iter_args(%[[ACC0:.*]] = %{{.*}}, %[[ACC1:.*]] = %{{.*}}) -> (!llvm.struct<(f32, f32
// CHECK-NOT: scf.if
// CHECK: nvgpu.mbarrier.try_wait.parity %[[FULL]]
// CHECK: nvvm.wgmma.fence.aligned
// CHECK: nvvm.wgmma.mma_async {{.*}}, %[[ACC0]], <m = 64, n = 128, k = 16>, D[<f32>, <one>]
// CHECK-COUNT-7: nvvm.wgmma.mma_async {{.*}} <m = 64, n = 128, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: %[[LANE0:.*]] = arith.cmpi eq, %{{.*}}, %c0
// CHECK: nvgpu.mbarrier.arrive.expect_tx %[[EMPTY]][%{{.*}}], %c0{{.*}}, predicate = %[[LANE0]]
// CHECK: %[[INITEM:.*]] = arith.cmpi ult, %{{.*}}, %c5
// CHECK: %[[MORE:.*]] = arith.ori %[[INITEM]], %{{.*}} : i1
// CHECK: %[[ISSUE:.*]] = arith.andi %[[LEADER]], %[[MORE]] : i1
// CHECK: arith.select %[[INITEM]]
// CHECK-NOT: scf.if
// CHECK: nvgpu.mbarrier.try_wait.parity %[[EMPTY]]
// CHECK: nvgpu.mbarrier.arrive.expect_tx %[[FULL]][%{{.*}}], %c32768{{[_0-9]*}}, predicate = %[[ISSUE]]
// CHECK: nvgpu.tma.async.load {{.*}} predicate = %[[ISSUE]] : <tensor = memref<128x64xbf16
// CHECK: nvgpu.tma.async.load {{.*}} predicate = %[[ISSUE]] : <tensor = memref<128x64xbf16
// CHECK: scf.yield
// CHECK: } {llvm.loop_annotation = #[[NOUNROLL:.*]]}
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: nvgpu.mbarrier.arrive.expect_tx %[[EMPTY]]
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
// With tile-cols=256, two warpgroups (256 threads) share each 128 x 256
// tile, one per 64-row half: stages of 48 KiB (the A tile, then 128 gate
// and 128 up weight rows), 8 warps releasing each, m64n256k16 wgmmas, and
// output tiles of 128 columns (N = 192 has 2).
// WIDE-LABEL: func.func @swiglu
// WIDE: nvgpu.tma.create.descriptor {{.*}} box[%c128{{.*}}, %c64{{.*}}] : memref<*xbf16> -> <tensor = memref<128x64xbf16
// WIDE: nvgpu.tma.create.descriptor {{.*}} box[%c128{{.*}}, %c64{{.*}}] : memref<*xbf16> -> <tensor = memref<128x64xbf16
// WIDE: nvgpu.tma.create.descriptor {{.*}} box[%c128{{.*}}, %c64{{.*}}] : memref<*xbf16> -> <tensor = memref<128x64xbf16
// 1024 bytes of alignment + 4 stages of 48 KiB + 3 tile starts.
// WIDE: %[[SMEM:.*]] = arith.constant 197648 : i32
// WIDE: gpu.launch_func @grouped_matmul_sm90_g2_n192_k64_swiglu_scale_w256_bf16::
// WIDE-SAME: threads in (%c256
// WIDE-SAME: dynamic_shared_memory_size %[[SMEM]]
// WIDE: gpu.func @grouped_matmul_sm90_g2_n192_k64_swiglu_scale_w256_bf16({{.*}}known_block_size = array<i32: 256, 1, 1>
// WIDE: %[[TID:.*]] = gpu.thread_id x
// WIDE: %[[WG:.*]] = arith.divui %[[TID]], %c128
// WIDE: nvgpu.mbarrier.init %{{.*}}[%c0{{.*}}], %c8
// WIDE: arith.muli %{{.*}}, %c2
// WIDE: nvgpu.mbarrier.arrive.expect_tx %{{.*}}, %c49152{{.*}}, predicate
// WIDE: nvgpu.tma.async.load {{.*}} : <tensor = memref<128x64xbf16
// WIDE: nvgpu.tma.async.load {{.*}} : <tensor = memref<128x64xbf16
// WIDE: nvgpu.tma.async.load {{.*}} : <tensor = memref<128x64xbf16
// Each warpgroup's A rows start 64 rows (8 KiB) further per warpgroup.
// WIDE: arith.muli %[[WG]], %c8192
// WIDE-COUNT-4: nvvm.wgmma.mma_async {{.*}} <m = 64, n = 256, k = 16>
// WIDE-NOT: nvvm.wgmma.mma_async
// WIDE: nvvm.wgmma.commit.group.sync.aligned
// WIDE: scf.for
// WIDE-COUNT-4: nvvm.wgmma.mma_async {{.*}} <m = 64, n = 256, k = 16>
// WIDE-NOT: nvvm.wgmma.mma_async
// WIDE: nvvm.wgmma.commit.group.sync.aligned
// The epilogue: this warpgroup's rows; the up value 64 registers (128
// columns) after the gate's.
// WIDE: nvvm.wgmma.wait.group.sync.aligned 0
// WIDE: arith.muli %[[WG]], %c64
// WIDE: llvm.extractvalue %{{.*}}[0] :
// WIDE-NEXT: %[[UP:.*]] = llvm.extractvalue %{{.*}}[64] :
// WIDE: arith.negf
// WIDE: math.exp
// WIDE: arith.mulf %{{.*}}, %[[UP]]
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
// K = 72 is one full K block and one partial one, which TMA zero-fills:
// block 0, then a loop over block 1.
// CHECK-LABEL: func.func @partial
// WIDE-LABEL: func.func @partial
// CHECK: gpu.func @grouped_matmul_sm90_g1_n200_k72_f32
// CHECK: scf.for %{{.*}} = %c1{{.*}} to %c2{{.*}} step
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
// decides routing, so they stay f32), N or K not a multiple of 8, and an
// empty K (no K block: the kernel would wait for a load never issued).
// CHECK-LABEL: func.func @kept
// CHECK-COUNT-4: moe.grouped_matmul
// CHECK-NOT: gpu.launch_func
func.func @kept(%x: tensor<?x64xf32>, %wf: tensor<2x64x64xf32>,
                %wr: tensor<1x8x64xbf16>, %wn: tensor<1x6x64xbf16>,
                %off: tensor<3xi32>, %one: tensor<2xi32>,
                %x0: tensor<?x0xbf16>, %w0: tensor<1x64x0xbf16>)
    -> (tensor<?x64xf32>, tensor<?x8xf32>, tensor<?x6xf32>, tensor<?x64xf32>) {
  %a = moe.grouped_matmul %x, %wf offsets(%off)
      : (tensor<?x64xf32>, tensor<2x64x64xf32>, tensor<3xi32>) -> tensor<?x64xf32>
  %b = moe.grouped_matmul %x, %wr offsets(%one) {moe.routing_logits}
      : (tensor<?x64xf32>, tensor<1x8x64xbf16>, tensor<2xi32>) -> tensor<?x8xf32>
  %c = moe.grouped_matmul %x, %wn offsets(%one)
      : (tensor<?x64xf32>, tensor<1x6x64xbf16>, tensor<2xi32>) -> tensor<?x6xf32>
  %d = moe.grouped_matmul %x0, %w0 offsets(%one)
      : (tensor<?x0xbf16>, tensor<1x64x0xbf16>, tensor<2xi32>) -> tensor<?x64xf32>
  return %a, %b, %c, %d : tensor<?x64xf32>, tensor<?x8xf32>, tensor<?x6xf32>, tensor<?x64xf32>
}

// -----

// An f32 input read by several products is truncated to bf16 once.
// CHECK-LABEL: func.func @shared_input
// CHECK-COUNT-1: linalg.generic
// CHECK-NOT: linalg.generic
// CHECK: gpu.launch_func @grouped_matmul_sm90_g1_n64_k64_f32::
// CHECK: gpu.launch_func @grouped_matmul_sm90_g1_n32_k64_f32::
func.func @shared_input(%x: tensor<?x64xf32>, %wq: tensor<1x64x64xbf16>,
                        %wk: tensor<1x32x64xbf16>, %off: tensor<2xi32>)
    -> (tensor<?x64xf32>, tensor<?x32xf32>) {
  %q = moe.grouped_matmul %x, %wq offsets(%off)
      : (tensor<?x64xf32>, tensor<1x64x64xbf16>, tensor<2xi32>) -> tensor<?x64xf32>
  %k = moe.grouped_matmul %x, %wk offsets(%off)
      : (tensor<?x64xf32>, tensor<1x32x64xbf16>, tensor<2xi32>) -> tensor<?x32xf32>
  return %q, %k : tensor<?x64xf32>, tensor<?x32xf32>
}

// -----

// Elementwise consumers run in the epilogue: a bias (read at the column),
// then a residual add (its init, read at the element), the second generic
// reading the first's result only. Their sizes (tensor.dim of the product)
// come from the operands. The kernel takes the bias and the residual after
// its own arguments, and stores the last generic's value.
// CHECK-LABEL: func.func @bias_residual
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xbf16>, %[[W:.*]]: tensor<1x128x64xbf16>, %[[B:.*]]: tensor<128xbf16>, %[[RES:.*]]: tensor<?x128xf32>, %[[OFF:.*]]: tensor<2xi32>)
// CHECK-NOT: linalg.generic
// CHECK-DAG: %[[BB:.*]] = bufferization.to_buffer %[[B]] read_only
// CHECK-DAG: %[[RB:.*]] = bufferization.to_buffer %[[RES]] read_only
// CHECK: gpu.launch_func @grouped_matmul_sm90_g1_n128_k64_f32_ep0::@grouped_matmul_sm90_g1_n128_k64_f32_ep0
// CHECK-SAME: %[[BB]] : memref<128xbf16>, %[[RB]] : memref<?x128xf32>)
// CHECK-NOT: linalg.generic
// CHECK: return
// CHECK: gpu.func @grouped_matmul_sm90_g1_n128_k64_f32_ep0(%{{.*}}: memref<2xi32>, %[[KOUT:.*]]: memref<?x128xf32>, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %[[KB:.*]]: memref<128xbf16>, %[[KR:.*]]: memref<?x128xf32>)
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: scf.if
// CHECK: %[[ACC:.*]] = llvm.extractvalue %{{.*}}[0]
// CHECK: %[[COL:.*]] = arith.addi
// CHECK: %[[BIAS:.*]] = memref.load %[[KB]][%[[COL]]]
// CHECK: %[[BIAS32:.*]] = arith.extf %[[BIAS]] : bf16 to f32
// CHECK: %[[SUM:.*]] = arith.addf %[[ACC]], %[[BIAS32]]
// CHECK: %[[R:.*]] = memref.load %[[KR]][%[[ROW:.*]], %[[COL]]]
// CHECK: %[[OUT:.*]] = arith.addf %[[R]], %[[SUM]]
// CHECK: memref.store %[[OUT]], %[[KOUT]][%[[ROW]], %[[COL]]]
#id = affine_map<(d0, d1) -> (d0, d1)>
#col = affine_map<(d0, d1) -> (d1)>
func.func @bias_residual(%x: tensor<?x64xbf16>, %w: tensor<1x128x64xbf16>,
                         %b: tensor<128xbf16>, %res: tensor<?x128xf32>,
                         %off: tensor<2xi32>) -> tensor<?x128xf32> {
  %c0 = arith.constant 0 : index
  %y = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x64xbf16>, tensor<1x128x64xbf16>, tensor<2xi32>) -> tensor<?x128xf32>
  %rows = tensor.dim %y, %c0 : tensor<?x128xf32>
  %e = tensor.empty(%rows) : tensor<?x128xf32>
  %biased = linalg.generic {indexing_maps = [#id, #col, #id],
                            iterator_types = ["parallel", "parallel"]}
      ins(%y, %b : tensor<?x128xf32>, tensor<128xbf16>) outs(%e : tensor<?x128xf32>) {
  ^bb0(%v: f32, %bias: bf16, %o: f32):
    %bf = arith.extf %bias : bf16 to f32
    %s = arith.addf %v, %bf : f32
    linalg.yield %s : f32
  } -> tensor<?x128xf32>
  %out = linalg.generic {indexing_maps = [#id, #id],
                         iterator_types = ["parallel", "parallel"]}
      ins(%biased : tensor<?x128xf32>) outs(%res : tensor<?x128xf32>) {
  ^bb0(%v: f32, %r: f32):
    %s = arith.addf %r, %v : f32
    linalg.yield %s : f32
  } -> tensor<?x128xf32>
  return %out : tensor<?x128xf32>
}

// -----

// The routed experts' sum (an unweighted moe.combine, read only by the
// consumer) plus the shared expert's down projection: the epilogue gathers
// each token's slot rows itself, in slot order from zero, skipping unused
// slots, and the combine is gone. A row operand (a per-token gate) and a
// constant from outside the payload come along.
// CHECK-LABEL: func.func @combine_shared
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xbf16>, %[[W:.*]]: tensor<1x128x64xbf16>, %[[ROWS:.*]]: tensor<?x128xf32>, %[[SLOTS:.*]]: tensor<?x2xi32>, %[[COUNTS:.*]]: tensor<?xi32>, %[[GATE:.*]]: tensor<?xf32>, %[[OFF:.*]]: tensor<2xi32>)
// CHECK-NOT: moe.combine
// CHECK-NOT: linalg.generic
// CHECK: gpu.launch_func @grouped_matmul_sm90_g1_n128_k64_f32_ep0::
// CHECK-SAME: memref<?x128xf32>, %{{.*}} : memref<?x2xi32>, %{{.*}} : memref<?xi32>, %{{.*}} : memref<?xf32>)
// CHECK: gpu.func @grouped_matmul_sm90_g1_n128_k64_f32_ep0({{.*}}, %[[KROWS:.*]]: memref<?x128xf32>, %[[KSLOTS:.*]]: memref<?x2xi32>, %[[KCOUNTS:.*]]: memref<?xi32>, %[[KGATE:.*]]: memref<?xf32>)
// Per row: the token's count, its two slot rows and its gate.
// CHECK: scf.if
// CHECK: %[[COUNT:.*]] = memref.load %[[KCOUNTS]][%[[ROW:.*]]]
// CHECK: %[[S0:.*]] = memref.load %[[KSLOTS]][%[[ROW]], %c0
// CHECK: %[[S1:.*]] = memref.load %[[KSLOTS]][%[[ROW]], %c1
// CHECK: %[[G:.*]] = memref.load %[[KGATE]][%[[ROW]]]
// CHECK: %[[ACC:.*]] = llvm.extractvalue
// CHECK: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[USED0:.*]] = arith.cmpi slt, %c0_i32{{.*}}, %[[COUNT]] : i32
// CHECK: %[[P0:.*]] = scf.if %[[USED0]] -> (f32) {
// CHECK: %[[R0:.*]] = arith.index_cast %[[S0]] : i32 to index
// CHECK: %[[V0:.*]] = memref.load %[[KROWS]][%[[R0]], %[[COL:.*]]]
// CHECK: arith.addf %[[ZERO]], %[[V0]]
// CHECK: } else {
// CHECK: scf.yield %[[ZERO]]
// CHECK: %[[USED1:.*]] = arith.cmpi slt, %c1_i32{{.*}}, %[[COUNT]] : i32
// CHECK: %[[P1:.*]] = scf.if %[[USED1]] -> (f32) {
// CHECK: %[[R1:.*]] = arith.index_cast %[[S1]] : i32 to index
// CHECK: %[[V1:.*]] = memref.load %[[KROWS]][%[[R1]], %[[COL]]]
// CHECK: arith.addf %[[P0]], %[[V1]]
// CHECK: %[[HALF:.*]] = arith.constant 5.000000e-01 : f32
// CHECK: %[[GV:.*]] = arith.mulf %[[ACC]], %[[G]]
// CHECK: %[[GH:.*]] = arith.mulf %[[GV]], %[[HALF]]
// CHECK: %[[Y:.*]] = arith.addf %[[P1]], %[[GH]]
// CHECK: memref.store %[[Y]]
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
func.func @combine_shared(%x: tensor<?x64xbf16>, %w: tensor<1x128x64xbf16>,
                          %rows: tensor<?x128xf32>, %slots: tensor<?x2xi32>,
                          %counts: tensor<?xi32>, %gate: tensor<?xf32>,
                          %off: tensor<2xi32>) -> tensor<?x128xf32> {
  %c0 = arith.constant 0 : index
  %half = arith.constant 0.5 : f32
  %routed = moe.combine %rows, %slots, %counts
      : (tensor<?x128xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x128xf32>
  %shared = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x64xbf16>, tensor<1x128x64xbf16>, tensor<2xi32>) -> tensor<?x128xf32>
  %t = tensor.dim %routed, %c0 : tensor<?x128xf32>
  %e = tensor.empty(%t) : tensor<?x128xf32>
  %y = linalg.generic {indexing_maps = [#id, #id, #row, #id],
                       iterator_types = ["parallel", "parallel"]}
      ins(%routed, %shared, %gate : tensor<?x128xf32>, tensor<?x128xf32>, tensor<?xf32>)
      outs(%e : tensor<?x128xf32>) {
  ^bb0(%r: f32, %s: f32, %g: f32, %o: f32):
    %gs = arith.mulf %s, %g : f32
    %h = arith.mulf %gs, %half : f32
    %sum = arith.addf %r, %h : f32
    linalg.yield %sum : f32
  } -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// Consumers the epilogue leaves alone: a second reader of the product, a
// transposed read, a payload using loop indices, a reduction; a weighted
// combine is read as a tensor, not gathered.
// CHECK-LABEL: func.func @not_fused
// CHECK: gpu.launch_func @grouped_matmul_sm90_g1_n64_k64_f32::
// CHECK: linalg.generic
// CHECK: gpu.launch_func @grouped_matmul_sm90_g1_n64_k64_f32::
// CHECK: linalg.generic
// CHECK: gpu.launch_func @grouped_matmul_sm90_g1_n64_k64_f32::
// CHECK: linalg.generic
// CHECK: gpu.launch_func @grouped_matmul_sm90_g1_n64_k64_f32::
// CHECK: linalg.generic
// CHECK: %[[ROUTED:.*]] = moe.combine
// CHECK: gpu.launch_func @grouped_matmul_sm90_g1_n64_k64_f32_ep0::
// CHECK: gpu.func @grouped_matmul_sm90_g1_n64_k64_f32(
// CHECK: gpu.func @grouped_matmul_sm90_g1_n64_k64_f32_ep0(
#id = affine_map<(d0, d1) -> (d0, d1)>
#t = affine_map<(d0, d1) -> (d1, d0)>
#row = affine_map<(d0, d1) -> (d0)>
func.func @not_fused(%x: tensor<64x64xbf16>, %w: tensor<1x64x64xbf16>,
                     %off: tensor<2xi32>, %rows: tensor<?x64xf32>,
                     %cw: tensor<64x2xf32>, %slots: tensor<64x2xi32>,
                     %counts: tensor<64xi32>)
    -> (tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>,
        tensor<64x64xf32>, tensor<64xf32>, tensor<64x64xf32>) {
  %e = tensor.empty() : tensor<64x64xf32>
  %z = tensor.empty() : tensor<64xf32>
  %a = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<64x64xbf16>, tensor<1x64x64xbf16>, tensor<2xi32>) -> tensor<64x64xf32>
  %a2 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%a : tensor<64x64xf32>) outs(%e : tensor<64x64xf32>) {
  ^bb0(%v: f32, %o: f32):
    %s = arith.addf %v, %v : f32
    linalg.yield %s : f32
  } -> tensor<64x64xf32>
  %b = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<64x64xbf16>, tensor<1x64x64xbf16>, tensor<2xi32>) -> tensor<64x64xf32>
  %b2 = linalg.generic {indexing_maps = [#t, #id], iterator_types = ["parallel", "parallel"]}
      ins(%b : tensor<64x64xf32>) outs(%e : tensor<64x64xf32>) {
  ^bb0(%v: f32, %o: f32):
    linalg.yield %v : f32
  } -> tensor<64x64xf32>
  %c = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<64x64xbf16>, tensor<1x64x64xbf16>, tensor<2xi32>) -> tensor<64x64xf32>
  %c2 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%c : tensor<64x64xf32>) outs(%e : tensor<64x64xf32>) {
  ^bb0(%v: f32, %o: f32):
    %i = linalg.index 1 : index
    %ii = arith.index_cast %i : index to i32
    %f = arith.sitofp %ii : i32 to f32
    %s = arith.addf %v, %f : f32
    linalg.yield %s : f32
  } -> tensor<64x64xf32>
  %d = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<64x64xbf16>, tensor<1x64x64xbf16>, tensor<2xi32>) -> tensor<64x64xf32>
  %d2 = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}
      ins(%d : tensor<64x64xf32>) outs(%z : tensor<64xf32>) {
  ^bb0(%v: f32, %o: f32):
    %s = arith.addf %v, %o : f32
    linalg.yield %s : f32
  } -> tensor<64xf32>
  %routed = moe.combine %rows, %cw, %slots, %counts
      : (tensor<?x64xf32>, tensor<64x2xf32>, tensor<64x2xi32>, tensor<64xi32>) -> tensor<64x64xf32>
  %f = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<64x64xbf16>, tensor<1x64x64xbf16>, tensor<2xi32>) -> tensor<64x64xf32>
  %f2 = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%f, %routed : tensor<64x64xf32>, tensor<64x64xf32>) outs(%e : tensor<64x64xf32>) {
  ^bb0(%v: f32, %r: f32, %o: f32):
    %s = arith.addf %v, %r : f32
    linalg.yield %s : f32
  } -> tensor<64x64xf32>
  return %a, %a2, %b2, %c2, %d2, %f2
      : tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>,
        tensor<64x64xf32>, tensor<64xf32>, tensor<64x64xf32>
}

// -----

// A consumer in another block (here a branch) is not fused: the launch
// would move into it. A generic reading one combine through two operands
// gathers it twice and erases it once.
// CHECK-LABEL: func.func @other_block
// CHECK: gpu.launch_func @grouped_matmul_sm90_g1_n64_k64_f32::
// CHECK: scf.if
// CHECK: linalg.generic
// CHECK-LABEL: func.func @combine_twice
// CHECK-NOT: moe.combine
// CHECK: gpu.launch_func @grouped_matmul_sm90_g1_n64_k64_f32_ep0::
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @other_block(%x: tensor<64x64xbf16>, %w: tensor<1x64x64xbf16>,
                       %off: tensor<2xi32>, %p: i1) -> tensor<64x64xf32> {
  %e = tensor.empty() : tensor<64x64xf32>
  %a = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<64x64xbf16>, tensor<1x64x64xbf16>, tensor<2xi32>) -> tensor<64x64xf32>
  %r = scf.if %p -> tensor<64x64xf32> {
    %a2 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
        ins(%a : tensor<64x64xf32>) outs(%e : tensor<64x64xf32>) {
    ^bb0(%v: f32, %o: f32):
      %s = arith.addf %v, %v : f32
      linalg.yield %s : f32
    } -> tensor<64x64xf32>
    scf.yield %a2 : tensor<64x64xf32>
  } else {
    scf.yield %e : tensor<64x64xf32>
  }
  return %r : tensor<64x64xf32>
}

func.func @combine_twice(%x: tensor<64x64xbf16>, %w: tensor<1x64x64xbf16>,
                         %off: tensor<2xi32>, %rows: tensor<?x64xf32>,
                         %slots: tensor<64x2xi32>, %counts: tensor<64xi32>)
    -> tensor<64x64xf32> {
  %e = tensor.empty() : tensor<64x64xf32>
  %routed = moe.combine %rows, %slots, %counts
      : (tensor<?x64xf32>, tensor<64x2xi32>, tensor<64xi32>) -> tensor<64x64xf32>
  %f = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<64x64xbf16>, tensor<1x64x64xbf16>, tensor<2xi32>) -> tensor<64x64xf32>
  %y = linalg.generic {indexing_maps = [#id, #id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%f, %routed, %routed : tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>)
      outs(%e : tensor<64x64xf32>) {
  ^bb0(%v: f32, %r: f32, %r2: f32, %o: f32):
    %s = arith.addf %v, %r : f32
    %t = arith.addf %s, %r2 : f32
    linalg.yield %t : f32
  } -> tensor<64x64xf32>
  return %y : tensor<64x64xf32>
}

// -----

// combine-scatter: the down projection of a top-2 dispatch adds each row
// into its token's row of a zeroed [T, N] output (the dispatch's
// row_to_token), and the combine is gone. Not when the combine reads other
// counts than the dispatch filled, nor for more than 2 slots.
// SCATTER-LABEL: func.func @scatter
// SCATTER-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[IDS:.*]]: tensor<?x2xi32>, %[[COUNTS:.*]]: tensor<?xi32>
// SCATTER: %[[ROWS:.*]], %[[OFF:.*]], %[[R2T:.*]], %[[S2R:.*]] = moe.dispatch
// SCATTER: %[[T:.*]] = tensor.dim %[[S2R]], %c0
// SCATTER: %[[OUT:.*]] = memref.alloc(%[[T]]) : memref<?x64xf32>
// SCATTER: linalg.fill ins(%{{.*}} : f32) outs(%[[OUT]] : memref<?x64xf32>)
// SCATTER: %[[R2TB:.*]] = bufferization.to_buffer %[[R2T]] read_only
// SCATTER: gpu.launch_func @grouped_matmul_sm90_g8_n64_k128_scale_scatter_f32::
// SCATTER-SAME: %[[R2TB]] : memref<?xi32>)
// SCATTER-NOT: moe.combine
// SCATTER: return
// SCATTER-LABEL: func.func @other_counts
// SCATTER: moe.combine
// SCATTER-LABEL: func.func @three_slots
// SCATTER: moe.combine
// The kernel (after the functions).
// SCATTER: gpu.func @grouped_matmul_sm90_g8_n64_k128_scale_scatter_f32({{.*}}, %[[KR2T:.*]]: memref<?xi32>)
// SCATTER: nvvm.wgmma.wait.group.sync.aligned 0
// SCATTER: scf.if
// SCATTER: %[[TOK:.*]] = memref.load %[[KR2T]][%[[ROW:.*]]]
// SCATTER: %[[TOKI:.*]] = arith.index_cast %[[TOK]] : i32 to index
// SCATTER: memref.atomic_rmw addf %{{.*}}, %{{.*}}[%[[TOKI]], %{{.*}}]
func.func @scatter(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>,
                   %counts: tensor<?xi32>, %h: tensor<?x128xbf16>,
                   %w: tensor<8x64x128xbf16>, %s: tensor<?xf32>) -> tensor<?x64xf32> {
  %rows, %off, %r2t, %s2r = moe.dispatch %x, %ids, %counts
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?xi32>
      -> tensor<?x64xf32>, tensor<9xi32>, tensor<?xi32>, tensor<?x2xi32>
  %y = moe.grouped_matmul %h, %w offsets(%off) scale(%s)
      : (tensor<?x128xbf16>, tensor<8x64x128xbf16>, tensor<9xi32>, tensor<?xf32>) -> tensor<?x64xf32>
  %z = moe.combine %y, %s2r, %counts
      : (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x64xf32>
  return %z : tensor<?x64xf32>
}

func.func @other_counts(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>,
                        %counts: tensor<?xi32>, %fewer: tensor<?xi32>,
                        %h: tensor<?x128xbf16>, %w: tensor<8x64x128xbf16>,
                        %s: tensor<?xf32>) -> tensor<?x64xf32> {
  %rows, %off, %r2t, %s2r = moe.dispatch %x, %ids, %counts
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?xi32>
      -> tensor<?x64xf32>, tensor<9xi32>, tensor<?xi32>, tensor<?x2xi32>
  %y = moe.grouped_matmul %h, %w offsets(%off) scale(%s)
      : (tensor<?x128xbf16>, tensor<8x64x128xbf16>, tensor<9xi32>, tensor<?xf32>) -> tensor<?x64xf32>
  %z = moe.combine %y, %s2r, %fewer
      : (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x64xf32>
  return %z : tensor<?x64xf32>
}

func.func @three_slots(%x: tensor<?x64xf32>, %ids: tensor<?x3xi32>,
                       %counts: tensor<?xi32>, %h: tensor<?x128xbf16>,
                       %w: tensor<8x64x128xbf16>, %s: tensor<?xf32>) -> tensor<?x64xf32> {
  %rows, %off, %r2t, %s2r = moe.dispatch %x, %ids, %counts
      : tensor<?x64xf32>, tensor<?x3xi32>, tensor<?xi32>
      -> tensor<?x64xf32>, tensor<9xi32>, tensor<?xi32>, tensor<?x3xi32>
  %y = moe.grouped_matmul %h, %w offsets(%off) scale(%s)
      : (tensor<?x128xbf16>, tensor<8x64x128xbf16>, tensor<9xi32>, tensor<?xf32>) -> tensor<?x64xf32>
  %z = moe.combine %y, %s2r, %counts
      : (tensor<?x64xf32>, tensor<?x3xi32>, tensor<?xi32>) -> tensor<?x64xf32>
  return %z : tensor<?x64xf32>
}

// -----

// An elementwise generic whose result only the products taken here read
// (an RMS norm's scaling before q/k/v) yields bf16 itself: one generic,
// truncating in its payload, and no copy. Read by anything else as well,
// it stays f32 and one truncated copy serves the products.
// CHECK-LABEL: func.func @narrowed_producer
// CHECK-NOT: linalg.generic {{.*}} tensor<?x64xf32>)
// CHECK: %[[N:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<?x64xbf16>)
// CHECK: arith.mulf
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK-NOT: linalg.generic
// CHECK: bufferization.to_buffer %[[N]] read_only
// CHECK: gpu.launch_func @grouped_matmul_sm90_g1_n64_k64_f32::
// CHECK: bufferization.to_buffer %[[N]] read_only
// CHECK: gpu.launch_func @grouped_matmul_sm90_g1_n64_k64_f32::
// CHECK-LABEL: func.func @shared_producer
// CHECK: %[[F:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<?x64xf32>)
// CHECK: linalg.generic {{.*}} ins(%[[F]] : tensor<?x64xf32>) outs(%{{.*}} : tensor<?x64xbf16>)
// CHECK-NOT: linalg.generic
// CHECK: gpu.launch_func
// CHECK: return %{{.*}}, %[[F]]
#id = affine_map<(d0, d1) -> (d0, d1)>
#col = affine_map<(d0, d1) -> (d1)>
func.func @narrowed_producer(%x: tensor<?x64xf32>, %g: tensor<64xf32>,
                             %w: tensor<1x64x64xbf16>, %off: tensor<2xi32>)
    -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %e = tensor.empty(%t) : tensor<?x64xf32>
  %n = linalg.generic {indexing_maps = [#id, #col, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x, %g : tensor<?x64xf32>, tensor<64xf32>) outs(%e : tensor<?x64xf32>) {
  ^bb0(%v: f32, %s: f32, %o: f32):
    %m = arith.mulf %v, %s : f32
    linalg.yield %m : f32
  } -> tensor<?x64xf32>
  %q = moe.grouped_matmul %n, %w offsets(%off)
      : (tensor<?x64xf32>, tensor<1x64x64xbf16>, tensor<2xi32>) -> tensor<?x64xf32>
  %k = moe.grouped_matmul %n, %w offsets(%off)
      : (tensor<?x64xf32>, tensor<1x64x64xbf16>, tensor<2xi32>) -> tensor<?x64xf32>
  return %q, %k : tensor<?x64xf32>, tensor<?x64xf32>
}

func.func @shared_producer(%x: tensor<?x64xf32>, %g: tensor<64xf32>,
                           %w: tensor<1x64x64xbf16>, %off: tensor<2xi32>)
    -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %e = tensor.empty(%t) : tensor<?x64xf32>
  %n = linalg.generic {indexing_maps = [#id, #col, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x, %g : tensor<?x64xf32>, tensor<64xf32>) outs(%e : tensor<?x64xf32>) {
  ^bb0(%v: f32, %s: f32, %o: f32):
    %m = arith.mulf %v, %s : f32
    linalg.yield %m : f32
  } -> tensor<?x64xf32>
  %q = moe.grouped_matmul %n, %w offsets(%off)
      : (tensor<?x64xf32>, tensor<1x64x64xbf16>, tensor<2xi32>) -> tensor<?x64xf32>
  return %q, %n : tensor<?x64xf32>, tensor<?x64xf32>
}
