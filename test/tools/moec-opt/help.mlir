// moec-opt lists the moe passes and pipelines beside the upstream passes the
// lowerings rely on.
// RUN: moec-opt --help | FileCheck %s

// CHECK-DAG: --convert-moe-to-linalg
// CHECK-DAG: --moe-lower-routing
// CHECK-DAG: --moe-map-allocs-to-gpu
// CHECK-DAG: --moe-inline-layers
// CHECK-DAG: --moe-select-cpu-kernels
// CHECK-DAG: --moe-tile-grouped-matmul
// CHECK-DAG: --moe-tile-attention
// CHECK-DAG: --gpu-async-region
// CHECK-DAG: --moe-to-cpu-pipeline
// CHECK-DAG: --moe-to-cuda-pipeline
// CHECK-DAG: --gpu-module-to-binary
// CHECK-DAG: --convert-scf-to-openmp
// CHECK-DAG: --nvvm-attach-target
// CHECK-DAG: --one-shot-bufferize
