//===- CpuTarget.cpp - the CPU a model is compiled for --------------------===//

#include "codegen/cpu/CpuTarget.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"
#include "llvm/TargetParser/Triple.h"

#include <memory>

using namespace llvm;
using namespace mlir::moe;

namespace {

/// The host's features as a subtarget feature string.
std::string hostFeatures() {
  SubtargetFeatures features;
  for (const auto &feature : sys::getHostCPUFeatures())
    features.AddFeature(feature.getKey(), feature.getValue());
  return features.getString();
}

/// Checks that every `+name` / `-name` in `features` is a feature of the
/// target `info` describes.
Error checkFeatureNames(const MCSubtargetInfo &info, StringRef features) {
  SmallVector<StringRef> names;
  features.split(names, ',', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  for (StringRef entry : names) {
    StringRef name = entry.trim();
    if (!name.consume_front("+") && !name.consume_front("-"))
      return createStringError("CPU feature '" + entry +
                               "' must start with '+' or '-'");
    bool known = llvm::any_of(
        info.getAllProcessorFeatures(),
        [&](const SubtargetFeatureKV &kv) { return name == kv.Key; });
    if (!known)
      return createStringError("unknown CPU feature '" + name + "'");
  }
  return Error::success();
}

} // namespace

Expected<CpuTarget> mlir::moe::resolveCpuTarget(StringRef cpu,
                                                StringRef features) {
  // HostCodegen emits objects for the targets resolved here.
  static bool initialized = [] {
    InitializeNativeTarget();
    InitializeNativeTargetAsmPrinter();
    return true;
  }();
  (void)initialized;

  Triple triple(sys::getProcessTriple());
  std::string error;
  const Target *target = TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return createStringError("no LLVM target for " + triple.str() + ": " +
                             error);
  CpuTarget result;
  bool host = cpu.empty() || cpu == "host" || cpu == "native";
  result.cpu = host ? sys::getHostCPUName().str() : cpu.str();
  std::string base = host ? hostFeatures() : "";
  result.features = base.empty() || features.empty()
                        ? base + features.str()
                        : base + "," + features.str();

  // The names are checked against a generic subtarget first: LLVM would
  // warn about an unknown one on stderr and go on without it.
  std::unique_ptr<MCSubtargetInfo> generic(
      target->createMCSubtargetInfo(triple, "", ""));
  if (!generic)
    return createStringError("LLVM has no subtarget information for " +
                             triple.str());
  if (!generic->isCPUStringValid(result.cpu))
    return createStringError("unknown CPU '" + result.cpu + "' for " +
                             triple.str() +
                             " (LLVM's names: znver3, "
                             "x86-64-v3, skylake-avx512, ...)");
  if (Error err = checkFeatureNames(*generic, features))
    return std::move(err);
  std::unique_ptr<MCSubtargetInfo> info(
      target->createMCSubtargetInfo(triple, result.cpu, result.features));

  if (triple.isX86()) {
    bool avx512 = info->checkFeatures("+avx512f");
    result.vectorBits = avx512 ? 512 : info->checkFeatures("+avx") ? 256 : 128;
    result.vectorRegisters = avx512 ? 32 : 16;
    result.fma = info->checkFeatures("+fma");
    result.avx512bf16 = avx512 && info->checkFeatures("+avx512bf16");
  } else if (triple.isAArch64()) {
    result.vectorRegisters = 32;
    result.fma = true;
  }
  return result;
}
