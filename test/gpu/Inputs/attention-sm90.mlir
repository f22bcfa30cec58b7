// The attention cases test/gpu/attention_sm90.py checks on a GPU and
// bench/gpu_attention.py times: each a C-interface function on device
// buffers, lowered by moe-to-cuda-pipeline to the sm_90a tensor-core
// flash-attention kernel (moe-tile-attention-sm90) and linked into a shared
// library by scripts/gpu-prepare.sh. The static shapes are the cases: 8
// query heads per kv-head at Dh = 128; one head per kv-head at Dh = 64; a
// sliding window that is not a multiple of the key block; f32 operands
// (rounded to bf16 by the pass) with a bf16 result; queries at an offset
// into the keys (a decode step against a cache), and with a static number
// of queries (1, and 5 with a window of 64: the split-keys decode shape);
// GMHA with a group of 64
// and a window of 32, and with f32 operands, a group of 100 (not a multiple
// of the key block) and a window of 300 (wider than the group); and the
// benchmark's 32/8 heads, Dh = 128, causal, with a window of 512, and GMHA
// (G = 1024, W = 512, and the config defaults G = 128, W = 64).

func.func @causal_g8_d128(%q: tensor<?x?x8x128xbf16>, %k: tensor<?x?x1x128xbf16>,
                          %v: tensor<?x?x1x128xbf16>) -> tensor<?x?x8x128xf32>
    attributes {llvm.emit_c_interface} {
  %o = moe.attention %q, %k, %v
      : (tensor<?x?x8x128xbf16>, tensor<?x?x1x128xbf16>, tensor<?x?x1x128xbf16>)
      -> tensor<?x?x8x128xf32>
  return %o : tensor<?x?x8x128xf32>
}

func.func @causal_g1_d64(%q: tensor<?x?x4x64xbf16>, %k: tensor<?x?x4x64xbf16>,
                         %v: tensor<?x?x4x64xbf16>) -> tensor<?x?x4x64xf32>
    attributes {llvm.emit_c_interface} {
  %o = moe.attention %q, %k, %v
      : (tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>, tensor<?x?x4x64xbf16>)
      -> tensor<?x?x4x64xf32>
  return %o : tensor<?x?x4x64xf32>
}

func.func @window100_g4_d128(%q: tensor<?x?x8x128xbf16>, %k: tensor<?x?x2x128xbf16>,
                             %v: tensor<?x?x2x128xbf16>) -> tensor<?x?x8x128xf32>
    attributes {llvm.emit_c_interface} {
  %o = moe.attention %q, %k, %v window(100)
      : (tensor<?x?x8x128xbf16>, tensor<?x?x2x128xbf16>, tensor<?x?x2x128xbf16>)
      -> tensor<?x?x8x128xf32>
  return %o : tensor<?x?x8x128xf32>
}

func.func @f32_window512_g2_d64(%q: tensor<?x?x4x64xf32>, %k: tensor<?x?x2x64xf32>,
                                %v: tensor<?x?x2x64xf32>) -> tensor<?x?x4x64xbf16>
    attributes {llvm.emit_c_interface} {
  %o = moe.attention %q, %k, %v window(512)
      : (tensor<?x?x4x64xf32>, tensor<?x?x2x64xf32>, tensor<?x?x2x64xf32>)
      -> tensor<?x?x4x64xbf16>
  return %o : tensor<?x?x4x64xbf16>
}

func.func @offset_g4_d128(%q: tensor<?x?x8x128xbf16>, %k: tensor<?x?x2x128xbf16>,
                          %v: tensor<?x?x2x128xbf16>, %p: index)
    -> tensor<?x?x8x128xf32> attributes {llvm.emit_c_interface} {
  %o = moe.attention %q, %k, %v offset(%p)
      : (tensor<?x?x8x128xbf16>, tensor<?x?x2x128xbf16>, tensor<?x?x2x128xbf16>,
         index) -> tensor<?x?x8x128xf32>
  return %o : tensor<?x?x8x128xf32>
}

func.func @bench_causal(%q: tensor<?x?x32x128xbf16>, %k: tensor<?x?x8x128xbf16>,
                        %v: tensor<?x?x8x128xbf16>) -> tensor<?x?x32x128xbf16>
    attributes {llvm.emit_c_interface} {
  %o = moe.attention %q, %k, %v
      : (tensor<?x?x32x128xbf16>, tensor<?x?x8x128xbf16>, tensor<?x?x8x128xbf16>)
      -> tensor<?x?x32x128xbf16>
  return %o : tensor<?x?x32x128xbf16>
}

