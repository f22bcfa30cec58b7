//===- moec.cpp - the moec compiler driver --------------------------------===//
//
//   moec compile CONFIG.json -o OUT [--target cpu|cuda] [--dtype f32|bf16]
//                                    [--emit mlir|llvm|obj|ptx|exe|lib] [-v]
//                                    [--cpu NAME] [--cpu-features LIST]
//                                    [--kernel-options OPTIONS]
//
// Reads a model description, imports it into the moe dialect and compiles
// it. Every error is one line naming the file, key or stage, with exit
// status 1.
//
//===----------------------------------------------------------------------===//

#include "codegen/HostCodegen.h"
#include "codegen/Passes.h"
#include "codegen/Pipelines.h"

#include "ModelHeader.h"
#include "importer/ModelConfig.h"
#include "importer/ModelImporter.h"
#include "runtime/model/ModelAbi.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Pass/PassManager.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstdlib>

using namespace llvm;

namespace {

enum class Target { Cpu, Cuda };
enum class Emit { Mlir, Llvm, Obj, Ptx, Exe, Lib };

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
    "dtype",
    cl::desc("Element type of the weights (default: f32 for the CPU, bf16 "
             "for cuda)"),
    cl::init(moec::WeightType::F32),
    cl::values(clEnumValN(moec::WeightType::F32, "f32", "float32"),
               clEnumValN(moec::WeightType::BF16, "bf16", "bfloat16")),
    cl::cat(category));
cl::opt<Emit> emit(
    "emit", cl::desc("What to write to the output"), cl::init(Emit::Exe),
    cl::values(clEnumValN(Emit::Mlir, "mlir",
                          "the imported moe-dialect module"),
               clEnumValN(Emit::Llvm, "llvm", "LLVM IR of the compiled model"),
               clEnumValN(Emit::Obj, "obj", "a native object file"),
               clEnumValN(Emit::Ptx, "ptx",
                          "the device code's PTX, every kernel module "
                          "(--target cuda)"),
               clEnumValN(Emit::Exe, "exe", "an executable (default)"),
               clEnumValN(Emit::Lib, "lib", "a shared library with a C API")),
    cl::cat(category));
cl::opt<bool> verbose("v", cl::desc("Print each stage and its time"),
                      cl::cat(category));
cl::opt<std::string> cpuName(
    "cpu",
    cl::desc("CPU to compile for, by LLVM's name (znver3, x86-64-v3, "
             "skylake-avx512, ...; default: this machine). The kernels are "
             "shaped for it and the code may not run on another kind"),
    cl::value_desc("name"), cl::init("host"), cl::cat(category));
cl::opt<std::string>
    cpuFeatures("cpu-features",
                cl::desc("LLVM CPU features to add or remove, e.g. -avx512f or "
                         "+avx2,+fma"),
                cl::value_desc("list"), cl::init(""), cl::cat(category));
cl::opt<std::string> kernelOptions(
    "kernel-options",
    cl::desc("Override the kernel shapes chosen for the CPU, as "
             "moe-to-cpu-pipeline options, e.g. \"kernel=outer micro-rows=4 "
             "tile-k=512 heads-per-step=1\" (for experiments)"),
    cl::value_desc("options"), cl::init(""), cl::cat(category));

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

/// Where the model runtime libraries are: `../lib` beside the moec
/// executable, in the build tree as in an installation (no path of the
/// build is compiled in, so either can move).
Expected<std::string> runtimeLibDir() {
  std::string self = sys::fs::getMainExecutable(
      nullptr, reinterpret_cast<void *>(&runtimeLibDir));
  SmallString<256> dir(sys::path::parent_path(sys::path::parent_path(self)));
  sys::path::append(dir, "lib");
  SmallString<256> probe(dir);
  sys::path::append(probe, "libmoec_model_runtime.a");
  if (!sys::fs::exists(probe))
    return createStringError("cannot find the model runtime: " + probe +
                             " does not exist (moec looks in ../lib beside "
                             "its executable; reinstall moec)");
  if (target == Target::Cuda) {
    SmallString<256> cuda(dir);
    sys::path::append(cuda, "libmoec_model_cuda.a");
    if (!sys::fs::exists(cuda))
      return createStringError(
          "--target cuda: cannot find " + cuda +
          " (moec was built without a CUDA toolkit, or the installation "
          "lacks it)");
  }
  return std::string(dir);
}

