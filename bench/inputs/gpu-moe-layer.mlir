// The MoE layer bench/gpu_moe_layer.py times on a GPU: Mixtral-8x7B's
// sparse block (D = 4096, F = 14336, E = 8, bf16), top-2 and top-p at 0.5,
// as C-interface functions on device buffers. scripts/gpu-prepare.sh lowers
// it with moe-to-cuda-pipeline (the tensor-core grouped GEMMs of
// moe-tile-grouped-matmul-sm90) and links it as a shared library.

func.func @moe_top2(%x: tensor<?x4096xbf16>, %gate: tensor<8x4096xbf16>,
                    %w1: tensor<8x14336x4096xbf16>, %w3: tensor<8x14336x4096xbf16>,
                    %w2: tensor<8x4096x14336xbf16>) -> tensor<?x4096xbf16>
    attributes {llvm.emit_c_interface} {
  %y = moe.moe_block %x gate(%gate : tensor<8x4096xbf16>)
      experts(%w1, %w3, %w2 : tensor<8x14336x4096xbf16>, tensor<8x14336x4096xbf16>,
              tensor<8x4096x14336xbf16>)
      policy(#moe.top_k<k = 2>) : tensor<?x4096xbf16> -> tensor<?x4096xbf16>
  return %y : tensor<?x4096xbf16>
}

func.func @moe_top_p(%x: tensor<?x4096xbf16>, %gate: tensor<8x4096xbf16>,
                     %w1: tensor<8x14336x4096xbf16>, %w3: tensor<8x14336x4096xbf16>,
                     %w2: tensor<8x4096x14336xbf16>) -> tensor<?x4096xbf16>
    attributes {llvm.emit_c_interface} {
  %y = moe.moe_block %x gate(%gate : tensor<8x4096xbf16>)
      experts(%w1, %w3, %w2 : tensor<8x14336x4096xbf16>, tensor<8x14336x4096xbf16>,
              tensor<8x4096x14336xbf16>)
      policy(#moe.top_p<threshold = 0.5, max_experts = 8>)
      : tensor<?x4096xbf16> -> tensor<?x4096xbf16>
  return %y : tensor<?x4096xbf16>
}
