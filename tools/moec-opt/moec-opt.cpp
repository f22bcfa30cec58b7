//===- moec-opt.cpp - moec's optimizer driver -----------------------------===//
//
// Runs moe passes, the moe pipelines and any upstream pass on .mlir files,
// like mlir-opt. Registers everything the CPU and CUDA lowerings reach: all
// upstream dialects, their extensions (ConvertToLLVM interfaces, the NVVM
// target) and their translations to LLVM IR (for gpu-module-to-binary).
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"
#include "codegen/Pipelines.h"
#include "dialect/MoeDialect.h"
#include "passes/Passes.h"
#include "test/lib/TestPasses.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<mlir::moe::MoeDialect>();
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerAllToLLVMIRTranslations(registry);
  mlir::moe::registerMoeToLLVMInterfaces(registry);
  mlir::moe::registerGpuHostOpEffects(registry);

  mlir::registerAllPasses();
  mlir::moe::registerMoePasses();
  mlir::moe::registerCodegenPasses();
  mlir::moe::registerPipelines();
  mlir::moe::test::registerTestPasses();

  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "moec optimizer driver: moe passes and pipelines\n",
      registry));
}
