//===- HostCodegen.cpp - LLVM dialect to a native object ------------------===//

#include "codegen/HostCodegen.h"
#include "codegen/Passes.h"
#include "dialect/MoeDialect.h"
#include "runtime/model/ModelAbi.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/Transforms/Utils/Cloning.h"

using namespace mlir;

namespace {

/// Inlines `entry` into its C interface `cInterface` and deletes it. The C
/// interface unpacks every argument's descriptor into scalars and calls the
/// entry with them; LLVM lowers a call in time quadratic in its arguments
/// (called-value propagation, instruction selection's argument stores), which
/// took 80 s when every weight was an argument. With the weight table the
/// entry has few arguments, but one unpacking is still enough.
llvm::Error inlineEntry(llvm::Module &module, llvm::StringRef entry,
                        llvm::Function &cInterface) {
  llvm::Function *entryFunction = module.getFunction(entry);
  if (!entryFunction)
    return llvm::createStringError("no function '" + entry + "'");
  for (llvm::User *user : llvm::make_early_inc_range(entryFunction->users())) {
    auto *call = llvm::dyn_cast<llvm::CallBase>(user);
    if (!call || call->getFunction() != &cInterface)
      continue;
    llvm::InlineFunctionInfo info;
    llvm::InlineResult result = llvm::InlineFunction(*call, info);
    if (!result.isSuccess())
      return llvm::createStringError("cannot inline '" + entry +
                                     "': " + result.getFailureReason());
  }
  // The runtime calls <entry>_packed only.
  if (entryFunction->use_empty())
    entryFunction->eraseFromParent();
  return llvm::Error::success();
}

/// Adds `<entry>_packed(void **args)`, and inlines `entry` into its C
/// interface, which the wrapper calls: args[0] is the C interface's first
/// argument when that is a pointer (the results' descriptors) and the address
/// that receives its result when it returns a scalar; the arguments follow,
/// each a pointer (a descriptor, the weight table) or the address of a scalar
/// (an index).
llvm::Error addPackedEntry(llvm::Module &module, llvm::StringRef entry) {
  std::string cInterface = ("_mlir_ciface_" + entry).str();
  llvm::Function *callee = module.getFunction(cInterface);
  if (!callee)
    return llvm::createStringError("no function '" + cInterface +
                                   "' (is llvm.emit_c_interface set?)");
  if (llvm::Error err = inlineEntry(module, entry, *callee))
    return err;
  llvm::LLVMContext &context = module.getContext();
  llvm::Type *ptr = llvm::PointerType::getUnqual(context);
  auto *packed = llvm::Function::Create(
      llvm::FunctionType::get(llvm::Type::getVoidTy(context), {ptr}, false),
      llvm::GlobalValue::ExternalLinkage, (entry + "_packed").str(), module);
  llvm::IRBuilder<> b(llvm::BasicBlock::Create(context, "entry", packed));
  auto argAt = [&](unsigned i) {
    return b.CreateLoad(ptr, b.CreateConstGEP1_64(ptr, packed->getArg(0), i));
  };
  bool returns = !callee->getReturnType()->isVoidTy();
  llvm::SmallVector<llvm::Value *> args;
  for (unsigned i = 0, e = callee->arg_size(); i < e; ++i) {
    llvm::Value *arg = argAt(i + returns);
    llvm::Type *type = callee->getArg(i)->getType();
    args.push_back(type->isPointerTy() ? arg : b.CreateLoad(type, arg));
  }
  llvm::Value *result = b.CreateCall(callee, args);
  if (returns)
    b.CreateStore(result, argAt(0));
  b.CreateRetVoid();
  return llvm::Error::success();
}

/// The target machine of `target`, created once per call (cheap next to
/// codegen), with `module` given its triple and data layout.
llvm::Expected<std::unique_ptr<llvm::TargetMachine>>
targetModuleFor(llvm::Module &module, const moe::CpuTarget &cpu) {
  llvm::Triple triple(llvm::sys::getProcessTriple());
  std::string error;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return llvm::createStringError("no LLVM target for the host (" +
                                   triple.str() + "): " + error);
  llvm::TargetOptions options;
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      triple, cpu.cpu, cpu.features, options, llvm::Reloc::PIC_, std::nullopt,
      llvm::CodeGenOptLevel::Aggressive));
  if (!machine)
    return llvm::createStringError("cannot create a target machine for " +
                                   triple.str() + " (" + cpu.cpu + ")");
  module.setDataLayout(machine->createDataLayout());
  module.setTargetTriple(machine->getTargetTriple());
  return std::move(machine);
}

} // namespace

llvm::Expected<std::unique_ptr<llvm::Module>>
moe::translateForHost(ModuleOp module, llvm::LLVMContext &context,
                      llvm::StringRef manifest) {
  DialectRegistry registry;
  registerAllToLLVMIRTranslations(registry);
  registerMoeToLLVMInterfaces(registry);
  module->getContext()->appendDialectRegistry(registry);
  // Decoder layer functions stay calls: LLVM's inliner would otherwise copy
  // a layer's body into every call site and undo the one-body-per-kind
  // compile (the attribute survives the conversion to the LLVM dialect).
  // Internal, their calls lose the arguments that are the same at every call
  // site (a buffer's static sizes and strides) to interprocedural constant
  // propagation and dead argument elimination.
  module.walk([](LLVM::LLVMFuncOp func) {
    if (!func->hasAttr(MoeDialect::LayersAttrHelper::getNameStr()))
      return;
    func.setNoInline(true);
    func.setLinkage(LLVM::Linkage::Internal);
  });
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, context, "moec_model");
  if (!llvmModule)
    return llvm::createStringError("translation to LLVM IR failed");

  for (llvm::StringRef entry : moec::abi::kEntries)
    if (llvm::Error err = addPackedEntry(*llvmModule, entry))
      return std::move(err);
  llvm::Constant *text =
      llvm::ConstantDataArray::getString(context, manifest, /*AddNull=*/true);
  new llvm::GlobalVariable(*llvmModule, text->getType(), /*isConstant=*/true,
                           llvm::GlobalValue::ExternalLinkage, text,
                           moec::abi::kManifestSymbol);
  return llvmModule;
}

llvm::Error moe::optimizeForCpu(llvm::Module &module,
                                const moe::CpuTarget &target) {
  llvm::Expected<std::unique_ptr<llvm::TargetMachine>> machine =
      targetModuleFor(module, target);
  if (!machine)
    return machine.takeError();

  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder builder(machine->get());
  builder.registerModuleAnalyses(mam);
  builder.registerCGSCCAnalyses(cgam);
  builder.registerFunctionAnalyses(fam);
  builder.registerLoopAnalyses(lam);
  builder.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager passes =
      builder.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
  passes.run(module, mam);
  return llvm::Error::success();
}

llvm::Error moe::emitCpuObject(llvm::Module &module,
                               const moe::CpuTarget &target,
                               llvm::raw_pwrite_stream &os) {
  llvm::Expected<std::unique_ptr<llvm::TargetMachine>> machine =
      targetModuleFor(module, target);
  if (!machine)
    return machine.takeError();
  llvm::legacy::PassManager passes;
  if ((*machine)->addPassesToEmitFile(passes, os, nullptr,
                                      llvm::CodeGenFileType::ObjectFile))
    return llvm::createStringError(target.cpu + " cannot emit objects");
  passes.run(module);
  return llvm::Error::success();
}
