// bench/grouped_gemm.py --bf16 on tiny shapes: the bf16 variants (widened,
// and through the AVX-512 BF16 dot product) checked against NumPy, untimed.
// REQUIRES: numpy, openmp, avx512bf16
// RUN: %python %moec_src_root/bench/grouped_gemm.py --smoke --bf16 --moec-opt moec-opt | FileCheck %s
// CHECK: results match NumPy (float64) to 1e-4
// CHECK: bf16 results match NumPy (float64) to 2e-2
