// moe.attention through moe-to-cpu-pipeline, executed, against the NumPy
// reference in test/utils/attention_reference.py (docs/semantics.md §2): full causal
// attention with grouped-query sharing (H = 4, KVH = 2; H = 8, KVH = 1 at
// Dh = 64, all in one work item), MHA (KVH = H, static
// shapes), two sequences, one token, bf16 inputs; sliding windows shorter
// than T, at least T (the same keys as full attention) and of one key. PASS
// means a max relative error of at most 1e-4 (2e-2 for bf16).
// REQUIRES: openmp, numpy
// RUN: %python %test_utils/attention_reference.py emit full-gqa > %t.full-gqa.mlir
// RUN: moec-opt %t.full-gqa.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.full-gqa.out
// RUN: %python %test_utils/attention_reference.py check full-gqa %t.full-gqa.out \
// RUN: | FileCheck %s --check-prefix=FULL_GQA
// RUN: %python %test_utils/attention_reference.py emit full-mha > %t.full-mha.mlir
// RUN: moec-opt %t.full-mha.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.full-mha.out
// RUN: %python %test_utils/attention_reference.py check full-mha %t.full-mha.out \
// RUN: | FileCheck %s --check-prefix=FULL_MHA
// RUN: %python %test_utils/attention_reference.py emit full-batch > %t.full-batch.mlir
// RUN: moec-opt %t.full-batch.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.full-batch.out
// RUN: %python %test_utils/attention_reference.py check full-batch %t.full-batch.out \
// RUN: | FileCheck %s --check-prefix=FULL_BATCH
// RUN: %python %test_utils/attention_reference.py emit full-one-token > %t.full-one-token.mlir
// RUN: moec-opt %t.full-one-token.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.full-one-token.out
// RUN: %python %test_utils/attention_reference.py check full-one-token %t.full-one-token.out \
// RUN: | FileCheck %s --check-prefix=FULL_ONE_TOKEN
// RUN: %python %test_utils/attention_reference.py emit full-wide-group > %t.full-wide-group.mlir
// RUN: moec-opt %t.full-wide-group.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.full-wide-group.out
// RUN: %python %test_utils/attention_reference.py check full-wide-group %t.full-wide-group.out \
// RUN: | FileCheck %s --check-prefix=FULL_WIDE_GROUP
// RUN: %python %test_utils/attention_reference.py emit full-bf16 > %t.full-bf16.mlir
// RUN: moec-opt %t.full-bf16.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.full-bf16.out
// RUN: %python %test_utils/attention_reference.py check full-bf16 %t.full-bf16.out \
// RUN: | FileCheck %s --check-prefix=FULL_BF16
// RUN: %python %test_utils/attention_reference.py emit sliding > %t.sliding.mlir
// RUN: moec-opt %t.sliding.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.sliding.out
// RUN: %python %test_utils/attention_reference.py check sliding %t.sliding.out \
// RUN: | FileCheck %s --check-prefix=SLIDING
// RUN: %python %test_utils/attention_reference.py emit sliding-wide > %t.sliding-wide.mlir
// RUN: moec-opt %t.sliding-wide.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.sliding-wide.out
// RUN: %python %test_utils/attention_reference.py check sliding-wide %t.sliding-wide.out \
// RUN: | FileCheck %s --check-prefix=SLIDING_WIDE
// RUN: %python %test_utils/attention_reference.py emit sliding-one > %t.sliding-one.mlir
// RUN: moec-opt %t.sliding-one.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.sliding-one.out
// RUN: %python %test_utils/attention_reference.py check sliding-one %t.sliding-one.out \
// RUN: | FileCheck %s --check-prefix=SLIDING_ONE

// FULL_GQA: PASS full-gqa: max rel error {{.*}} (keys per query [1, 2, 3, 4, 5, 6, 7])
// FULL_MHA: PASS full-mha: max rel error {{.*}} (keys per query [1, 2, 3, 4, 5, 6])
// FULL_BATCH: PASS full-batch: max rel error {{.*}} (keys per query [1, 2, 3, 4, 5])
// FULL_ONE_TOKEN: PASS full-one-token: max rel error {{.*}} (keys per query [1])
// FULL_WIDE_GROUP: PASS full-wide-group: max rel error {{.*}} (keys per query [1, 2, 3, 4, 5, 6])
// FULL_BF16: PASS full-bf16: max rel error {{.*}} (keys per query [1, 2, 3, 4, 5, 6, 7])
// SLIDING: PASS sliding: max rel error {{.*}} (keys per query [1, 2, 3, 3, 3, 3, 3, 3, 3], unlike full attention)
// SLIDING_WIDE: PASS sliding-wide: max rel error {{.*}} (keys per query [1, 2, 3, 4, 5, 6, 7], same as full attention)
// SLIDING_ONE: PASS sliding-one: max rel error {{.*}} (keys per query [1, 1, 1, 1, 1], unlike full attention)
