// Whole moe.moe_block blocks with the optional features through
// moe-to-cpu-pipeline, executed, against the NumPy reference in
// test/utils/moe_block_reference.py (docs/semantics.md §2, §5, §6): the Qwen2-MoE
// shared expert, MH-MoE, dual-scale shared experts, adaptive routing (both
// levels present: simple tokens capped at one expert and kept out of the deep
// expert), and all of them at once. PASS means a max relative error of at
// most 1e-4.
// REQUIRES: openmp, numpy
// RUN: %python %test_utils/moe_block_reference.py emit qwen-shared > %t.qwen-shared.mlir
// RUN: moec-opt %t.qwen-shared.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.qwen-shared.out
// RUN: %python %test_utils/moe_block_reference.py check qwen-shared %t.qwen-shared.out \
// RUN: | FileCheck %s --check-prefix=QWEN_SHARED
// RUN: %python %test_utils/moe_block_reference.py emit multi-head > %t.multi-head.mlir
// RUN: moec-opt %t.multi-head.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.multi-head.out
// RUN: %python %test_utils/moe_block_reference.py check multi-head %t.multi-head.out \
// RUN: | FileCheck %s --check-prefix=MULTI_HEAD
// RUN: %python %test_utils/moe_block_reference.py emit dual-scale > %t.dual-scale.mlir
// RUN: moec-opt %t.dual-scale.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.dual-scale.out
// RUN: %python %test_utils/moe_block_reference.py check dual-scale %t.dual-scale.out \
// RUN: | FileCheck %s --check-prefix=DUAL_SCALE
// RUN: %python %test_utils/moe_block_reference.py emit adaptive > %t.adaptive.mlir
// RUN: moec-opt %t.adaptive.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.adaptive.out
// RUN: %python %test_utils/moe_block_reference.py check adaptive %t.adaptive.out \
// RUN: | FileCheck %s --check-prefix=ADAPTIVE
// RUN: %python %test_utils/moe_block_reference.py emit all-features > %t.all-features.mlir
// RUN: moec-opt %t.all-features.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.all-features.out
// RUN: %python %test_utils/moe_block_reference.py check all-features %t.all-features.out \
// RUN: | FileCheck %s --check-prefix=ALL_FEATURES

// QWEN_SHARED: PASS qwen-shared: max rel error {{.*}} (experts/token histogram [0, 0, 6, 0, 0])
// MULTI_HEAD: PASS multi-head: max rel error {{.*}} (experts/token histogram [0, 0, 20, 0, 0])
// DUAL_SCALE: PASS dual-scale: max rel error {{.*}} (experts/token histogram [0, 6, 0, 0, 0])
// ADAPTIVE: PASS adaptive: max rel error {{.*}} (experts/token histogram [0, 7, 5, 0, 0, 0, 0], complex tokens 8 of 12)
// ALL_FEATURES: PASS all-features: max rel error {{.*}} (experts/token histogram [0, 11, 1, 0, 0], complex tokens 3 of 6)
