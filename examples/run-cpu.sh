#!/usr/bin/env bash
# Compiles examples/expert-layer.mlir with the CPU pipeline, runs it on every
# core (OpenMP) with mlir-runner, and checks it against a NumPy reference.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOEC_BUILD_DIR:-$root/build}"
lib=/usr/lib/llvm-22/lib

"$build/bin/moec-opt" "$root/examples/expert-layer.mlir" -moe-to-cpu-pipeline \
  | /usr/lib/llvm-22/bin/mlir-runner -e main -entry-point-result=void \
      -shared-libs="$lib/libmlir_runner_utils.so,$lib/libmlir_c_runner_utils.so,$lib/libomp.so" \
  | /usr/bin/python3 "$root/examples/expert_layer_reference.py"
