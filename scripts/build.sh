#!/usr/bin/env bash
# Configures and builds moec in ./build (or $MOEC_BUILD_DIR) with clang-22,
# lld and ccache, against Debian's LLVM/MLIR 22.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOEC_BUILD_DIR:-$root/build}"
llvm=/usr/lib/llvm-22

start=$(date +%s)
cmake -G Ninja -S "$root" -B "$build" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
  -DLLVM_USE_LINKER=lld \
  -DMLIR_DIR="$llvm/lib/cmake/mlir" \
  -DLLVM_EXTERNAL_LIT="$llvm/bin/lit"
cmake --build "$build" -j "${MOEC_JOBS:-2}"
echo "moec: built in $(( $(date +%s) - start )) s in $build"
