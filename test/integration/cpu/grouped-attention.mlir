// moe.grouped_attention (GMHA) through moe-to-cpu-pipeline, executed,
// against the NumPy reference in test/utils/attention_reference.py (docs/semantics.md
// §7): a partial last group (no summary of it), T < G (no summaries at all),
// W > G (local keys stop at the group start), W = 1 (own key and summaries
// only), two sequences with static shapes, one token, six heads per kv-head
// at Dh = 64, bf16 inputs. PASS means
// a max relative error of at most 1e-4 (2e-2 for bf16).
// REQUIRES: openmp, numpy
// RUN: %python %test_utils/attention_reference.py emit gmha-partial > %t.gmha-partial.mlir
// RUN: moec-opt %t.gmha-partial.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.gmha-partial.out
// RUN: %python %test_utils/attention_reference.py check gmha-partial %t.gmha-partial.out \
// RUN: | FileCheck %s --check-prefix=GMHA_PARTIAL
// RUN: %python %test_utils/attention_reference.py emit gmha-short > %t.gmha-short.mlir
// RUN: moec-opt %t.gmha-short.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.gmha-short.out
// RUN: %python %test_utils/attention_reference.py check gmha-short %t.gmha-short.out \
// RUN: | FileCheck %s --check-prefix=GMHA_SHORT
// RUN: %python %test_utils/attention_reference.py emit gmha-wide-window > %t.gmha-wide-window.mlir
// RUN: moec-opt %t.gmha-wide-window.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.gmha-wide-window.out
// RUN: %python %test_utils/attention_reference.py check gmha-wide-window %t.gmha-wide-window.out \
// RUN: | FileCheck %s --check-prefix=GMHA_WIDE_WINDOW
// RUN: %python %test_utils/attention_reference.py emit gmha-window-one > %t.gmha-window-one.mlir
// RUN: moec-opt %t.gmha-window-one.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.gmha-window-one.out
// RUN: %python %test_utils/attention_reference.py check gmha-window-one %t.gmha-window-one.out \
// RUN: | FileCheck %s --check-prefix=GMHA_WINDOW_ONE
// RUN: %python %test_utils/attention_reference.py emit gmha-batch > %t.gmha-batch.mlir
// RUN: moec-opt %t.gmha-batch.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.gmha-batch.out
// RUN: %python %test_utils/attention_reference.py check gmha-batch %t.gmha-batch.out \
// RUN: | FileCheck %s --check-prefix=GMHA_BATCH
// RUN: %python %test_utils/attention_reference.py emit gmha-one-token > %t.gmha-one-token.mlir
// RUN: moec-opt %t.gmha-one-token.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.gmha-one-token.out
// RUN: %python %test_utils/attention_reference.py check gmha-one-token %t.gmha-one-token.out \
// RUN: | FileCheck %s --check-prefix=GMHA_ONE_TOKEN
// RUN: %python %test_utils/attention_reference.py emit gmha-wide-group > %t.gmha-wide-group.mlir
// RUN: moec-opt %t.gmha-wide-group.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.gmha-wide-group.out
// RUN: %python %test_utils/attention_reference.py check gmha-wide-group %t.gmha-wide-group.out \
// RUN: | FileCheck %s --check-prefix=GMHA_WIDE_GROUP
// RUN: %python %test_utils/attention_reference.py emit gmha-bf16 > %t.gmha-bf16.mlir
// RUN: moec-opt %t.gmha-bf16.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.gmha-bf16.out
// RUN: %python %test_utils/attention_reference.py check gmha-bf16 %t.gmha-bf16.out \
// RUN: | FileCheck %s --check-prefix=GMHA_BF16

// GMHA_PARTIAL: PASS gmha-partial: max rel error {{.*}} (keys per query [1, 2, 3, 3, 2, 3, 4, 4, 3, 4, 5])
// GMHA_SHORT: PASS gmha-short: max rel error {{.*}} (keys per query [1, 2, 2])
// GMHA_WIDE_WINDOW: PASS gmha-wide-window: max rel error {{.*}} (keys per query [1, 2, 3, 4, 2, 3, 4, 5, 3, 4])
// GMHA_WINDOW_ONE: PASS gmha-window-one: max rel error {{.*}} (keys per query [1, 1, 1, 2, 2, 2, 3, 3])
// GMHA_BATCH: PASS gmha-batch: max rel error {{.*}} (keys per query [1, 2, 2, 2, 2, 3, 3, 3, 3])
// GMHA_ONE_TOKEN: PASS gmha-one-token: max rel error {{.*}} (keys per query [1])
// GMHA_WIDE_GROUP: PASS gmha-wide-group: max rel error {{.*}} (keys per query [1, 2, 2, 2, 2, 3, 3, 3, 3])
// GMHA_BF16: PASS gmha-bf16: max rel error {{.*}} (keys per query [1, 2, 3, 3, 2, 3, 4, 4, 3, 4, 5])
