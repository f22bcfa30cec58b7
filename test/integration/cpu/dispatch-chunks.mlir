// moe.dispatch's parallel placement (chunks of 32 tokens) on more tokens
// than a chunk, through whole moe.moe_block blocks and moe-to-cpu-pipeline,
// executed, against the NumPy reference in test/utils/moe_block_reference.py
// (it loops over tokens and their experts, with no dispatch): top-k over 100
// tokens, top-p over 150 (tokens using different numbers of experts), top-1
// over 24 experts (some get no token). Each runs with the rows sized by the
// row count and by the static bound of T·K slots (static-row-bound, the CUDA
// pipeline's choice). PASS means a max relative error of at most 1e-4.
// REQUIRES: openmp, numpy
// RUN: %python %test_utils/moe_block_reference.py emit chunks-top-k > %t.chunks-top-k.mlir
// RUN: moec-opt %t.chunks-top-k.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.chunks-top-k.EXACT.out
// RUN: %python %test_utils/moe_block_reference.py check chunks-top-k %t.chunks-top-k.EXACT.out \
// RUN: | FileCheck %s --check-prefix=CHUNKS_TOP_K
// RUN: moec-opt %t.chunks-top-k.mlir -moe-to-cpu-pipeline="static-row-bound" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.chunks-top-k.STATIC.out
// RUN: %python %test_utils/moe_block_reference.py check chunks-top-k %t.chunks-top-k.STATIC.out \
// RUN: | FileCheck %s --check-prefix=CHUNKS_TOP_K
// RUN: %python %test_utils/moe_block_reference.py emit chunks-top-p > %t.chunks-top-p.mlir
// RUN: moec-opt %t.chunks-top-p.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.chunks-top-p.EXACT.out
// RUN: %python %test_utils/moe_block_reference.py check chunks-top-p %t.chunks-top-p.EXACT.out \
// RUN: | FileCheck %s --check-prefix=CHUNKS_TOP_P
// RUN: moec-opt %t.chunks-top-p.mlir -moe-to-cpu-pipeline="static-row-bound" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.chunks-top-p.STATIC.out
// RUN: %python %test_utils/moe_block_reference.py check chunks-top-p %t.chunks-top-p.STATIC.out \
// RUN: | FileCheck %s --check-prefix=CHUNKS_TOP_P
// RUN: %python %test_utils/moe_block_reference.py emit chunks-sparse > %t.chunks-sparse.mlir
// RUN: moec-opt %t.chunks-sparse.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.chunks-sparse.EXACT.out
// RUN: %python %test_utils/moe_block_reference.py check chunks-sparse %t.chunks-sparse.EXACT.out \
// RUN: | FileCheck %s --check-prefix=CHUNKS_SPARSE
// RUN: moec-opt %t.chunks-sparse.mlir -moe-to-cpu-pipeline="static-row-bound" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.chunks-sparse.STATIC.out
// RUN: %python %test_utils/moe_block_reference.py check chunks-sparse %t.chunks-sparse.STATIC.out \
// RUN: | FileCheck %s --check-prefix=CHUNKS_SPARSE

// CHUNKS_TOP_K: PASS chunks-top-k:
// CHUNKS_TOP_P: PASS chunks-top-p:
// CHUNKS_SPARSE: PASS chunks-sparse:
