// The grouped GEMMs test/gpu/grouped_gemm_sm90.py checks on a GPU: each a
// C-interface function on device buffers, lowered by moe-to-cuda-pipeline
// to the sm_90a tensor-core kernel (moe-tile-grouped-matmul-sm90) and
// linked into a shared library by scripts/gpu-prepare.sh. The static shapes
// are the cases: a plain product; N and K not multiples of the tile; SwiGLU
// with a row scale and a bf16 result; f32 rows (truncated to bf16 first);
// a larger one, where each CTA walks many work items; and two with
// consumers fused into the epilogue: a bias then a residual add, and the
// routed experts' combine (gathered by the epilogue) plus a shared expert.

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

#id = affine_map<(d0, d1) -> (d0, d1)>
#col = affine_map<(d0, d1) -> (d1)>
func.func @bias_residual(%x: tensor<?x256xbf16>, %w: tensor<1x192x256xbf16>,
                         %b: tensor<192xbf16>, %res: tensor<?x192xf32>,
                         %off: tensor<2xi32>) -> tensor<?x192xf32>
    attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %y = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x256xbf16>, tensor<1x192x256xbf16>, tensor<2xi32>) -> tensor<?x192xf32>
  %rows = tensor.dim %y, %c0 : tensor<?x192xf32>
  %e = tensor.empty(%rows) : tensor<?x192xf32>
  %biased = linalg.generic {indexing_maps = [#id, #col, #id],
                            iterator_types = ["parallel", "parallel"]}
      ins(%y, %b : tensor<?x192xf32>, tensor<192xbf16>) outs(%e : tensor<?x192xf32>) {
  ^bb0(%v: f32, %bias: bf16, %o: f32):
    %bf = arith.extf %bias : bf16 to f32
    %s = arith.addf %v, %bf : f32
    linalg.yield %s : f32
  } -> tensor<?x192xf32>
  %out = linalg.generic {indexing_maps = [#id, #id],
                         iterator_types = ["parallel", "parallel"]}
      ins(%biased : tensor<?x192xf32>) outs(%res : tensor<?x192xf32>) {
  ^bb0(%v: f32, %r: f32):
    %s = arith.addf %r, %v : f32
    linalg.yield %s : f32
  } -> tensor<?x192xf32>
  return %out : tensor<?x192xf32>
}

func.func @combine_shared(%x: tensor<?x128xbf16>, %w: tensor<1x128x128xbf16>,
                          %rows: tensor<?x128xf32>, %slots: tensor<?x3xi32>,
                          %counts: tensor<?xi32>, %off: tensor<2xi32>)
    -> tensor<?x128xf32> attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %routed = moe.combine %rows, %slots, %counts
      : (tensor<?x128xf32>, tensor<?x3xi32>, tensor<?xi32>) -> tensor<?x128xf32>
  %shared = moe.grouped_matmul %x, %w offsets(%off)
      : (tensor<?x128xbf16>, tensor<1x128x128xbf16>, tensor<2xi32>) -> tensor<?x128xf32>
  %t = tensor.dim %routed, %c0 : tensor<?x128xf32>
  %e = tensor.empty(%t) : tensor<?x128xf32>
  %y = linalg.generic {indexing_maps = [#id, #id, #id],
                       iterator_types = ["parallel", "parallel"]}
      ins(%routed, %shared : tensor<?x128xf32>, tensor<?x128xf32>)
      outs(%e : tensor<?x128xf32>) {
  ^bb0(%r: f32, %s: f32, %o: f32):
    %sum = arith.addf %r, %s : f32
    linalg.yield %sum : f32
  } -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}
