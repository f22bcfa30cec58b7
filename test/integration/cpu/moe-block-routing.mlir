// Whole moe.moe_block blocks through moe-to-cpu-pipeline, executed, against
// the NumPy reference in test/utils/moe_block_reference.py (written from
// docs/semantics.md §2-3; it loops over tokens and their experts, with no dispatch).
// PASS means a max relative error of at most 1e-4; the histogram of experts
// per token shows what each case exercises.
// Routing cases: top-k (Mixtral), one token (six of eight experts get no
// token), every logit tied, top-p with tokens using 1, 2 and 3 experts, top-p
// where every token uses every expert, the top-p cap, bf16 weights.
// REQUIRES: openmp, numpy
// RUN: %python %test_utils/moe_block_reference.py emit mixtral > %t.mixtral.mlir
// RUN: moec-opt %t.mixtral.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.mixtral.out
// RUN: %python %test_utils/moe_block_reference.py check mixtral %t.mixtral.out \
// RUN: | FileCheck %s --check-prefix=MIXTRAL
// RUN: %python %test_utils/moe_block_reference.py emit one-token > %t.one-token.mlir
// RUN: moec-opt %t.one-token.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.one-token.out
// RUN: %python %test_utils/moe_block_reference.py check one-token %t.one-token.out \
// RUN: | FileCheck %s --check-prefix=ONE_TOKEN
// RUN: %python %test_utils/moe_block_reference.py emit all-tied > %t.all-tied.mlir
// RUN: moec-opt %t.all-tied.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.all-tied.out
// RUN: %python %test_utils/moe_block_reference.py check all-tied %t.all-tied.out \
// RUN: | FileCheck %s --check-prefix=ALL_TIED
// RUN: %python %test_utils/moe_block_reference.py emit top-p > %t.top-p.mlir
// RUN: moec-opt %t.top-p.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.top-p.out
// RUN: %python %test_utils/moe_block_reference.py check top-p %t.top-p.out \
// RUN: | FileCheck %s --check-prefix=TOP_P
// RUN: %python %test_utils/moe_block_reference.py emit top-p-every-expert > %t.top-p-every-expert.mlir
// RUN: moec-opt %t.top-p-every-expert.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.top-p-every-expert.out
// RUN: %python %test_utils/moe_block_reference.py check top-p-every-expert %t.top-p-every-expert.out \
// RUN: | FileCheck %s --check-prefix=TOP_P_EVERY_EXPERT
// RUN: %python %test_utils/moe_block_reference.py emit top-p-capped > %t.top-p-capped.mlir
// RUN: moec-opt %t.top-p-capped.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.top-p-capped.out
// RUN: %python %test_utils/moe_block_reference.py check top-p-capped %t.top-p-capped.out \
// RUN: | FileCheck %s --check-prefix=TOP_P_CAPPED
// RUN: %python %test_utils/moe_block_reference.py emit bf16-weights > %t.bf16-weights.mlir
// RUN: moec-opt %t.bf16-weights.mlir -moe-to-cpu-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils,%libomp > %t.bf16-weights.out
// RUN: %python %test_utils/moe_block_reference.py check bf16-weights %t.bf16-weights.out \
// RUN: | FileCheck %s --check-prefix=BF16_WEIGHTS

// MIXTRAL: PASS mixtral: max rel error {{.*}} (experts/token histogram [0, 0, 7, 0, 0])
// ONE_TOKEN: PASS one-token: max rel error {{.*}} (experts/token histogram [0, 0, 1, 0, 0, 0, 0, 0, 0])
// ALL_TIED: PASS all-tied: max rel error {{.*}} (experts/token histogram [0, 0, 3, 0, 0])
// TOP_P: PASS top-p: max rel error {{.*}} (experts/token histogram [0, 1, 6, 2, 0, 0, 0])
// TOP_P_EVERY_EXPERT: PASS top-p-every-expert: max rel error {{.*}} (experts/token histogram [0, 0, 0, 0, 4])
// TOP_P_CAPPED: PASS top-p-capped: max rel error {{.*}} (experts/token histogram [0, 0, 9, 0, 0, 0, 0])
// BF16_WEIGHTS: PASS bf16-weights: max rel error {{.*}} (experts/token histogram [0, 0, 5, 0, 0])
