//===- MoeDialect.td - The moe dialect ---------------------*- tablegen -*-===//
//
// The dialect definition shared by the attribute and op definitions.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_DIALECT_MOEDIALECT_TD
#define MOEC_DIALECT_MOEDIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def Moe_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::mlir::moe";
  let summary = "Mixture-of-Experts routing, dispatch and expert computation";
  let description = [{
    The `moe` dialect describes Mixture-of-Experts transformer layers at the
    graph level, on tensors whose token dimension is dynamic:

    * `moe.router` turns gate logits into per-token expert choices under a
      routing policy attribute (`#moe.top_k`, `#moe.top_p`, `#moe.threshold`,
      ...). The number of experts a token uses may differ from token to
      token (dynamic K).
    * `moe.dispatch` sorts (token, expert) pairs by expert, producing the
      rows each expert processes and the per-expert offsets.
    * `moe.grouped_matmul` multiplies the rows of group `g` by the weight of
      group `g` (a ragged grouped GEMM), with an optional fused epilogue.
    * `moe.combine` returns expert outputs to their tokens as a weighted sum.
    * `moe.split_tokens` / `moe.merge_tokens` implement Multi-Head MoE.
    * `moe.attention` / `moe.grouped_attention` are causal attention kernels.
    * `moe.moe_block` is the composite layer, decomposed by a pass.
  }];
  let useDefaultAttributePrinterParser = 1;
  // `moe.layers` on a decoder layer's function (the importer emits one per
  // kind of layer): the layers it computes. Code generation keeps such
  // functions out of line (LLVM's noinline), so each is compiled once.
  // On a compiled model's entry function: `moe.weights`, the weight table's
  // entries in order, each `{name = "<tensor>", type = tensor<...>}`, and
  // `moe.stats_layers` / `stats_experts` / `stats_heads`, the layer, expert
  // count and MH-MoE heads of each MoE layer's segment of the packed
  // statistics. The manifest the runtime binds weights and reads
  // statistics by is written from them.
  // `moe.kernel` on a kernel op (`moe.grouped_matmul`, the attention ops):
  // the kernel shape moe-select-cpu-kernels chose for the target
  // (`#moe.cpu_matmul_kernel`, `#moe.attention_kernel`), which the
  // lowerings follow.
  // `moe.decode_step` on a function: it runs one token per sequence (a
  // decode step against a KV cache), so each GEMM in it has a few rows per
  // group; moe-select-cpu-kernels shapes its kernels for that.
  // `moe.routing_logits` on a grouped matmul: its result is a router's
  // logits, whose ranking decides discrete expert choices, so backends
  // compute it at the block's f32 precision (the GPU's tensor-core GEMM,
  // which rounds its operands to bf16, leaves it alone).
  let discardableAttrs = (ins "::mlir::Attribute":$kernel,
                              "::mlir::UnitAttr":$decode_step,
                              "::mlir::UnitAttr":$routing_logits,
                              "::mlir::DenseI64ArrayAttr":$layers,
                              "::mlir::ArrayAttr":$weights,
                              "::mlir::DenseI64ArrayAttr":$stats_layers,
                              "::mlir::DenseI64ArrayAttr":$stats_experts,
                              "::mlir::DenseI64ArrayAttr":$stats_heads);
  // moe.weight reads `!llvm.ptr` tables.
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
  let extraClassDeclaration = [{
    /// Defined beside the attribute storage classes, which it needs.
    void registerAttributes();
  }];
}

class Moe_Op<string mnemonic, list<Trait> traits = []>
    : Op<Moe_Dialect, mnemonic, traits>;

class Moe_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Moe_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

#endif // MOEC_DIALECT_MOEDIALECT_TD
