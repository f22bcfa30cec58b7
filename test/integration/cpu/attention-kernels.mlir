// The CPU attention kernel (moe-tile-attention) with each shape that
// moe-select-cpu-kernels picks, whatever the machine that runs the test:
// AVX2's (cpu=znver3: 3 row vectors of 8 lanes, register blocks of 4) and
// AVX-512's (cpu=znver4: 2 row vectors of 16 lanes, blocks of 8), and the
// generic lowering of convert-moe-to-linalg (one query and head per
// iteration), on sequences longer than a work item and a key block, against
// the NumPy reference in test/utils/attention_reference.py. Cases: full
// causal attention over two sequences, a sliding window across key blocks,
// GMHA with a window, GMHA with 75 group summaries and 8 heads per kv-head,
// bf16 inputs. PASS means a max relative error of at most 1e-4 (2e-2 for
// bf16).
// REQUIRES: openmp, numpy
// RUN: %python %test_utils/attention_reference.py emit long-full > %t.long-full.mlir
// RUN: moec-opt %t.long-full.mlir -moe-to-cpu-pipeline="cpu=znver3" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.long-full.AVX2.out
// RUN: %python %test_utils/attention_reference.py check long-full %t.long-full.AVX2.out \
// RUN: | FileCheck %s --check-prefix=LONG_FULL
// RUN: moec-opt %t.long-full.mlir -moe-to-cpu-pipeline="cpu=znver4" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.long-full.AVX512.out
// RUN: %python %test_utils/attention_reference.py check long-full %t.long-full.AVX512.out \
// RUN: | FileCheck %s --check-prefix=LONG_FULL
// RUN: moec-opt %t.long-full.mlir -convert-moe-to-linalg -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.long-full.GENERIC.out
// RUN: %python %test_utils/attention_reference.py check long-full %t.long-full.GENERIC.out \
// RUN: | FileCheck %s --check-prefix=LONG_FULL
// RUN: %python %test_utils/attention_reference.py emit long-sliding > %t.long-sliding.mlir
// RUN: moec-opt %t.long-sliding.mlir -moe-to-cpu-pipeline="cpu=znver3" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.long-sliding.AVX2.out
// RUN: %python %test_utils/attention_reference.py check long-sliding %t.long-sliding.AVX2.out \
// RUN: | FileCheck %s --check-prefix=LONG_SLIDING
// RUN: moec-opt %t.long-sliding.mlir -moe-to-cpu-pipeline="cpu=znver4" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.long-sliding.AVX512.out
// RUN: %python %test_utils/attention_reference.py check long-sliding %t.long-sliding.AVX512.out \
// RUN: | FileCheck %s --check-prefix=LONG_SLIDING
// RUN: moec-opt %t.long-sliding.mlir -convert-moe-to-linalg -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.long-sliding.GENERIC.out
// RUN: %python %test_utils/attention_reference.py check long-sliding %t.long-sliding.GENERIC.out \
// RUN: | FileCheck %s --check-prefix=LONG_SLIDING
// RUN: %python %test_utils/attention_reference.py emit long-gmha > %t.long-gmha.mlir
// RUN: moec-opt %t.long-gmha.mlir -moe-to-cpu-pipeline="cpu=znver3" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.long-gmha.AVX2.out
// RUN: %python %test_utils/attention_reference.py check long-gmha %t.long-gmha.AVX2.out \
// RUN: | FileCheck %s --check-prefix=LONG_GMHA
// RUN: moec-opt %t.long-gmha.mlir -moe-to-cpu-pipeline="cpu=znver4" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.long-gmha.AVX512.out
// RUN: %python %test_utils/attention_reference.py check long-gmha %t.long-gmha.AVX512.out \
// RUN: | FileCheck %s --check-prefix=LONG_GMHA
// RUN: moec-opt %t.long-gmha.mlir -convert-moe-to-linalg -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.long-gmha.GENERIC.out
// RUN: %python %test_utils/attention_reference.py check long-gmha %t.long-gmha.GENERIC.out \
// RUN: | FileCheck %s --check-prefix=LONG_GMHA
// RUN: %python %test_utils/attention_reference.py emit long-gmha-groups > %t.long-gmha-groups.mlir
// RUN: moec-opt %t.long-gmha-groups.mlir -moe-to-cpu-pipeline="cpu=znver3" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.long-gmha-groups.AVX2.out
// RUN: %python %test_utils/attention_reference.py check long-gmha-groups %t.long-gmha-groups.AVX2.out \
// RUN: | FileCheck %s --check-prefix=LONG_GMHA_GROUPS
// RUN: moec-opt %t.long-gmha-groups.mlir -moe-to-cpu-pipeline="cpu=znver4" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.long-gmha-groups.AVX512.out
// RUN: %python %test_utils/attention_reference.py check long-gmha-groups %t.long-gmha-groups.AVX512.out \
// RUN: | FileCheck %s --check-prefix=LONG_GMHA_GROUPS
// RUN: moec-opt %t.long-gmha-groups.mlir -convert-moe-to-linalg -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.long-gmha-groups.GENERIC.out
// RUN: %python %test_utils/attention_reference.py check long-gmha-groups %t.long-gmha-groups.GENERIC.out \
// RUN: | FileCheck %s --check-prefix=LONG_GMHA_GROUPS
// RUN: %python %test_utils/attention_reference.py emit long-bf16 > %t.long-bf16.mlir
// RUN: moec-opt %t.long-bf16.mlir -moe-to-cpu-pipeline="cpu=znver3" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.long-bf16.AVX2.out
// RUN: %python %test_utils/attention_reference.py check long-bf16 %t.long-bf16.AVX2.out \
// RUN: | FileCheck %s --check-prefix=LONG_BF16
// RUN: moec-opt %t.long-bf16.mlir -moe-to-cpu-pipeline="cpu=znver4" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.long-bf16.AVX512.out
// RUN: %python %test_utils/attention_reference.py check long-bf16 %t.long-bf16.AVX512.out \
// RUN: | FileCheck %s --check-prefix=LONG_BF16
// RUN: moec-opt %t.long-bf16.mlir -convert-moe-to-linalg -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.long-bf16.GENERIC.out
// RUN: %python %test_utils/attention_reference.py check long-bf16 %t.long-bf16.GENERIC.out \
// RUN: | FileCheck %s --check-prefix=LONG_BF16

// LONG_FULL: PASS long-full: max rel error
// LONG_SLIDING: PASS long-sliding: max rel error
// LONG_GMHA: PASS long-gmha: max rel error
// LONG_GMHA_GROUPS: PASS long-gmha-groups: max rel error
// LONG_BF16: PASS long-bf16: max rel error