func.func @bench_window512(%q: tensor<?x?x32x128xbf16>, %k: tensor<?x?x8x128xbf16>,
                           %v: tensor<?x?x8x128xbf16>) -> tensor<?x?x32x128xbf16>
    attributes {llvm.emit_c_interface} {
  %o = moe.attention %q, %k, %v window(512)
      : (tensor<?x?x32x128xbf16>, tensor<?x?x8x128xbf16>, tensor<?x?x8x128xbf16>)
      -> tensor<?x?x32x128xbf16>
  return %o : tensor<?x?x32x128xbf16>
}

func.func @gmha_g64_w32_d128(%q: tensor<?x?x8x128xbf16>, %k: tensor<?x?x2x128xbf16>,
                             %v: tensor<?x?x2x128xbf16>) -> tensor<?x?x8x128xf32>
    attributes {llvm.emit_c_interface} {
  %o = moe.grouped_attention %q, %k, %v group_size(64) window(32)
      : (tensor<?x?x8x128xbf16>, tensor<?x?x2x128xbf16>, tensor<?x?x2x128xbf16>)
      -> tensor<?x?x8x128xf32>
  return %o : tensor<?x?x8x128xf32>
}

func.func @f32_gmha_g100_w300_d64(%q: tensor<?x?x4x64xf32>, %k: tensor<?x?x4x64xf32>,
                                  %v: tensor<?x?x4x64xf32>) -> tensor<?x?x4x64xf32>
    attributes {llvm.emit_c_interface} {
  %o = moe.grouped_attention %q, %k, %v group_size(100) window(300)
      : (tensor<?x?x4x64xf32>, tensor<?x?x4x64xf32>, tensor<?x?x4x64xf32>)
      -> tensor<?x?x4x64xf32>
  return %o : tensor<?x?x4x64xf32>
}

func.func @bench_gmha(%q: tensor<?x?x32x128xbf16>, %k: tensor<?x?x8x128xbf16>,
                      %v: tensor<?x?x8x128xbf16>) -> tensor<?x?x32x128xbf16>
    attributes {llvm.emit_c_interface} {
  %o = moe.grouped_attention %q, %k, %v group_size(1024) window(512)
      : (tensor<?x?x32x128xbf16>, tensor<?x?x8x128xbf16>, tensor<?x?x8x128xbf16>)
      -> tensor<?x?x32x128xbf16>
  return %o : tensor<?x?x32x128xbf16>
}

func.func @bench_gmha_g128_w64(%q: tensor<?x?x32x128xbf16>, %k: tensor<?x?x8x128xbf16>,
                               %v: tensor<?x?x8x128xbf16>) -> tensor<?x?x32x128xbf16>
    attributes {llvm.emit_c_interface} {
  %o = moe.grouped_attention %q, %k, %v group_size(128) window(64)
      : (tensor<?x?x32x128xbf16>, tensor<?x?x8x128xbf16>, tensor<?x?x8x128xbf16>)
      -> tensor<?x?x32x128xbf16>
  return %o : tensor<?x?x32x128xbf16>
}

func.func @decode_g4_d128(%q: tensor<?x1x8x128xbf16>, %k: tensor<?x?x2x128xbf16>,
                          %v: tensor<?x?x2x128xbf16>, %p: index)
    -> tensor<?x1x8x128xf32> attributes {llvm.emit_c_interface} {
  %o = moe.attention %q, %k, %v offset(%p)
      : (tensor<?x1x8x128xbf16>, tensor<?x?x2x128xbf16>, tensor<?x?x2x128xbf16>,
         index) -> tensor<?x1x8x128xf32>
  return %o : tensor<?x1x8x128xf32>
}

func.func @decode5_window64_g8_d64(%q: tensor<?x5x8x64xbf16>, %k: tensor<?x?x1x64xbf16>,
                                   %v: tensor<?x?x1x64xbf16>, %p: index)
    -> tensor<?x5x8x64xbf16> attributes {llvm.emit_c_interface} {
  %o = moe.attention %q, %k, %v offset(%p) window(64)
      : (tensor<?x5x8x64xbf16>, tensor<?x?x1x64xbf16>, tensor<?x?x1x64xbf16>,
         index) -> tensor<?x5x8x64xbf16>
  return %o : tensor<?x5x8x64xbf16>
}
