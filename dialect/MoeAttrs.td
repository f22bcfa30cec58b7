//===- MoeAttrs.td - moe attributes and enums -------------*- tablegen -*-===//

#ifndef MOEC_DIALECT_MOEATTRS_TD
#define MOEC_DIALECT_MOEATTRS_TD

include "dialect/MoeDialect.td"
include "dialect/MoeInterfaces.td"
include "mlir/IR/EnumAttr.td"

//===----------------------------------------------------------------------===//
// Parameters with readable syntax (`true`, `0.4`) instead of the generic
// integer and APFloat field parsers.
//===----------------------------------------------------------------------===//

class Moe_BoolParameter<string desc, string default>
    : DefaultValuedParameter<"bool", default, desc> {
  let parser = [{ ::mlir::moe::parseBoolParameter($_parser) }];
  let printer = [{ $_printer << ($_self ? "true" : "false") }];
}

class Moe_FloatParameter<string desc>
    : AttrParameter<"::llvm::APFloat", desc> {
  let parser = [{ ::mlir::moe::parseFloatParameter($_parser) }];
  let printer = [{ ::mlir::moe::printFloatParameter($_printer, $_self) }];
  let comparator = "$_lhs.bitwiseIsEqual($_rhs)";
}

//===----------------------------------------------------------------------===//
// Routing policies
//===----------------------------------------------------------------------===//

