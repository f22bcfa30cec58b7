//===- Passes.td - moe codegen passes ----------------------*- tablegen -*-===//

#ifndef MOEC_CODEGEN_PASSES_TD
#define MOEC_CODEGEN_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMoeToLinalg : Pass<"convert-moe-to-linalg"> {
  let summary = "Lower moe kernel ops to linalg, tensor, scf and arith on tensors";
  let description = [{
    Rewrites the moe ops that have a target-independent lowering into
    destination-passing `linalg.generic` ops on tensors, ready for one-shot
    bufferization and for either the CPU or the CUDA pipeline:

    * `moe.grouped_matmul`: a generic that finds each row's group from the
      offsets, a generic over (row, n, k) that reads the group's weight with
      `tensor.extract`, and an elementwise epilogue (SwiGLU, row scale, cast);
    * `moe.dispatch`: generics, each parallel over its output: per chunk of
      32 tokens the slots routed to each expert, the rows per expert and
      their exclusive prefix sum (the offsets), each chunk's first row per
      expert, each slot's row (its chunk's start plus the chunk's earlier
      slots routed to its expert: the stable, token-order placement), each
      row's token (found from the chunk starts), and the gathered token
      rows. With `static-row-bound` the rows are sized by the T·K slots, so
      nothing reads the offsets back to size a buffer (the GPU's choice);
      rows past the offsets' end are token 0's, never combined;
    * `moe.combine`: a generic over (token, d, slot) that gathers rows through
      `slot_to_row` and skips unused slots;
    * `moe.split_tokens` / `moe.merge_tokens`: `tensor.expand_shape` and
      `tensor.collapse_shape`;
    * `moe.attention` (full causal or sliding-window) and
      `moe.grouped_attention` (GMHA): an `scf.forall` over (batch, query,
      head) whose iterations walk their own keys once with an online softmax
      (running max, running sum, f32 accumulator in the query's output row),
      so no score matrix exists and a window or group bound keeps the work
      per query at most W (plus one summary per earlier group); GMHA's group
      means are one generic over the complete groups, computed once.
      Pipelines turn the bufferized forall into an `scf.parallel` with
      `scf-forall-to-parallel`.

    * `moe.weight` with a tensor result: `bufferization.to_tensor restrict`
      of the same weight as a buffer (read-only: bufferization reads the
      runtime's table entry in place); the buffer form is lowered to the
      LLVM dialect by `convert-to-llvm` (a load of the entry).

    `moe.router` is lowered by `moe-lower-routing` and `moe.moe_block` by
    `moe-decompose-moe-block`; either left here is an error that names it.

    Before:
    ```mlir
    %y = moe.grouped_matmul %x, %w offsets(%off)
        : (tensor<?x4xf32>, tensor<3x2x4xf32>, tensor<4xi32>) -> tensor<?x2xf32>
    ```
    After (abridged):
    ```mlir
    %groups = linalg.generic {iterator_types = ["parallel", "reduction"]}
        ins(%ends : tensor<3xi32>) outs(%zeros : tensor<?xi32>) { ... }
    %y = linalg.generic {iterator_types = ["parallel", "parallel", "reduction"]}
        ins(%x, %groups : tensor<?x4xf32>, tensor<?xi32>)
        outs(%acc : tensor<?x2xf32>) {
      ...
      %wv = tensor.extract %w[%g, %n, %k] : tensor<3x2x4xf32>
      ...
    }
    ```
  }];
  let options = [
    Option<"staticRowBound", "static-row-bound", "bool", /*default=*/"false",
           "Size moe.dispatch's rows by the T·K slots instead of reading the "
           "row count (offsets[E]) back">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def LowerExpandShape : Pass<"moe-lower-expand-shape"> {
  let summary = "Rewrite memref.expand_shape with several dynamic sizes in "
                "one group as a memref.reinterpret_cast";
  let description = [{
    A model's activations are `[B * T, D]` rows that attention views as
    `[B, T, H, Dh]`: one dimension split into two dynamic ones. LLVM 22's
    `expand-strided-metadata` crashes on such an expand_shape, so this pass,
    run before it, rewrites the ones whose source and result have the
    identity (row-major) layout into a reinterpret_cast with explicit
    strides. Other expand_shapes are left alone.

    Before:
    ```mlir
    %e = memref.expand_shape %a [[0, 1], [2]] output_shape [%b, %t, 16]
        : memref<?x16xf32> into memref<?x?x16xf32>
    ```
    After:
    ```mlir
    %s = arith.muli %c16, %t : index
    %e = memref.reinterpret_cast %a to offset: [0], sizes: [%b, %t, 16],
        strides: [%s, 16, 1] : memref<?x16xf32> to memref<?x?x16xf32>
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect"];
}

def SelectCpuKernels : Pass<"moe-select-cpu-kernels"> {
  let summary = "Choose each kernel op's shape for the target CPU";
  let description = [{
    The one place where CPU kernel shapes are decided (as IREE's
    `KernelDispatch` does for its lowering configs). From the target CPU
    (`cpu` and `cpu-features`, the host by default: its vector width,
    vector registers, FMA and AVX-512 BF16) it attaches a `moe.kernel`
    attribute to

    * every `moe.grouped_matmul` with a static weight shape: a
      `#moe.cpu_matmul_kernel`, which `moe-tile-grouped-matmul` follows;
    * every `moe.attention` / `moe.grouped_attention`: a
      `#moe.attention_kernel`, which `moe-tile-attention` follows.

    The choices, for `L` f32 lanes per register (16 with AVX-512, 8 with
    AVX2, 4 with SSE):

    * the `outer` kernel, blocks of 6 rows by 2 L columns with 16 registers
      (12 accumulators, 2 panel vectors and a broadcast: 15 registers) and
      by 4 L columns with 32 (24 + 4 + 1), 192 x 64 work tiles (192 rows
      are 32 blocks over which a panel is packed once), K in chunks of 512;
      the `dot` kernel measured 0.45-0.7x of it on AVX2 (0.6-0.75x on
      AVX-512 in the GEMM benchmark, about equal in whole-model prefill;
      docs/performance.md);
    * with `bf16-dot`, the `dot` kernel (AVX-512 BF16 multiplies along K):
      4 x 4 accumulators with 32 registers, 4 x 3 with 16, 64 x 64 tiles,
      K in chunks of 1024;
    * in a function marked `moe.decode_step` (one token per sequence, so a
      row or two per group, and the step bound by reading the weights): the
      `dot` kernel, which reads the weights in place instead of packing a
      copy, with blocks of 1 row x 4 columns, 64 x 64 tiles, K in chunks of
      1024 (0.55x the outer kernel's decode-step time at B = 1 on Zen 3;
      docs/performance.md);
    * attention: work items of 2 row vectors of query rows (as many heads
      of the GQA group as divide them, times positions), key blocks of 64,
      register blocks of 4 keys with 16 registers (8 accumulators, 2 row
      vectors, a broadcast) and 8 with 32; 3 row vectors on AVX2 were
      12% faster in the attention benchmark but made LLVM spill, and no
      faster on AVX-512 (docs/performance.md).

    Every option other than `cpu` and `cpu-features` overrides the chosen
    value (the decode step's included) when set (non-zero, non-empty), for
    experiments and for tests that
    run each kernel shape on any machine (the shape, not the instruction
    set, is what they force). `bf16-dot` needs a target with avx512bf16.

    Before:
    ```mlir
    %y = moe.grouped_matmul %x, %w offsets(%off)
        : (tensor<?x64xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<?x32xf32>
    ```
    After, with `cpu=znver3`:
    ```mlir
    %y = moe.grouped_matmul %x, %w offsets(%off)
        {moe.kernel = #moe.cpu_matmul_kernel<outer, tile_rows = 192,
             tile_cols = 64, tile_k = 512, micro_rows = 6, micro_cols = 16,
             vector_width = 8>}
        : (tensor<?x64xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<?x32xf32>
    ```
  }];
  let options = [
    Option<"cpu", "cpu", "std::string", /*default=*/"\"\"",
           "LLVM name of the target CPU (znver3, x86-64-v3, ...); empty or "
           "host: the machine the compiler runs on">,
    Option<"cpuFeatures", "cpu-features", "std::string", /*default=*/"\"\"",
           "LLVM features on top of the CPU's, e.g. +avx2,-avx512f">,
    Option<"kernel", "kernel", "std::string", /*default=*/"\"\"",
           "Grouped GEMM micro-kernel, dot or outer (default: the target's)">,
    Option<"tileRows", "tile-rows", "int64_t", /*default=*/"0",
           "Grouped GEMM: rows of a group per work tile (0: the target's)">,
    Option<"tileCols", "tile-cols", "int64_t", /*default=*/"0",
           "Grouped GEMM: output columns per work tile (0: the target's)">,
    Option<"tileK", "tile-k", "int64_t", /*default=*/"0",
           "Grouped GEMM: K elements per chunk (0: the target's)">,
    Option<"microRows", "micro-rows", "int64_t", /*default=*/"0",
           "Grouped GEMM: rows of a register block (0: the target's)">,
    Option<"microCols", "micro-cols", "int64_t", /*default=*/"0",
           "Grouped GEMM: columns of a register block (0: the target's)">,
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"0",
           "Grouped GEMM and attention: f32 lanes per vector (0: the "
           "target's register)">,
    Option<"bf16Dot", "bf16-dot", "bool", /*default=*/"false",
           "Grouped GEMM: bf16 rows times bf16 weights with the AVX-512 BF16 "
           "dot product (dot kernel; needs avx512bf16)">,
    Option<"headsPerStep", "heads-per-step", "int64_t", /*default=*/"0",
           "Attention: heads of a GQA group per work item (0: the target's; "
           "must divide the heads per kv-head)">,
    Option<"queryBlock", "query-block", "int64_t", /*default=*/"0",
           "Attention: positions per work item (0: the target's)">,
    Option<"keyBlock", "key-block", "int64_t", /*default=*/"0",
           "Attention: keys per softmax step (0: the target's)">,
    Option<"attentionMicroRows", "attention-micro-rows", "int64_t",
           /*default=*/"0",
           "Attention: keys or head dimensions per register block (0: the "
           "target's)">,
  ];
}

def TileGroupedMatmul : Pass<"moe-tile-grouped-matmul"> {
  let summary = "Lower moe.grouped_matmul to a parallel, register-blocked "
                "vector kernel over a tile schedule (CPU)";
  let description = [{
    Rewrites each `moe.grouped_matmul` whose weight has static `G`, `N` and
    `K` into an `scf.forall` over (column tile, row tile): the column tiles
    cut `N` into `tile-cols` columns, the row tiles come from a
    `moe.tile_schedule` of the group offsets (at most `tile-rows` rows of
    one group each), so that one big group still spreads over every worker
    and an empty group costs nothing. Column tiles outermost make a static
    split of the loop give each worker a share of the columns for all the
    rows, whatever the routing, and let a worker reuse a weight panel over
    all the row tiles of its group before moving on (each weight is read
    from memory about once; the rows, which are smaller, are re-read). The
    moe-to-cpu-pipeline turns the loop into an OpenMP parallel loop.

    The sizes and the micro-kernel come from the op's `moe.kernel`
    (`#moe.cpu_matmul_kernel`, set by `moe-select-cpu-kernels`), or else
    from this pass's options. Each (column tile, row tile) runs register
    blocks of `micro-rows` rows by `micro-cols` columns, of one of two kinds:

    * `dot`: one `vector<vector-width x f32>` accumulator per (row, column),
      reading `vector-width` elements along K of each row and of each weight
      row (both are K-contiguous: `[R, K]` and `[G, N, K]`), multiplied with
      `vector.fma`; after the last K step all the block's accumulators are
      reduced at once with a tree of `vector.shuffle`s and adds (one vector
      of sums, about 3 operations per accumulator). K steps past K read
      zeros through masks.
    * `outer`: each K chunk first packs the work tile's weight rows into an
      f32 panel `[weights, K chunk, tile-cols]` (squares of vector-width
      rows read along K, transposed with `vector.shuffle`s); a block keeps
      `micro-cols / vector-width` accumulators per row, and every K step
      broadcasts one element of each of its rows and multiplies it with the
      panel's row (`vector.fma`): a register holds vector-width outputs,
      which is what 16 registers need.

    Rows past the tile and columns past `N` read a clamped, valid row and
    are never stored. The epilogue runs on the block's sums in registers
    before one (masked) store per row: SwiGLU takes the gate and up
    accumulators computed in the same pass over K (each then gets half of
    the block's columns, so the register count stays that of the plain
    kernel), then the row scale, then the cast to the result type. The
    SwiGLU `exp` is expanded into MLIR's vector polynomial approximation
    (within a few ulp of libm's `expf`), since LLVM would otherwise call
    `expf` once per output element.

    K longer than `tile-k` is summed in chunks, each a pass over all the
    work item's register blocks, so that the tile's rows and a block's
    weight rows stay in cache for a chunk: the first chunk writes the
    blocks' sums to an f32 scratch tile, the middle ones add to it, and the
    last adds it to its own sums before the epilogue.

    With `bf16-dot` (dot kernel) and bf16 rows and weights, each K step
    reads twice `vector-width` bf16 elements and multiplies them with
    `x86vector.avx512.dot` (vdpbf16ps): each f32 lane accumulates the
    products of a pair of elements, twice the work of an f32 `vector.fma`
    per instruction, without widening. The instruction flushes denormals and
    rounds its products its own way, so results may differ from the widened
    f32 ones in the last bits; it needs a CPU with avx512_bf16. Otherwise
    bf16 operands are widened to f32 after each load (a shift of the 16
    bits into the high half).

    Ops with a dynamic weight shape are left to `convert-moe-to-linalg`.

    Before:
    ```mlir
    %y = moe.grouped_matmul %x, %w offsets(%off)
        : (tensor<?x64xf32>, tensor<8x32x64xf32>, tensor<9xi32>) -> tensor<?x32xf32>
    ```
    After, `dot` kernel (abridged):
    ```mlir
    %tiles = moe.tile_schedule %off tile_rows(64) : tensor<9xi32> -> tensor<?x3xi32>
    %y = scf.forall (%c, %t) in (1, %num_tiles) shared_outs(%o = %init) {
      // (group, first row, rows) of tile %t; the columns of tile %c.
      %block = scf.for %n = ... step 4 iter_args(...) {
        scf.for %m = ... step 4 iter_args(...) {
          %acc = scf.for %k = %c0 to %c64 step %c16 iter_args(16 x vector<16xf32>) {
            %a = vector.transfer_read %x[%row, %k] ... : tensor<?x64xf32>, vector<16xf32>
            %b = vector.transfer_read %w[%g, %col, %k] ... : tensor<8x32x64xf32>, vector<16xf32>
            %f = vector.fma %a, %b, %acc_ij : vector<16xf32>
            ...
          }
          %lo = vector.shuffle %acc#0, %acc#1 [0, ..., 7, 16, ..., 23] : vector<16xf32>, vector<16xf32>
          ...
          %row = vector.extract_strided_slice %sums {offsets = [0], sizes = [4], strides = [1]}
          vector.transfer_write %row, ... : vector<4xf32>, tensor<?x?xf32>
        }
      }
      scf.forall.in_parallel {
        tensor.parallel_insert_slice %block into %o[...] ...
      }
    }
    ```
    The `outer` kernel's K loop instead (abridged):
    ```mlir
    %acc = scf.for %k = %c0 to %c64 step %c1 iter_args(12 x vector<8xf32>) {
      %p0 = vector.transfer_read %panel[%c0, %k, %col] ... : tensor<1x64x64xf32>, vector<8xf32>
      %x0 = tensor.extract %x[%row0, %kk] : tensor<?x64xf32>
      %a0 = vector.broadcast %x0 : f32 to vector<8xf32>
      %f = vector.fma %a0, %p0, %acc_00 : vector<8xf32>
      ...
    }
    ```
  }];
  let options = [
    Option<"kernel", "kernel", "std::string", /*default=*/"\"dot\"",
           "Micro-kernel of ops without a moe.kernel: dot or outer">,
    Option<"tileRows", "tile-rows", "int64_t", /*default=*/"64",
           "Rows of a group per work tile (moe.tile_schedule)">,
    Option<"tileCols", "tile-cols", "int64_t", /*default=*/"64",
           "Output columns per work tile">,
    Option<"tileK", "tile-k", "int64_t", /*default=*/"1024",
           "K elements per pass over a work tile (rounded up to a multiple "
           "of vector-width); longer K is summed chunk by chunk">,
    Option<"microRows", "micro-rows", "int64_t", /*default=*/"4",
           "Rows of a register block">,
    Option<"microCols", "micro-cols", "int64_t", /*default=*/"4",
           "Columns of a register block (split between gate and up under "
           "SwiGLU)">,
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"16",
           "f32 lanes per vector (16 fills an AVX-512 register)">,
    Option<"bf16Dot", "bf16-dot", "bool", /*default=*/"false",
           "With bf16 rows and weights, multiply with the AVX-512 BF16 dot "
           "product (x86vector.avx512.dot, vdpbf16ps: a pair of products per "
           "f32 lane) instead of widening to f32; needs a CPU with "
           "avx512_bf16">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::vector::VectorDialect",
    "::mlir::x86vector::X86VectorDialect",
  ];
}

def TileAttention : Pass<"moe-tile-attention"> {
  let summary = "Lower moe.attention / moe.grouped_attention to a blocked, "
                "flash-style vector kernel (CPU)";
  let description = [{
    Rewrites each attention op into an `scf.forall` over (batch, block of
    `query-block` positions, `heads-per-step` heads of one GQA group). The
    work item's query rows (positions times heads) are the lanes of its
    `vector<vector-width x f32>` values, so its online softmax runs on whole
    vectors. It walks its keys in blocks of `key-block`:

    1. scores `S[j, r] = K[j] . Q[r] / sqrt(Dh)`: a register block of
       `micro-rows` keys by every row vector, each step broadcasting one key
       element and multiplying it with a row vector of the transposed
       queries (packed once per item);
    2. keys outside a row's range score `-inf` (causal bound, sliding
       window, GMHA's group), then the block's max, `P = exp(S - max)` in
       place, the sums, and the rescale `exp(max_old - max_new)` per row;
    3. `O[d, r] = O[d, r] * rescale[r] + sum_j V[j, d] P[j, r]`: register
       blocks of `micro-rows` head dimensions, broadcasting value elements.

    Every key and value element loaded serves all the item's rows, and no
    horizontal reduction is needed. GMHA's summaries (the means of the
    complete groups, computed once) are a second key range folded into the
    same softmax. Rows past T repeat the last position and are not stored;
    the block order alternates short and long causal rows so that a static
    split of the loop balances the workers. The exps are expanded into
    MLIR's vector polynomial.

    The shape comes from the op's `moe.kernel` (`#moe.attention_kernel`, set
    by `moe-select-cpu-kernels`), or else from this pass's options;
    `heads-per-step` must divide the heads per kv-head and `micro-rows` the
    head dimension.

    Before:
    ```mlir
    %o = moe.attention %q, %k, %v
        : tensor<1x?x16x64xf32>, tensor<1x?x8x64xf32>, tensor<1x?x8x64xf32>
        -> tensor<1x?x16x64xf32>
    ```
    After (abridged):
    ```mlir
    %o = scf.forall (%b, %blk, %h) in (1, %blocks, 8) shared_outs(%out = %init) {
      %qt = scf.for ... // the rows' queries, transposed: tensor<64x16xf32>
      %state:6 = scf.for %j0 = %lo to %hi step %c64 iter_args(...) {
        // scores: 4 keys x 2 row vectors of 8 lanes per register block
        // P = exp(S - max), sums, rescale; O = O * rescale + V^T P
      }
      ...
    }
    ```
  }];
  let options = [
    Option<"headsPerStep", "heads-per-step", "int64_t", /*default=*/"1",
           "Heads of a GQA group per work item">,
    Option<"queryBlock", "query-block", "int64_t", /*default=*/"16",
           "Positions per work item">,
    Option<"keyBlock", "key-block", "int64_t", /*default=*/"64",
           "Keys per softmax step">,
    Option<"microRows", "micro-rows", "int64_t", /*default=*/"4",
           "Keys (scores) and head dimensions (values) per register block">,
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"8",
           "f32 lanes per vector; the query rows (heads-per-step x "
           "query-block) must be a multiple">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def TileGroupedMatmulSm90 : Pass<"moe-tile-grouped-matmul-sm90",
                                  "::mlir::ModuleOp"> {
  let summary = "Lower bf16 moe.grouped_matmul to a persistent wgmma + TMA "
                "kernel for sm_90a (GPU)";
  let description = [{
    Rewrites each `moe.grouped_matmul` whose weights are bf16 with a static
    shape (N and K multiples of 8), except the router's logits
    (`moe.routing_logits`), into a launch of one CTA per SM (`sm-count`) of a
    persistent kernel, a `gpu.func` in a `gpu.module` of its own per static
    shape and fused epilogue. A CTA is one warpgroup on 128 x 128 tiles, or
    with `tile-cols=256` two warpgroups on 128 x 256 tiles (warpgroup w
    multiplying the A tile's 64-row half w):

    * the schedule: thread 0 of each CTA writes each group's first row tile
      (a prefix sum of `ceil(rows / 128)` over the offsets) into shared
      memory; the work items are (row tile, column tile) pairs, row tiles
      fastest, which CTA `b` walks as `b, b + sm-count, ...`. Empty groups
      have no row tile, and a group holding most rows is most of the items;
    * the main loop: the K blocks of 64 come through a ring of `stages`
      shared-memory stages, each with a `full` mbarrier (thread 0 arms it
      with the stage's bytes and issues the TMA loads: A, 128 rows at the
      tile's row offset; B, `tile-cols` weight rows of the group, or half as
      many gate and up rows under SwiGLU; 128-byte swizzled, zero-filled
      past the matrix) and an `empty` one (lane 0 of each warp arrives once
      its wgmmas on the stage are done, and every thread waits for it before
      thread 0 refills it). Thread-0 and lane-0 operations are predicated,
      not branched on, so that ptxas does not serialise the wgmmas. The
      loads run `stages - 1` blocks ahead, on into the CTA's next item; per
      block each warpgroup issues 4 K steps of `wgmma.mma_async`
      m64n128k16 for both row halves (or m64n256k16 for its half), bf16,
      f32 accumulators in registers, K-major descriptors built in the
      kernel; an item's first K step starts from zero (scale-d = 0);
    * the epilogue on the accumulator fragments: SwiGLU (gate and up columns
      sit in the same thread), the row scale, the cast, then the fused
      consumers, and a store per valid row and column, so partial tiles are
      predicated, not padded.

    Fused consumers: the chain of elementwise linalg generics over the
    product's [rows, N], each the only reader of the value before it, whose
    other operands are read at the element, its column (a bias) or its row,
    with payloads of pure scalar ops (a bias, a residual add, the shared
    expert's sum with the routed experts). An element operand that is an
    unweighted `moe.combine` read by nothing else is gathered by the
    epilogue itself (each token's used slot rows, summed in slot order from
    zero, like the combine), and the combine disappears. With
    `combine-scatter`, a product read only by a combine of at most 2 slots
    adds each row into its token's row of a zeroed output (atomic f32 adds:
    `0 + a + b` is the same in either order), instead.

    f32 inputs are first truncated to bf16 (a generic, one per input value),
    unless only products taken here read them: the f32 result of another
    product then writes bf16 itself, and an elementwise generic's result
    (an RMS norm) comes from a twin of the generic yielding bf16. The
    descriptors are built on the host by `nvgpu.tma.create.descriptor` and
    passed as `!llvm.ptr`. Other grouped matmuls keep the generic lowering
    of `convert-moe-to-linalg`.

    Before:
    ```mlir
    %h = moe.grouped_matmul %x, %w1, %w3 offsets(%off) epilogue(swiglu)
        : (tensor<?x4096xbf16>, tensor<8x14336x4096xbf16>,
           tensor<8x14336x4096xbf16>, tensor<9xi32>) -> tensor<?x14336xbf16>
    ```
    After (abridged):
    ```mlir
    %a = bufferization.to_buffer %x read_only : ...
    %da = nvgpu.tma.create.descriptor %a_unranked box[%c128, %c64] : ...
    %out = memref.alloc(%rows) : memref<?x14336xbf16>
    gpu.launch_func @grouped_matmul_sm90_g8_n14336_k4096_swiglu_bf16::@...
        blocks in (%c132, %c1, %c1) threads in (%c128, %c1, %c1)
        dynamic_shared_memory_size %bytes args(%off_buf, %out, %pa, %pw, %pu)
    %h = bufferization.to_tensor %out restrict writable : ...

    gpu.module @grouped_matmul_sm90_g8_n14336_k4096_swiglu_bf16 {
      gpu.func @... kernel {
        // tile starts per group; for each work item and K block:
        //   nvgpu.mbarrier.try_wait.parity (full) ; nvvm.wgmma.mma_async x8
        //   lane 0: nvgpu.mbarrier.arrive (empty)
        //   thread 0: try_wait (empty), expect_tx, nvgpu.tma.async.load x3
        // silu(gate) * up, truncf, memref.store
      }
    }
    ```
  }];
  let options = [
    Option<"stages", "stages", "int64_t", /*default=*/"4",
           "Shared-memory stages of the TMA ring (32 KiB each, 48 KiB with "
           "tile-cols=256)">,
    Option<"smCount", "sm-count", "int64_t", /*default=*/"132",
           "CTAs of the persistent kernel: the GPU's SMs (132 on H100/H200 "
           "SXM)">,
    Option<"tileCols", "tile-cols", "int64_t", /*default=*/"128",
           "The wgmma's N, weight rows per work item: 128 (one warpgroup "
           "per CTA, 128 x 128 tiles) or 256 (two warpgroups, one per "
           "64-row half of a 128 x 256 tile: twice the FLOPs per byte "
           "loaded, 48 KiB stages)">,
    Option<"combineScatter", "combine-scatter", "bool", /*default=*/"false",
           "Fold a combine of at most 2 slots per token into the producing "
           "product: its epilogue adds each row into its token's row of a "
           "zeroed output with atomic f32 adds (exact and deterministic for "
           "2 addends), instead of a gather kernel">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::nvgpu::NVGPUDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def TileAttentionSm90 : Pass<"moe-tile-attention-sm90", "::mlir::ModuleOp"> {
  let summary = "Lower moe.attention and moe.grouped_attention to a "
                "flash-attention kernel on sm_90a tensor cores (GPU)";
  let description = [{
    Rewrites each `moe.attention` (full or sliding-window causal GQA, with or
    without `offset`) and `moe.grouped_attention` (GMHA) whose head dimension
    is a multiple of 16, at most 128, and whose heads per kv-head divide 64,
    into the launch of a kernel in a `gpu.module` of its own per static shape
    (heads, kv-heads, Dh, group, window, result type), on a grid of (query
    tiles, kv-heads, batch) CTAs of 4 warps (`warps=8`: 8). A CTA's 64 query
    rows (128) are `64 / (H / KVH)` positions times the heads of one kv-head,
    so each key and value tile it loads serves all the heads that read it;
    the latest query tiles (the most keys) are launched first.

    * Keys and values come in blocks of 64 through two shared-memory buffers
      (`nvgpu.device_async_copy`, 16-byte chunks XOR-swizzled by row,
      zero-filled past the last key), the next block's copies in flight
      while this one is multiplied. Only the blocks some row can see are
      visited: from the first row's window start (block 0 without a window)
      to the last row's position (GMHA: from the first row's group start);
      the masks (causal, window, group) are applied to the blocks that
      straddle a bound only.
    * GMHA's summaries (the complete groups' means of the keys and values,
      computed once in f32 by a generic and rounded to bf16) are a second
      key range walked the same way, before the local keys, under the same
      softmax: summary s is seen by the rows of groups after s.
    * Per block and warp (16 rows): `S = Q K^T` by `nvvm.mma.sync`
      m16n8k16 bf16 with f32 accumulators (queries in registers for the
      whole kernel, keys by `nvgpu.ldmatrix`); the online softmax in f32 and
      log2 units (row max across the 4 lanes of a row by `gpu.shuffle xor`,
      `P = exp2(S - max)`, a row whose keys are all masked so far subtracts
      0, not -inf); `O = O * rescale + P V`, P rounded to bf16 in place of
      the scores, values by `ldmatrix` transposed.
    * The output rows divided by their sums and stored for valid rows.
    * A static number of queries that fits one CTA (a decode step: one query
      per sequence against the cache) gets the `_split` shape instead: the
      grid's x splits the visible key blocks, `min(blocks, ceil(2 *
      sm-count / (B * KVH)))` ways (one split for a large batch), each CTA
      writing its rows' unnormalised output, max and sum (f32), and three
      generics merge the splits (`2^(m_s - M)` weights).

    f32 operands are rounded to bf16 first (one copy per value; an
    elementwise generic read only by the attention ops taken here, RoPE,
    yields bf16 itself). The numerics are flash attention's: q, k, v and
    the softmax weights rounded to bf16, the rest f32. Other attention ops
    keep the generic lowering of `convert-moe-to-linalg`.

    Before:
    ```mlir
    %o = moe.attention %q, %k, %v window(512)
        : (tensor<?x?x32x128xbf16>, tensor<?x?x8x128xbf16>,
           tensor<?x?x8x128xbf16>) -> tensor<?x?x32x128xf32>
    ```
    After (abridged):
    ```mlir
    %qb = bufferization.to_buffer %q read_only : ...
    %out = memref.alloc(%b, %t) : memref<?x?x32x128xf32>
    gpu.launch_func @attention_sm90_h32_kv8_d128_w512_f32::@...
        blocks in (%tiles, %c8, %b) threads in (%c128, %c1, %c1)
        dynamic_shared_memory_size %c65536 args(%qb, %kb, %vb, %out, %c0)
    %o = bufferization.to_tensor %out restrict writable : ...

    gpu.module @attention_sm90_h32_kv8_d128_w512_f32 {
      gpu.func @... kernel {
        // query fragments: vector.load x 32
        // for each visible key block:
        //   nvgpu.device_async_copy (next block), wait, gpu.barrier
        //   nvgpu.ldmatrix + nvvm.mma.sync x 64 (S); mask; exp2; shuffles
        //   nvgpu.ldmatrix {transpose} + nvvm.mma.sync x 64 (O += P V)
        // O / l, memref.store
      }
    }
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::nvgpu::NVGPUDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::vector::VectorDialect",
  ];
  let options = [
    Option<"smCount", "sm-count", "int64_t", /*default=*/"132",
           "SMs of the target GPU: a decode step's keys are split so that "
           "about two CTAs per SM run">,
    Option<"warps", "warps", "int64_t", /*default=*/"4",
           "Warps per CTA outside decode steps, 4 or 8: 16 query rows each, "
           "so 8 halves the key and value loads per row (one CTA per SM at "
           "the registers a Dh = 128 kernel takes)">,
  ];
}

def MapAllocsToGpu : Pass<"moe-map-allocs-to-gpu", "::mlir::ModuleOp"> {
  let summary = "Place host-side buffer allocations in GPU memory";
  let description = [{
    After bufferization and kernel outlining, the buffers that host code
    allocates are read and written by GPU kernels. This pass turns each
    `memref.alloc` / `memref.dealloc` outside `gpu.module`s into
    `gpu.alloc` / `gpu.dealloc`, and each `memref.copy` there (the copies
    bufferization makes between such buffers) into a `gpu.memcpy`. With
    `host-shared` (the default) the memory is managed memory that the host
    may read as well, which keeps result inspection working; without it,
    the memory is device-only.

    Before:
    ```mlir
    %buf = memref.alloc(%n) : memref<?x8xf32>
    gpu.launch_func @kernels::@k args(%buf : memref<?x8xf32>) ...
    memref.dealloc %buf : memref<?x8xf32>
    ```
    After (deallocation, and device-only allocation, are in the async form
    that gpu-to-llvm lowers, each waited for at once):
    ```mlir
    %buf = gpu.alloc host_shared (%n) : memref<?x8xf32>
    gpu.launch_func @kernels::@k args(%buf : memref<?x8xf32>) ...
    %t0 = gpu.wait async
    %t1 = gpu.dealloc async [%t0] %buf : memref<?x8xf32>
    gpu.wait [%t1]
    ```
  }];
  let options = [
    Option<"hostShared", "host-shared", "bool", /*default=*/"true",
           "Allocate managed memory that the host can access as well">,
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

def InlineLayers : Pass<"moe-inline-layers", "::mlir::ModuleOp"> {
  let summary = "Inline the layer functions into the forward pass (GPU)";
  let description = [{
    The importer makes each distinct decoder layer a private function
    (marked `moe.layers`), called with `no_inline` so that the CPU compiles
    it once. After `gpu-kernel-outlining` a layer function's kernels are
    symbols of their own, and the function is host code that allocates and
    launches; this pass inlines every call of such a function (the calls
    then launch the same kernels) and erases the functions, so that the
    forward pass is one straight-line host function, which
    `gpu-async-region` puts on one stream. An `scf.if` (without results)
    whose condition the inlining made constant, such as the flag under
    which a prefill fills the KV cache (false from `@forward`), is then
    replaced by the region it takes: left in place, it would split the
    entry's stream.

    Before:
    ```mlir
    func.func private @layer_moe(...) attributes {moe.layers = array<i64: 0, 1>} {
      gpu.launch_func @layer_moe_kernel::@layer_moe_kernel ...
    }
    func.func @forward(...) {
      call @layer_moe(...) {no_inline} : (...) -> ()
      call @layer_moe(...) {no_inline} : (...) -> ()
    }
    ```
    After:
    ```mlir
    func.func @forward(...) {
      gpu.launch_func @layer_moe_kernel::@layer_moe_kernel ...
      gpu.launch_func @layer_moe_kernel::@layer_moe_kernel ...
    }
    ```
  }];
}

#endif // MOEC_CODEGEN_PASSES_TD
