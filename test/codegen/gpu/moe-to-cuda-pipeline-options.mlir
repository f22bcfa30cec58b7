// moe-to-cuda-pipeline's options reach the passes they configure.
// RUN: moec-opt %s -moe-to-cuda-pipeline="format=isa chip=sm_80 features=+ptx70 opt-level=2 tile-sizes=8" \
// RUN: | FileCheck %s
// RUN: not moec-opt %s -moe-to-cuda-pipeline="format=bogus" 2>&1 | FileCheck %s --check-prefix=BAD

// Tiles of 8 threads along the row dimension.
// CHECK: %[[EIGHT:.*]] = llvm.mlir.constant(8 : index) : i64
// CHECK: gpu.launch_func {{.*}}@combine_kernel::@combine_kernel blocks in ({{.*}}) threads in (%[[EIGHT]],
// CHECK: gpu.binary @combine_kernel [#gpu.object<#nvvm.target<chip = "sm_80", features = "+ptx70">, properties = {{{.*}}O = 2 : i32}
// CHECK-SAME: .version 7.0
// CHECK-SAME: .target sm_80

// BAD: for the --format option: Cannot find option named 'bogus'

func.func @combine(%x: tensor<?x64xf32>, %y: tensor<?x64xf32>, %w: tensor<?x2xf32>,
                 %slots: tensor<?x2xi32>, %n: tensor<?xi32>) -> tensor<?x64xf32> {
  %c = moe.combine %y, %w, %slots, %n
      : (tensor<?x64xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x64xf32>
  return %c : tensor<?x64xf32>
}