def Moe_TopKAttr : Moe_Attr<"TopK", "top_k", [
    DeclareAttrInterfaceMethods<Moe_RoutingPolicyAttrInterface>]> {
  let summary = "Fixed top-k routing";
  let description = [{
    Every token uses the `k` most probable experts (ties go to the lower
    expert index). Their weights are the softmax probabilities, renormalised
    to sum to one when `normalize` is true (the default, as in Mixtral).
    In a layer with fewer than `k` experts, every expert is used.

    ```mlir
    #moe.top_k<k = 2>
    #moe.top_k<k = 4, normalize = false>
    ```
  }];
  let parameters = (ins "int64_t":$k,
                        Moe_BoolParameter<"renormalise the weights", "true">:$normalize);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Moe_TopPAttr : Moe_Attr<"TopP", "top_p", [
    DeclareAttrInterfaceMethods<Moe_RoutingPolicyAttrInterface,
                                ["simplifyForExperts"]>]> {
  let summary = "Dynamic top-p routing";
  let description = [{
    Sorts the probabilities in descending order (ties to the lower expert
    index) and keeps the shortest prefix whose sum is strictly greater than
    `threshold`; when no prefix exceeds it, all experts are kept. The count is
    then capped at `max_experts` when given. Weights are the raw
    probabilities unless `normalize` is true. Tokens thus use different
    numbers of experts.

    ```mlir
    #moe.top_p<threshold = 0.4>
    #moe.top_p<threshold = 0.6, max_experts = 4, normalize = true>
    ```
  }];
  let parameters = (ins
      Moe_FloatParameter<"cumulative probability to exceed, >= 0 (>= 1: every expert)">:$threshold,
      OptionalParameter<"std::optional<int64_t>", "cap on experts per token">:$max_experts,
      Moe_BoolParameter<"renormalise the weights", "false">:$normalize);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Moe_ThresholdAttr : Moe_Attr<"Threshold", "threshold", [
    DeclareAttrInterfaceMethods<Moe_RoutingPolicyAttrInterface,
                                ["simplifyForExperts"]>]> {
  let summary = "Dynamic routing by a probability threshold";
  let description = [{
    Keeps every expert whose probability is strictly greater than
    `threshold`, and at least the most probable one (ties to the lower
    expert index), so a token whose experts all fall at or below the
    threshold still uses one. The count is then capped at `max_experts` when
    given; the cap keeps the most probable experts. Weights are the raw
    probabilities unless `normalize` is true. Probabilities are compared in
    f32, against the threshold rounded to f32.

    ```mlir
    #moe.threshold<threshold = 0.2>
    #moe.threshold<threshold = 0.1, max_experts = 4, normalize = true>
    ```
  }];
  let parameters = (ins
      Moe_FloatParameter<"probability to exceed, in [0, 1)">:$threshold,
      OptionalParameter<"std::optional<int64_t>", "cap on experts per token">:$max_experts,
      Moe_BoolParameter<"renormalise the weights", "false">:$normalize);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

//===----------------------------------------------------------------------===//
// Layer-wise expert schedules
//===----------------------------------------------------------------------===//

def Moe_ExpertScheduleKind : I32EnumAttr<"ExpertScheduleKind",
    "how the number of experts varies with depth", [
      I32EnumAttrCase<"uniform", 0>,
      I32EnumAttrCase<"descending", 1>,
      I32EnumAttrCase<"ascending", 2>,
      I32EnumAttrCase<"pyramid", 3>,
      I32EnumAttrCase<"hourglass", 4>,
      I32EnumAttrCase<"wave", 5>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def Moe_ExpertScheduleAttr : Moe_Attr<"ExpertSchedule", "expert_schedule"> {
  let summary = "Number of experts of each layer (DynaMoE schedules)";
  let description = [{
    Gives `E_l`, the number of experts of layer `l` among `L`, from the
    schedule kind and its bounds; see `getNumExperts`. `period` belongs to
    the `wave` kind only.

    ```mlir
    #moe.expert_schedule<descending, min_experts = 2, max_experts = 8>
    #moe.expert_schedule<wave, min_experts = 2, max_experts = 8, period = 4>
    ```
  }];
  let parameters = (ins
      EnumParameter<Moe_ExpertScheduleKind>:$kind,
      "int64_t":$min_experts,
      "int64_t":$max_experts,
      OptionalParameter<"std::optional<int64_t>", "wave period in layers">:$period);
  let assemblyFormat = "`<` $kind `,` struct($min_experts, $max_experts, $period) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// E_l for layer `layer` of a model with `numLayers` layers (docs/semantics.md §4).
    int64_t getNumExperts(int64_t layer, int64_t numLayers) const;
  }];
}

//===----------------------------------------------------------------------===//
// Grouped matmul epilogues
//===----------------------------------------------------------------------===//

def Moe_Epilogue : I32EnumAttr<"Epilogue",
    "elementwise work fused after a grouped matmul", [
      I32EnumAttrCase<"none", 0>,
      I32EnumAttrCase<"swiglu", 1>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def Moe_EpilogueAttr : EnumAttr<Moe_Dialect, Moe_Epilogue, "epilogue">;

//===----------------------------------------------------------------------===//
// Kernel shapes chosen for a target (moe-select-cpu-kernels)
//===----------------------------------------------------------------------===//

def Moe_MatmulMicroKernel : I32EnumAttr<"MatmulMicroKernel",
    "how a CPU grouped-GEMM register block multiplies", [
      I32EnumAttrCase<"dot", 0>,
      I32EnumAttrCase<"outer", 1>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def Moe_CpuMatmulKernelAttr : Moe_Attr<"CpuMatmulKernel", "cpu_matmul_kernel"> {
  let summary = "The CPU grouped-GEMM kernel shape chosen for a target";
  let description = [{
    How `moe-tile-grouped-matmul` lowers the `moe.grouped_matmul` that
    carries it (as `moe.kernel`): work tiles of `tile_rows` rows of one group
    by `tile_cols` columns, K summed in chunks of `tile_k`, and register
    blocks of `micro_rows` x `micro_cols` outputs with `vector_width` f32
    lanes per vector register.

    * `dot`: one accumulator per output, its lanes along K (both operands
      are read where they are, K-contiguous), reduced once per block. A
      block holds `micro_rows * micro_cols` outputs; the AVX-512 BF16 dot
      product needs this form.
    * `outer`: each K chunk of the work tile's weight rows is first packed
      into a panel whose rows run along N; a block holds `micro_rows`
      rows of `micro_cols` outputs (`micro_cols / vector_width` vectors
      each), and every K step broadcasts one input element per row and
      multiplies it with the panel's vectors (an outer product). A register
      then holds `vector_width` outputs, which is what 16 registers need.
      `micro_cols` must be a multiple of `vector_width`, and `tile_cols` of
      `micro_cols`.

    `bf16_dot` multiplies bf16 rows by bf16 weights with the AVX-512 BF16
    dot product (`dot` kernels only).

    ```mlir
    #moe.cpu_matmul_kernel<dot, tile_rows = 64, tile_cols = 64, tile_k = 1024,
        micro_rows = 4, micro_cols = 4, vector_width = 16>
    #moe.cpu_matmul_kernel<outer, tile_rows = 192, tile_cols = 64, tile_k = 512,
        micro_rows = 6, micro_cols = 16, vector_width = 8>
    ```
  }];
  let parameters = (ins
      EnumParameter<Moe_MatmulMicroKernel>:$kind,
      "int64_t":$tile_rows,
      "int64_t":$tile_cols,
      "int64_t":$tile_k,
      "int64_t":$micro_rows,
      "int64_t":$micro_cols,
      "int64_t":$vector_width,
      Moe_BoolParameter<"use the AVX-512 BF16 dot product", "false">:$bf16_dot);
  let assemblyFormat = "`<` $kind `,` struct($tile_rows, $tile_cols, $tile_k, "
                       "$micro_rows, $micro_cols, $vector_width, $bf16_dot) `>`";
  let genVerifyDecl = 1;
}

def Moe_AttentionKernelAttr : Moe_Attr<"AttentionKernel", "attention_kernel"> {
  let summary = "The CPU attention kernel shape chosen for a target";
  let description = [{
    How `moe-tile-attention` lowers the `moe.attention` /
    `moe.grouped_attention` that carries it (as `moe.kernel`). A work item
    is a block of `query_block` consecutive positions times
    `heads_per_step` heads of one GQA group: its `query_block *
    heads_per_step` query rows share every key and value row they load,
    and are the lanes of the kernel's vectors (`vector_width` f32 lanes; the
    rows must be a whole number of vectors). Keys go in blocks of
    `key_block`: the block's scores are one small GEMM (keys times query
    rows), its online-softmax update one vector pass, and its values another
    small GEMM (head dimensions times query rows); both GEMMs use register
    blocks of `micro_rows` keys or dimensions by every row vector.
    `heads_per_step` must divide the heads per kv-head, `micro_rows` the
    key block and the head dimension.

    ```mlir
    #moe.attention_kernel<heads_per_step = 2, query_block = 8,
        key_block = 64, micro_rows = 4, vector_width = 8>
    ```
  }];
  let parameters = (ins "int64_t":$heads_per_step, "int64_t":$query_block,
                        "int64_t":$key_block, "int64_t":$micro_rows,
                        "int64_t":$vector_width);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Query rows per work item: positions times heads.
    int64_t getQueryRows() const {
      return getHeadsPerStep() * getQueryBlock();
    }
  }];
}

#endif // MOEC_DIALECT_MOEATTRS_TD
