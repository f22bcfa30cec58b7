#!/usr/bin/env bash
# Installs moec's build and test dependencies from Debian's packages.
# The CUDA toolkit (/usr/local/cuda) is optional and not installed here: with
# it, the tests that assemble sm_90a cubins with ptxas run as well.
# libclang-rt-22-dev holds libFuzzer and the sanitizer runtimes (the fuzz
# tests; without it they are not built). python3-torch and python3-venv are
# for the check of the model reference against Hugging Face transformers
# (.ci/run installs transformers from PyPI into a venv where it can), and
# libopenblas0-pthread gives torch an optimised BLAS for the benchmarks.
set -euo pipefail

sudo=""
if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
export DEBIAN_FRONTEND=noninteractive

$sudo apt-get update
$sudo apt-get install -y --no-install-recommends \
  cmake ninja-build ccache git python3 python3-numpy \
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools \
  clang-22 lld-22 libomp-22-dev libclang-rt-22-dev \
  libfmt-dev nlohmann-json3-dev \
  python3-torch python3-venv libopenblas0-pthread
