#!/usr/bin/env bash
# Builds, on this machine (LLVM/MLIR, no GPU), everything scripts/gpu-check.sh
# runs on the GPU machine (CUDA, no LLVM): for every example config and every
# config of test/examples/compiled-model.test, a --target cuda executable
# with bf16 weights and one with f32, and a CPU executable for a generic
# x86-64-v3 CPU (the GPU machine's CPU may differ from this one); and the
# shared libraries they load (libmoec_cuda_runtime.so, libomp); and
# libraries of C-interface functions on device buffers: the tensor-core
# grouped GEMM cases test/gpu/grouped_gemm_sm90.py checks, and the Mixtral
# MoE layer bench/gpu_moe_layer.py times; each also with 256-column tiles
# (tile-cols=256), and the layer with its combine scattered by the down
# projection's epilogue (combine-scatter=true); and the flash-attention
# cases (libattention_sm90.so, and with 8 warps per CTA) test/gpu/attention_sm90.py checks and
# bench/gpu_attention.py times. Everything goes to
# build/gpu-check/, packed into build/gpu-check.tar.xz (about 4 MB; the
# directory is near the device tool's 64 MiB carry limit), which the device
# tool carries and gpu-check.sh unpacks:
#
#   scripts/gpu-prepare.sh
#   run(command="scripts/gpu-check.sh", carry=["build/gpu-check.tar.xz"])
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/gpu-check
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/configs"
cp examples/mixtral-tiny.json examples/qwen2-moe-tiny.json \
   examples/all-features.json "$out/configs/"
split=$(mktemp -d)
/usr/lib/llvm-22/bin/split-file test/examples/compiled-model.test "$split"
cp "$split"/*.json "$out/configs/"
rm -rf "$split"
for config in "$out"/configs/*.json; do
  name=$(basename "$config" .json)
  echo "gpu-prepare: $name" >&2
  build/bin/moec compile "$config" -o "$out/bin/$name-cuda-bf16" --target cuda
  build/bin/moec compile "$config" -o "$out/bin/$name-cuda-f32" --target cuda --dtype f32
  build/bin/moec compile "$config" -o "$out/bin/$name-cpu-f32" --cpu x86-64-v3
done
cp build/lib/libmoec_cuda_runtime.so "$out/lib/"

# MLIR functions lowered for the GPU, as shared libraries.
library() { # input.mlir libNAME.so [moe-to-cuda-pipeline options]
  echo "gpu-prepare: $2" >&2
  local tmp
  tmp=$(mktemp -d)
  build/bin/moec-opt "$1" -moe-to-cuda-pipeline="${3:-}" -o "$tmp/lowered.mlir"
  /usr/lib/llvm-22/bin/mlir-translate --mlir-to-llvmir "$tmp/lowered.mlir" -o "$tmp/lowered.ll"
  /usr/lib/llvm-22/bin/llc -O2 -filetype=obj -relocation-model=pic "$tmp/lowered.ll" -o "$tmp/lowered.o"
  /usr/bin/clang++-22 -shared "$tmp/lowered.o" -o "$out/lib/$2" \
    -L"$out/lib" -lmoec_cuda_runtime -Wl,-rpath,'$ORIGIN'
  rm -rf "$tmp"
}
library test/gpu/Inputs/grouped-gemm-sm90.mlir libgrouped_gemm_sm90.so
library bench/inputs/gpu-moe-layer.mlir libmoe_layer_sm90.so
library test/gpu/Inputs/grouped-gemm-sm90.mlir libgrouped_gemm_sm90_w256.so tile-cols=256
library bench/inputs/gpu-moe-layer.mlir libmoe_layer_sm90_scatter.so combine-scatter=true
library bench/inputs/gpu-moe-layer.mlir libmoe_layer_sm90_w256.so tile-cols=256
library test/gpu/Inputs/attention-sm90.mlir libattention_sm90.so attention-tensor-cores=true
library test/gpu/Inputs/attention-sm90.mlir libattention_sm90_8warps.so "attention-tensor-cores=true attention-warps=8"
cp /usr/lib/llvm-22/lib/libomp.so.5 "$out/lib/"
du -sh "$out" >&2
tar -C build -cJf build/gpu-check.tar.xz gpu-check
ls -l build/gpu-check.tar.xz >&2
