//===- HostCodegen.h - LLVM dialect to a native object ----------*- C++ -*-===//
//
// The ahead-of-time half of the CPU target: the LLVM dialect module that
// moe-to-cpu-pipeline produces is translated to LLVM IR, given an entry
// point the runtime can call without knowing the parameter list, optimised
// at -O3 for the target CPU (by default the host), and written as an object
// file.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_HOSTCODEGEN_H
#define MOEC_CODEGEN_HOSTCODEGEN_H

#include "codegen/cpu/CpuTarget.h"

#include "mlir/IR/BuiltinOps.h"

#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <memory>

namespace mlir::moe {

/// Translates `module` (LLVM dialect only) to LLVM IR for the host and adds:
///  * for each entry of moec::abi::kEntries, `void <entry>_packed(void
///    **args)`, which calls the C interface of `entry` (`_mlir_ciface_<entry>`,
///    so the function needs the `llvm.emit_c_interface` attribute) with
///    args[0] as the results' memref descriptors (or the address that
///    receives a scalar result) and args[1..] as the arguments: a memref
///    argument's descriptor, the weight table's pointer, or the address of a
///    scalar;
///  * `const char moec_model_manifest[]`, holding `manifest`.
/// runtime/model/ModelAbi.h describes what the runtime expects of both.
llvm::Expected<std::unique_ptr<llvm::Module>>
translateForHost(ModuleOp module, llvm::LLVMContext &context,
                 llvm::StringRef manifest);

/// Optimises `module` at -O3 for `target` (its name and features).
llvm::Error optimizeForCpu(llvm::Module &module, const CpuTarget &target);

/// Writes `module` as an object file for `target`.
llvm::Error emitCpuObject(llvm::Module &module, const CpuTarget &target,
                          llvm::raw_pwrite_stream &os);

} // namespace mlir::moe

#endif // MOEC_CODEGEN_HOSTCODEGEN_H
