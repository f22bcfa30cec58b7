#!/usr/bin/env bash
# Builds, on this machine (LLVM/MLIR, no GPU), everything scripts/gpu-check.sh
# runs on the GPU machine (CUDA, no LLVM): for every example config and every
# config of test/examples/compiled-model.test, a --target cuda executable
# with bf16 weights and one with f32, and a CPU executable for a generic
# x86-64-v3 CPU (the GPU machine's CPU may differ from this one); and the
# shared libraries they load (libmoec_cuda_runtime.so, libomp). Everything
# goes to build/gpu-check/, which the device tool carries:
#
#   scripts/gpu-prepare.sh
#   run(command="scripts/gpu-check.sh", carry=["build/gpu-check"])
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
cp /usr/lib/llvm-22/lib/libomp.so.5 "$out/lib/"
du -sh "$out" >&2
