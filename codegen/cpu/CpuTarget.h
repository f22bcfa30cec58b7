//===- CpuTarget.h - the CPU a model is compiled for ------------*- C++ -*-===//
//
// The one description of the target CPU that kernel selection
// (moe-select-cpu-kernels) and code generation (HostCodegen) share: its LLVM
// name and feature string, and the facts kernels are shaped by.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_CPU_CPUTARGET_H
#define MOEC_CODEGEN_CPU_CPUTARGET_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace mlir::moe {

struct CpuTarget {
  /// LLVM's name of the CPU (`znver3`, `x86-64-v3`, the host's name).
  std::string cpu;
  /// LLVM subtarget features on top of the CPU's own (`+avx2,-avx512f`); for
  /// the host, every feature the host reports.
  std::string features;
  /// Bits of the widest float vector register (512 with AVX-512F, 256 with
  /// AVX, else 128).
  unsigned vectorBits = 128;
  /// Architectural vector registers (32 with AVX-512F or on AArch64, else 16).
  unsigned vectorRegisters = 16;
  bool fma = false;
  /// The AVX-512 BF16 dot product (vdpbf16ps).
  bool avx512bf16 = false;

  /// f32 lanes of one vector register.
  unsigned f32Lanes() const { return vectorBits / 32; }
};

/// The CPU `cpu` (empty, `host` or `native`: the machine moec runs on) with
/// `features` (comma-separated `+name` / `-name`) on top. An unknown CPU or
/// feature is an error naming it.
llvm::Expected<CpuTarget> resolveCpuTarget(llvm::StringRef cpu,
                                           llvm::StringRef features);

} // namespace mlir::moe

#endif // MOEC_CODEGEN_CPU_CPUTARGET_H
