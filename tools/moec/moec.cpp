//===- moec.cpp - the moec compiler driver --------------------------------===//
//
//   moec compile CONFIG.json -o OUT [--target cpu|cuda] [--dtype f32|bf16]
//                                    [--emit mlir|llvm|obj|exe|lib] [-v]
//
// Reads a model description, imports it into the moe dialect and compiles
// it. Every error is one line naming the file, key or stage, with exit
// status 1.
//
//===----------------------------------------------------------------------===//

#include "importer/ModelConfig.h"
#include "importer/ModelImporter.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Support/FileUtilities.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

using namespace llvm;

namespace {

enum class Target { Cpu, Cuda };
enum class Emit { Mlir, Llvm, Obj, Exe, Lib };

cl::OptionCategory category("moec compile options");

cl::opt<std::string> configPath(cl::Positional, cl::desc("<config.json>"),
                                cl::Required, cl::cat(category));
cl::opt<std::string> outputPath("o", cl::desc("Output file"),
                                cl::value_desc("path"), cl::Required,
                                cl::cat(category));
cl::opt<Target> target(
    "target", cl::desc("Code generation target"), cl::init(Target::Cpu),
    cl::values(clEnumValN(Target::Cpu, "cpu", "the host CPU (default)"),
               clEnumValN(Target::Cuda, "cuda", "an NVIDIA GPU (sm_90a)")),
    cl::cat(category));
cl::opt<moec::WeightType> dtype(
    "dtype", cl::desc("Element type of the weights"),
    cl::init(moec::WeightType::F32),
    cl::values(clEnumValN(moec::WeightType::F32, "f32", "float32 (default)"),
               clEnumValN(moec::WeightType::BF16, "bf16", "bfloat16")),
    cl::cat(category));
cl::opt<Emit> emit(
    "emit", cl::desc("What to write to the output"), cl::init(Emit::Exe),
    cl::values(clEnumValN(Emit::Mlir, "mlir",
                          "the imported moe-dialect module"),
               clEnumValN(Emit::Llvm, "llvm", "LLVM IR of the compiled model"),
               clEnumValN(Emit::Obj, "obj", "a native object file"),
               clEnumValN(Emit::Exe, "exe", "an executable (default)"),
               clEnumValN(Emit::Lib, "lib", "a shared library with a C API")),
    cl::cat(category));
cl::opt<bool> verbose("v", cl::desc("Print each stage and its time"),
                      cl::cat(category));

/// Prints `message` as moec's one-line error and returns exit status 1.
int fail(const Twine &message) {
  errs() << "moec: error: " << message << "\n";
  return 1;
}

/// Times a stage when -v is given.
class Stage {
public:
  explicit Stage(StringRef name)
      : name(name), start(std::chrono::steady_clock::now()) {}
  ~Stage() {
    if (!verbose)
      return;
    std::chrono::duration<double> seconds =
        std::chrono::steady_clock::now() - start;
    errs() << format("moec: %-10s %8.3f s\n", name.c_str(), seconds.count());
  }

private:
  std::string name;
  std::chrono::steady_clock::time_point start;
};

int compile() {
  std::vector<std::string> warnings;
  Expected<moec::ModelConfig> config = [&] {
    Stage stage("config");
    return moec::readModelConfig(configPath, warnings);
  }();
  for (const std::string &warning : warnings)
    errs() << "moec: " << warning << "\n";
  if (!config)
    return fail(toString(config.takeError()));
  if (target == Target::Cuda)
    return fail("--target cuda is not implemented yet (the CPU is)");

  mlir::MLIRContext context;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  {
    Stage stage("import");
    module = moec::importModel(context, *config, dtype, configPath);
    if (failed(mlir::verify(*module)))
      return fail("the imported module does not verify (a moec bug)");
  }

  if (emit != Emit::Mlir)
    return fail("--emit " +
                std::string(emit == Emit::Llvm  ? "llvm"
                            : emit == Emit::Obj ? "obj"
                            : emit == Emit::Exe ? "exe"
                                                : "lib") +
                " is not implemented yet; --emit mlir is");

  std::string error;
  std::unique_ptr<ToolOutputFile> output =
      mlir::openOutputFile(outputPath, &error);
  if (!output)
    return fail(outputPath + ": " + error);
  module->print(output->os());
  output->keep();
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  if (argc < 2 || StringRef(argv[1]) != "compile") {
    if (argc >= 2 &&
        (StringRef(argv[1]) == "--help" || StringRef(argv[1]) == "-h")) {
      outs() << "USAGE: moec compile <config.json> -o <output> [options]\n"
                "Run `moec compile --help` for the options.\n";
      return 0;
    }
    errs() << "moec: error: expected a command: moec compile <config.json> "
              "-o <output> [options]\n";
    return 1;
  }
  // Parse the options after `compile` as if it were the program name.
  cl::HideUnrelatedOptions(category);
  std::string program = std::string(argv[0]) + " compile";
  argv[1] = program.data();
  if (!cl::ParseCommandLineOptions(
          argc - 1, argv + 1,
          "moec compile: a Mixture-of-Experts model description (config.json) "
          "to a compiled model\n",
          &errs()))
    return 1;
  return compile();
}