/// Links `object` with the runtime into `output`, an executable or a shared
/// library, driving the C++ compiler moec was built with (or $MOEC_CXX); a
/// --target cuda model with the GPU device library and the mgpu* runtime.
int link(StringRef object, StringRef output, bool sharedLibrary,
         StringRef libDir) {
  std::string driver = MOEC_CXX_DRIVER;
  if (const char *env = std::getenv("MOEC_CXX"))
    driver = env;
  ErrorOr<std::string> driverPath = sys::findProgramByName(driver);
  if (!driverPath)
    return fail("cannot find the linker driver '" + driver +
                "' (set MOEC_CXX to a C++ compiler)");
  std::vector<std::string> args{*driverPath, object.str(), "-o", output.str(),
                                ("-L" + libDir).str()};
  SmallString<128> exportsPath;
  std::optional<FileRemover> removeExports;
  if (sharedLibrary) {
    // Export the C API of moec_model.h and nothing else.
    int fd;
    if (std::error_code ec = sys::fs::createTemporaryFile("moec-exports", "map",
                                                          fd, exportsPath))
      return fail("cannot create a temporary file: " + ec.message());
    removeExports.emplace(exportsPath);
    raw_fd_ostream exports(fd, /*shouldClose=*/true);
    exports << "{ global: moec_model_*; moec_session_*; local: *; };\n";
    exports.close();
    args.insert(args.end(),
                {"-shared", "-Wl,--version-script=" + exportsPath.str().str(),
                 "-Wl,--whole-archive", "-lmoec_model_runtime",
                 "-Wl,--no-whole-archive"});
  } else {
    args.insert(args.end(), {"-lmoec_model_main", "-lmoec_model_runtime"});
  }
  // The CUDA driver (libcuda.so.1, which the mgpu* runtime needs) comes
  // with the GPU's driver and may be missing where the model is linked.
  if (target == Target::Cuda)
    args.insert(args.end(),
                {"-lmoec_model_cuda", "-lmoec_cuda_runtime",
                 ("-Wl,-rpath," + libDir).str(), "-Wl,--allow-shlib-undefined"});
  else
    args.push_back("-lmoec_model_host");
  args.insert(args.end(), {"-lmoec_safetensors", "-L" MOEC_OPENMP_LIB_DIR,
                           "-Wl,-rpath," MOEC_OPENMP_LIB_DIR, "-lomp", "-lm"});
  std::vector<StringRef> argRefs(args.begin(), args.end());
  if (verbose) {
    errs() << "moec: link:";
    for (StringRef a : argRefs)
      errs() << " " << a;
    errs() << "\n";
  }
  std::string message;
  int status = sys::ExecuteAndWait(argRefs[0], argRefs, std::nullopt, {}, 0, 0,
                                   &message);
  if (status != 0)
    return fail("linking " + output + " failed" +
                (message.empty() ? "" : ": " + message) +
                " (the linker's messages are above)");
  if (!sharedLibrary)
    return 0;
  // The C API header, beside the library.
  SmallString<256> header(sys::path::parent_path(output));
  sys::path::append(header, "moec_model.h");
  std::error_code ec;
  raw_fd_ostream headerFile(header, ec);
  if (ec)
    return fail(header + ": " + ec.message());
  headerFile << kModelHeader;
  return 0;
}

/// The pipeline options of --kernel-options for `target`.
Expected<std::unique_ptr<mlir::moe::CpuPipelineOptions>>
cpuPipelineOptions(const mlir::moe::CpuTarget &target) {
  std::string parseErrors;
  raw_string_ostream errorStream(parseErrors);
  auto options = std::make_unique<mlir::moe::CpuPipelineOptions>();
  if (failed(options->parseFromString(kernelOptions, errorStream)))
    return createStringError(
        "--kernel-options: cannot parse '" + kernelOptions + "'" +
        (parseErrors.empty() ? "" : ": " + StringRef(parseErrors).trim()));
  options->cpu = target.cpu;
  options->cpuFeatures = cpuFeatures;
  // The model runtime serves the buffers from its arena.
  options->runtimeAlloc = true;
  return std::move(options);
}

/// Chooses the kernel shapes of `module` with `options` (what the pipeline's
/// first CPU pass does), so that a shape --kernel-options makes invalid is
/// reported as the option's error rather than as a failed lowering.
Error checkKernelOptions(mlir::ModuleOp module,
                         const mlir::moe::CpuPipelineOptions &options) {
  std::string message;
  mlir::ScopedDiagnosticHandler handler(module.getContext(),
                                        [&](mlir::Diagnostic &diagnostic) {
                                          if (message.empty())
                                            message = diagnostic.str();
                                          return mlir::success();
                                        });
  mlir::PassManager pm(module.getContext());
  pm.addPass(mlir::moe::createSelectCpuKernels(options.kernelSelection()));
  if (succeeded(pm.run(module)))
    return Error::success();
  return createStringError("--kernel-options '" + kernelOptions +
                           "': " + message);
}

