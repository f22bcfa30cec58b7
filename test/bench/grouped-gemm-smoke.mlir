// Keeps bench/grouped_gemm.py working: tiny shapes, results checked against
// NumPy, nothing timed.
// REQUIRES: numpy, openmp
// RUN: %python %moec_src_root/bench/grouped_gemm.py --smoke --moec-opt moec-opt | FileCheck %s
// CHECK: results match NumPy (float64) to 1e-4
