// The moe dialect and the upstream dialects both backends lower through.
// RUN: moec-opt --show-dialects | FileCheck %s

// CHECK-DAG: gpu
// CHECK-DAG: linalg
// CHECK-DAG: llvm
// CHECK-DAG: moe
// CHECK-DAG: nvvm
// CHECK-DAG: omp
// CHECK-DAG: tensor