/// Lowers the imported model for `target`, translates it to LLVM IR with
/// the runtime's entry point and `manifest`, and optimises it.
Expected<std::unique_ptr<llvm::Module>>
compileToLLVM(mlir::ModuleOp module, StringRef manifest,
              const mlir::moe::CpuTarget &target,
              llvm::LLVMContext &llvmContext) {
  {
    auto options = cpuPipelineOptions(target);
    if (!options)
      return options.takeError();
    if (!kernelOptions.empty())
      if (Error err = checkKernelOptions(module, **options))
        return std::move(err);
    Stage stage("lower");
    mlir::PassManager pm(module.getContext());
    mlir::moe::buildMoeToCpuPipeline(pm, **options);
    if (failed(pm.run(module)))
      return createStringError("lowering the model for the CPU failed (a "
                               "moec bug; the diagnostics above say where)");
  }
  std::unique_ptr<llvm::Module> llvmModule;
  {
    Stage stage("translate");
    auto translated =
        mlir::moe::translateForHost(module, llvmContext, manifest);
    if (!translated)
      return translated.takeError();
    llvmModule = std::move(*translated);
  }
  Stage stage("optimize");
  if (Error err = mlir::moe::optimizeForCpu(*llvmModule, target))
    return std::move(err);
  return std::move(llvmModule);
}

/// Writes `llvmModule` as the executable or shared library `outputPath`:
/// its object, in a temporary file, linked with the runtime in `libDir`.
int emitLinked(llvm::Module &llvmModule, const mlir::moe::CpuTarget &target,
               StringRef libDir) {
  SmallString<128> objectPath;
  int fd;
  if (std::error_code ec =
          sys::fs::createTemporaryFile("moec-model", "o", fd, objectPath))
    return fail("cannot create a temporary object file: " + ec.message());
  FileRemover removeObject(objectPath);
  {
    Stage stage("codegen");
    raw_fd_ostream object(fd, /*shouldClose=*/true);
    if (Error err = mlir::moe::emitCpuObject(llvmModule, target, object))
      return fail(toString(std::move(err)));
  }
  Stage stage("link");
  return link(objectPath, outputPath, emit == Emit::Lib, libDir);
}

/// Writes the PTX of every gpu.binary of `module` (lowered with
/// format=isa) to `os`, each module under a comment naming it.
void writePtx(mlir::ModuleOp module, raw_ostream &os) {
  module.walk([&](mlir::gpu::BinaryOp binary) {
    for (mlir::Attribute attr : binary.getObjects())
      if (auto object = dyn_cast<mlir::gpu::ObjectAttr>(attr))
        os << "// gpu.binary @" << binary.getSymName() << "\n"
           << object.getObject().getValue() << "\n";
  });
}

