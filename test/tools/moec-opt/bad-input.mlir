// Malformed IR gets a located error and a non-zero exit, not a crash.
// RUN: not moec-opt %s 2>&1 | FileCheck %s
// RUN: not moec-opt %S/does-not-exist.mlir 2>&1 | FileCheck %s --check-prefix=MISSING

// CHECK: bad-input.mlir:[[@LINE+2]]:{{[0-9]+}}: error: custom op 'moe.no_such_op' is unknown
func.func @f(%x: tensor<?x8xf32>) {
  %y = moe.no_such_op %x : tensor<?x8xf32>
  return
}

// MISSING: cannot open input file '{{.*}}does-not-exist.mlir': No such file or directory
