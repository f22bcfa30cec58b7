// The grouped GEMMs test/gpu/grouped_gemm_sm90.py checks on a GPU: each a
// C-interface function on device buffers, lowered by moe-to-cuda-pipeline
// to the sm_90a tensor-core kernel (moe-tile-grouped-matmul-sm90) and
// linked into a shared library by scripts/gpu-prepare.sh. The static shapes
// are the cases: a plain product; N and K not multiples of the tile; SwiGLU
// with a row scale and a bf16 result; f32 rows (truncated to bf16 first);
// and a larger one, where each CTA walks many work items.

func.func @plain(%x: tensor<?x512xbf16>, %w: tensor<8x256x512xbf16>,
                 %off: tensor<9xi32>) -> tensor<?x256xf32>
    attributes {llvm.emit_c_interface} {
  %y = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x512xbf16>, tensor<8x256x512xbf16>, tensor<9xi32>) -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}

func.func @partial(%x: tensor<?x72xbf16>, %w: tensor<3x200x72xbf16>,
                   %off: tensor<4xi32>) -> tensor<?x200xf32>
    attributes {llvm.emit_c_interface} {
  %y = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x72xbf16>, tensor<3x200x72xbf16>, tensor<4xi32>) -> tensor<?x200xf32>
  return %y : tensor<?x200xf32>
}

func.func @swiglu(%x: tensor<?x128xbf16>, %w: tensor<4x192x128xbf16>,
                  %u: tensor<4x192x128xbf16>, %off: tensor<5xi32>,
                  %s: tensor<?xf32>) -> tensor<?x192xbf16>
    attributes {llvm.emit_c_interface} {
  %y = moe.grouped_matmul %x, %w, %u offsets(%off) scale(%s) epilogue(swiglu)
      : (tensor<?x128xbf16>, tensor<4x192x128xbf16>, tensor<4x192x128xbf16>,
         tensor<5xi32>, tensor<?xf32>) -> tensor<?x192xbf16>
  return %y : tensor<?x192xbf16>
}

func.func @f32_rows(%x: tensor<?x64xf32>, %w: tensor<1x128x64xbf16>,
                    %off: tensor<2xi32>) -> tensor<?x128xf32>
    attributes {llvm.emit_c_interface} {
  %y = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x64xf32>, tensor<1x128x64xbf16>, tensor<2xi32>) -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

func.func @large(%x: tensor<?x1024xbf16>, %w: tensor<8x1024x1024xbf16>,
                 %off: tensor<9xi32>) -> tensor<?x1024xf32>
    attributes {llvm.emit_c_interface} {
  %y = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x1024xbf16>, tensor<8x1024x1024xbf16>, tensor<9xi32>) -> tensor<?x1024xf32>
  return %y : tensor<?x1024xf32>
}
