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
    * `moe.dispatch`: generics for the rows per expert and their exclusive
      prefix sum (the offsets), a sequential scan over tokens that places
      each used slot at its expert's next row (stable: token order within an
      expert), and a generic that gathers the token rows;
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
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
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

def MapAllocsToGpu : Pass<"moe-map-allocs-to-gpu", "::mlir::ModuleOp"> {
  let summary = "Place host-side buffer allocations in GPU memory";
  let description = [{
    After bufferization and kernel outlining, the buffers that host code
    allocates are read and written by GPU kernels. This pass turns each
    `memref.alloc` / `memref.dealloc` outside `gpu.module`s into
    `gpu.alloc` / `gpu.dealloc`. With `host-shared` (the default) the memory
    is managed memory that the host may read as well, which keeps host-side
    copies and result inspection working; without it, the memory is
    device-only.

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

#endif // MOEC_CODEGEN_PASSES_TD
