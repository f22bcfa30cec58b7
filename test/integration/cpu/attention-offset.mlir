// moe.attention with offset(P): Tq queries at positions P .. P + Tq - 1
// against T keys, as a decode step against a KV cache reads them, through
// moe-to-cpu-pipeline (moe-tile-attention leaves these ops to the generic
// lowering) for an AVX2 and an AVX-512 target, executed, against the NumPy
// reference in test/utils/attention_reference.py: one query of two
// sequences at the last position; a sliding window at the last position;
// three queries extending a sequence; two queries with keys after them
// (masked) under a window. PASS: max relative error at most 1e-4.
// REQUIRES: openmp, numpy
// RUN: %python %test_utils/attention_reference.py emit decode-full > %t.decode-full.mlir
// RUN: moec-opt %t.decode-full.mlir -moe-to-cpu-pipeline="cpu=znver3" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.decode-full.znver3.out
// RUN: %python %test_utils/attention_reference.py check decode-full %t.decode-full.znver3.out \
// RUN: | FileCheck %s --check-prefix=DECODE_FULL
// RUN: moec-opt %t.decode-full.mlir -moe-to-cpu-pipeline="cpu=znver4" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.decode-full.znver4.out
// RUN: %python %test_utils/attention_reference.py check decode-full %t.decode-full.znver4.out \
// RUN: | FileCheck %s --check-prefix=DECODE_FULL
// RUN: %python %test_utils/attention_reference.py emit decode-sliding > %t.decode-sliding.mlir
// RUN: moec-opt %t.decode-sliding.mlir -moe-to-cpu-pipeline="cpu=znver3" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.decode-sliding.znver3.out
// RUN: %python %test_utils/attention_reference.py check decode-sliding %t.decode-sliding.znver3.out \
// RUN: | FileCheck %s --check-prefix=DECODE_SLIDING
// RUN: moec-opt %t.decode-sliding.mlir -moe-to-cpu-pipeline="cpu=znver4" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.decode-sliding.znver4.out
// RUN: %python %test_utils/attention_reference.py check decode-sliding %t.decode-sliding.znver4.out \
// RUN: | FileCheck %s --check-prefix=DECODE_SLIDING
// RUN: %python %test_utils/attention_reference.py emit extend-full > %t.extend-full.mlir
// RUN: moec-opt %t.extend-full.mlir -moe-to-cpu-pipeline="cpu=znver3" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.extend-full.znver3.out
// RUN: %python %test_utils/attention_reference.py check extend-full %t.extend-full.znver3.out \
// RUN: | FileCheck %s --check-prefix=EXTEND_FULL
// RUN: moec-opt %t.extend-full.mlir -moe-to-cpu-pipeline="cpu=znver4" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.extend-full.znver4.out
// RUN: %python %test_utils/attention_reference.py check extend-full %t.extend-full.znver4.out \
// RUN: | FileCheck %s --check-prefix=EXTEND_FULL
// RUN: %python %test_utils/attention_reference.py emit offset-middle > %t.offset-middle.mlir
// RUN: moec-opt %t.offset-middle.mlir -moe-to-cpu-pipeline="cpu=znver3" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.offset-middle.znver3.out
// RUN: %python %test_utils/attention_reference.py check offset-middle %t.offset-middle.znver3.out \
// RUN: | FileCheck %s --check-prefix=OFFSET_MIDDLE
// RUN: moec-opt %t.offset-middle.mlir -moe-to-cpu-pipeline="cpu=znver4" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.offset-middle.znver4.out
// RUN: %python %test_utils/attention_reference.py check offset-middle %t.offset-middle.znver4.out \
// RUN: | FileCheck %s --check-prefix=OFFSET_MIDDLE

// DECODE_FULL: PASS decode-full: max rel error {{.*}} (keys per query [9, 9])
// DECODE_SLIDING: PASS decode-sliding: max rel error {{.*}} (keys per query [4], unlike full attention)
// EXTEND_FULL: PASS extend-full: max rel error {{.*}} (keys per query [8, 9, 10])
// OFFSET_MIDDLE: PASS offset-middle: max rel error {{.*}} (keys per query [3, 3], unlike full attention)
