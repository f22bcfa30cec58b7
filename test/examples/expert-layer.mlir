// The README's example: the CPU pipeline on examples/expert-layer.mlir,
// checked against its NumPy reference.
// REQUIRES: openmp, numpy
// RUN: env MOEC_BUILD_DIR=%moec_obj_root %moec_src_root/examples/run-cpu.sh | FileCheck %s
// CHECK: max relative error
