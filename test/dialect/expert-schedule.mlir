// E_l of every schedule kind for L = 8 layers between 2 and 8 experts
// (wave period 4), and a single-layer model. Expected counts: Python, from
// the formulas of docs/semantics.md §4 with round(x) = floor(x + 0.5).
// RUN: moec-opt %s -moe-test-expert-schedule | FileCheck %s

// CHECK-LABEL: func @uniform
// CHECK-SAME: moe.experts_per_layer = array<i64: 8, 8, 8, 8, 8, 8, 8, 8>
func.func @uniform() attributes {moe.num_layers = 8 : i64,
    moe.expert_schedule = #moe.expert_schedule<uniform, min_experts = 2, max_experts = 8>} { return }

// CHECK-LABEL: func @descending
// CHECK-SAME: moe.experts_per_layer = array<i64: 8, 7, 6, 5, 5, 4, 3, 2>
func.func @descending() attributes {moe.num_layers = 8 : i64,
    moe.expert_schedule = #moe.expert_schedule<descending, min_experts = 2, max_experts = 8>} { return }

// CHECK-LABEL: func @ascending
// CHECK-SAME: moe.experts_per_layer = array<i64: 2, 3, 4, 5, 5, 6, 7, 8>
func.func @ascending() attributes {moe.num_layers = 8 : i64,
    moe.expert_schedule = #moe.expert_schedule<ascending, min_experts = 2, max_experts = 8>} { return }

// CHECK-LABEL: func @pyramid
// CHECK-SAME: moe.experts_per_layer = array<i64: 2, 4, 5, 7, 7, 5, 4, 2>
func.func @pyramid() attributes {moe.num_layers = 8 : i64,
    moe.expert_schedule = #moe.expert_schedule<pyramid, min_experts = 2, max_experts = 8>} { return }

// CHECK-LABEL: func @hourglass
// CHECK-SAME: moe.experts_per_layer = array<i64: 8, 6, 5, 3, 3, 5, 6, 8>
func.func @hourglass() attributes {moe.num_layers = 8 : i64,
    moe.expert_schedule = #moe.expert_schedule<hourglass, min_experts = 2, max_experts = 8>} { return }

// CHECK-LABEL: func @wave
// CHECK-SAME: moe.experts_per_layer = array<i64: 5, 8, 5, 2, 5, 8, 5, 2>
func.func @wave() attributes {moe.num_layers = 8 : i64,
    moe.expert_schedule = #moe.expert_schedule<wave, min_experts = 2, max_experts = 8, period = 4>} { return }

// With one layer, t = 0.
// CHECK-LABEL: func @single_layer
// CHECK-SAME: moe.experts_per_layer = array<i64: 8>
func.func @single_layer() attributes {moe.num_layers = 1 : i64,
    moe.expert_schedule = #moe.expert_schedule<descending, min_experts = 2, max_experts = 8>} { return }