/// The CUDA half of compile(): `module` lowered by moe-to-cuda-pipeline
/// with device memory (one stream per forward pass), then the PTX, or the
/// host code (LLVM IR, or an object for this machine's CPU with the cubins
/// embedded, or that object linked with the GPU runtime).
int compileCuda(mlir::ModuleOp module, const moec::ModelConfig &config,
                std::unique_ptr<ToolOutputFile> &output, StringRef libDir) {
  std::string manifest =
      moec::modelManifest(module, config, moec::abi::manifest::kTargetCuda);
  {
    Stage stage("lower");
    mlir::moe::CudaPipelineOptions options;
    options.hostShared = false;
    options.format = emit == Emit::Ptx ? mlir::moe::CudaObjectFormat::isa
                                       : mlir::moe::CudaObjectFormat::bin;
    // bf16 builds run attention on the tensor cores too (bf16 operands,
    // docs/semantics.md); f32 builds keep it exact in f32.
    options.attentionTensorCores = dtype == moec::WeightType::BF16;
    mlir::PassManager pm(module.getContext());
    mlir::moe::buildMoeToCudaPipeline(pm, options);
    if (failed(pm.run(module)))
      return fail("lowering the model for the GPU failed (the diagnostics "
                  "above say where; ptxas comes from " +
                  options.toolkit + ")");
  }
  if (emit == Emit::Ptx) {
    writePtx(module, output->os());
    output->keep();
    return 0;
  }
  Expected<mlir::moe::CpuTarget> host = mlir::moe::resolveCpuTarget("host", "");
  if (!host)
    return fail("the host CPU: " + toString(host.takeError()));
  llvm::LLVMContext llvmContext;
  Expected<std::unique_ptr<llvm::Module>> translated = [&] {
    Stage stage("translate");
    return mlir::moe::translateForHost(module, llvmContext, manifest);
  }();
  if (!translated)
    return fail(toString(translated.takeError()));
  llvm::Module &llvmModule = **translated;
  {
    Stage stage("optimize");
    if (Error err = mlir::moe::optimizeForCpu(llvmModule, *host))
      return fail(toString(std::move(err)));
  }
  if (emit == Emit::Llvm) {
    llvmModule.print(output->os(), nullptr);
    output->keep();
    return 0;
  }
  if (emit == Emit::Obj) {
    Stage stage("codegen");
    if (Error err = mlir::moe::emitCpuObject(llvmModule, *host, output->os()))
      return fail(toString(std::move(err)));
    output->keep();
    return 0;
  }
  output.reset(); // the linker writes the output itself
  return emitLinked(llvmModule, *host, libDir);
}

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
  if (target == Target::Cuda && dtype.getNumOccurrences() == 0)
    dtype = moec::WeightType::BF16;
  if (target == Target::Cpu && emit == Emit::Ptx)
    return fail("--emit ptx needs --target cuda (the CPU has no device code)");
  Expected<mlir::moe::CpuTarget> cpu =
      mlir::moe::resolveCpuTarget(cpuName, cpuFeatures);
  if (!cpu)
    return fail("--cpu " + cpuName +
                (cpuFeatures.empty() ? "" : " --cpu-features " + cpuFeatures) +
                ": " + toString(cpu.takeError()));
  if (verbose)
    errs() << "moec: cpu " << cpu->cpu << ": " << cpu->vectorBits
           << "-bit vectors, " << cpu->vectorRegisters << " registers"
           << (cpu->fma ? ", FMA" : "")
           << (cpu->avx512bf16 ? ", AVX-512 BF16" : "") << "\n";

  // Every dialect and interface the lowering reaches (bufferization and
  // LLVM conversion interfaces live in extensions).
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary translates the kernels to LLVM IR in the pipeline.
  mlir::registerAllToLLVMIRTranslations(registry);
  mlir::moe::registerMoeToLLVMInterfaces(registry);
  mlir::moe::registerGpuHostOpEffects(registry);
  mlir::MLIRContext context(registry);
  mlir::OwningOpRef<mlir::ModuleOp> module;
  {
    Stage stage("import");
    module = moec::importModel(context, *config, dtype, configPath);
    if (failed(mlir::verify(*module)))
      return fail("the imported module does not verify (a moec bug)");
  }

  // Executables and libraries link the runtime: find it before the work.
  std::string libDir;
  if (emit == Emit::Exe || emit == Emit::Lib) {
    Expected<std::string> dir = runtimeLibDir();
    if (!dir)
      return fail(toString(dir.takeError()));
    libDir = *dir;
  }

  std::string error;
  std::unique_ptr<ToolOutputFile> output =
      mlir::openOutputFile(outputPath, &error);
  if (!output)
    return fail(outputPath + ": " + error);
  if (emit == Emit::Mlir) {
    module->print(output->os());
    output->keep();
    return 0;
  }
  if (target == Target::Cuda)
    return compileCuda(*module, *config, output, libDir);

  llvm::LLVMContext llvmContext;
  Expected<std::unique_ptr<llvm::Module>> compiled = compileToLLVM(
      *module,
      moec::modelManifest(*module, *config, moec::abi::manifest::kTargetCpu),
      *cpu, llvmContext);
  if (!compiled)
    return fail(toString(compiled.takeError()));
  std::unique_ptr<llvm::Module> llvmModule = std::move(*compiled);
  if (emit == Emit::Llvm) {
    llvmModule->print(output->os(), nullptr);
    output->keep();
    return 0;
  }
  if (emit == Emit::Obj) {
    Stage stage("codegen");
    if (Error err = mlir::moe::emitCpuObject(*llvmModule, *cpu, output->os()))
      return fail(toString(std::move(err)));
    output->keep();
    return 0;
  }

  output.reset(); // the linker writes the output itself
  return emitLinked(*llvmModule, *cpu, libDir);
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
