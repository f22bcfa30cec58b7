//===- Pipelines.h - moe lowering pipelines ---------------------*- C++ -*-===//

#ifndef MOEC_CODEGEN_PIPELINES_H
#define MOEC_CODEGEN_PIPELINES_H

#include "codegen/Passes.h"

#include "mlir/Pass/PassOptions.h"

#include <string>

namespace mlir {
class OpPassManager;

namespace moe {

/// The CUDA toolkit that CMake found, or "" (then MLIR's own search applies).
const char *defaultCudaToolkit();

/// What gpu-module-to-binary puts in the gpu.binary.
enum class CudaObjectFormat { bin, fatbin, isa, llvm, offloading };

struct CpuPipelineOptions : PassPipelineOptions<CpuPipelineOptions> {
  Option<bool> openmp{*this, "openmp",
                      llvm::cl::desc("Run parallel loops on every core "
                                     "through OpenMP (link libomp)"),
                      llvm::cl::init(true)};
  // The target and the kernel shapes (moe-select-cpu-kernels' options: a
  // size of 0 or an empty kernel is the target's choice).
  Option<std::string> cpu{
      *this, "cpu",
      llvm::cl::desc("LLVM name of the target CPU (default: the host)"),
      llvm::cl::init("")};
  Option<std::string> cpuFeatures{
      *this, "cpu-features",
      llvm::cl::desc("LLVM CPU features on top of the CPU's (+avx2,-avx512f)"),
      llvm::cl::init("")};
  Option<std::string> kernel{
      *this, "kernel",
      llvm::cl::desc("Grouped GEMM micro-kernel: dot or outer"),
      llvm::cl::init("")};
  Option<int64_t> tileRows{*this, "tile-rows",
                           llvm::cl::desc("Grouped GEMM: rows per work tile"),
                           llvm::cl::init(0)};
  Option<int64_t> tileCols{
      *this, "tile-cols", llvm::cl::desc("Grouped GEMM: columns per work tile"),
      llvm::cl::init(0)};
  Option<int64_t> tileK{
      *this, "tile-k",
      llvm::cl::desc("Grouped GEMM: K elements per pass over a work tile"),
      llvm::cl::init(0)};
  Option<int64_t> microRows{
      *this, "micro-rows",
      llvm::cl::desc("Grouped GEMM: rows of a register block"),
      llvm::cl::init(0)};
  Option<int64_t> microCols{
      *this, "micro-cols",
      llvm::cl::desc("Grouped GEMM: columns of a register block"),
      llvm::cl::init(0)};
  Option<int64_t> vectorWidth{
      *this, "vector-width",
      llvm::cl::desc("Grouped GEMM: f32 lanes per vector"), llvm::cl::init(0)};
  Option<bool> bf16Dot{
      *this, "bf16-dot",
      llvm::cl::desc("Grouped GEMM: bf16 operands through the AVX-512 BF16 "
                     "dot product (needs avx512bf16)"),
      llvm::cl::init(false)};
  Option<int64_t> headsPerStep{
      *this, "heads-per-step",
      llvm::cl::desc("Attention: heads of a GQA group per work item"),
      llvm::cl::init(0)};
  Option<int64_t> queryBlock{
      *this, "query-block",
      llvm::cl::desc("Attention: positions per work item"), llvm::cl::init(0)};
  Option<int64_t> keyBlock{*this, "key-block",
                           llvm::cl::desc("Attention: keys per softmax step"),
                           llvm::cl::init(0)};
  Option<int64_t> attentionMicroRows{
      *this, "attention-micro-rows",
      llvm::cl::desc("Attention: keys or head dimensions per register block"),
      llvm::cl::init(0)};
  Option<bool> staticRowBound{
      *this, "static-row-bound",
      llvm::cl::desc("Size moe.dispatch's rows by the T·K slots, as the CUDA "
                     "pipeline does, instead of reading the row count back"),
      llvm::cl::init(false)};
  Option<bool> runtimeAlloc{
      *this, "runtime-alloc",
      llvm::cl::desc("Allocate buffers with _mlir_memref_to_llvm_alloc / "
                     "_free, which the model runtime implements as a caching "
                     "arena, instead of malloc / free"),
      llvm::cl::init(false)};

  /// The options of moe-select-cpu-kernels, the pipeline's first CPU pass.
  SelectCpuKernelsOptions kernelSelection() const;
};

struct CudaPipelineOptions : PassPipelineOptions<CudaPipelineOptions> {
  Option<std::string> chip{*this, "chip",
                           llvm::cl::desc("GPU architecture of the cubin"),
                           llvm::cl::init("sm_90a")};
  Option<std::string> features{
      *this, "features",
      llvm::cl::desc("PTX features; CUDA 13 needs at least +ptx80 for sm_90a"),
      llvm::cl::init("+ptx80")};
  ListOption<int64_t> tileSizes{
      *this, "tile-sizes",
      llvm::cl::desc("Threads per block along each parallel dimension"),
      llvm::cl::list_init<int64_t>({16, 16})};
  Option<unsigned> optLevel{*this, "opt-level",
                            llvm::cl::desc("Device code optimisation level"),
                            llvm::cl::init(3)};
  Option<CudaObjectFormat> format{
      *this, "format", llvm::cl::desc("Device object kind"),
      llvm::cl::init(CudaObjectFormat::bin),
      llvm::cl::values(
          clEnumValN(CudaObjectFormat::bin, "bin", "cubin, assembled by ptxas"),
          clEnumValN(CudaObjectFormat::fatbin, "fatbin",
                     "fatbinary holding the cubin and the PTX"),
          clEnumValN(CudaObjectFormat::isa, "isa", "PTX text"),
          clEnumValN(CudaObjectFormat::llvm, "llvm", "LLVM bitcode"),
          clEnumValN(CudaObjectFormat::offloading, "offloading",
                     "LLVM offloading bitcode"))};
  Option<std::string> toolkit{
      *this, "toolkit",
      llvm::cl::desc("CUDA toolkit holding ptxas (default: found at build "
                     "time)"),
      llvm::cl::init(defaultCudaToolkit())};
  Option<bool> hostShared{
      *this, "host-shared",
      llvm::cl::desc("Allocate buffers in managed memory the host can read "
                     "(for tests that print results from the host) instead "
                     "of device memory on one stream"),
      llvm::cl::init(false)};
  Option<bool> tensorCores{
      *this, "tensor-cores",
      llvm::cl::desc("On sm_90a, lower bf16 grouped matmuls to the persistent "
                     "wgmma + TMA kernel (moe-tile-grouped-matmul-sm90), "
                     "with bf16 activations; otherwise every GEMM takes the "
                     "generic f32 lowering"),
      llvm::cl::init(true)};
  Option<int64_t> smCount{
      *this, "sm-count",
      llvm::cl::desc("SMs of the target GPU: CTAs of the persistent kernels"),
      llvm::cl::init(132)};
  Option<int64_t> stages{
      *this, "stages",
      llvm::cl::desc("Shared-memory stages of the tensor-core GEMM's TMA ring"),
      llvm::cl::init(4)};
  Option<int64_t> tileCols{
      *this, "tile-cols",
      llvm::cl::desc("Weight rows per work item of the tensor-core GEMM: 128 "
                     "(one warpgroup) or 256 (two warpgroups, 128 x 256 tiles)"),
      llvm::cl::init(128)};
  Option<bool> combineScatter{
      *this, "combine-scatter",
      llvm::cl::desc("Add the rows of a top-1/top-2 combine into their tokens "
                     "in the down projection's epilogue (atomic f32 adds) "
                     "instead of gathering them in a kernel of their own"),
      llvm::cl::init(false)};

  Option<bool> attentionTensorCores{
      *this, "attention-tensor-cores",
      llvm::cl::desc("On sm_90a, lower attention (causal GQA, sliding "
                     "window, GMHA) to the flash-attention kernel on tensor "
                     "cores (moe-tile-attention-sm90): q, k, v and the "
                     "softmax weights rounded to bf16; otherwise attention "
                     "takes the generic f32 lowering. moec compile sets it "
                     "for bf16 builds"),
      llvm::cl::init(false)};
  Option<int64_t> attentionWarps{
      *this, "attention-warps",
      llvm::cl::desc("Warps per CTA of the tensor-core attention kernel, 4 "
                     "(64 query rows) or 8 (128)"),
      llvm::cl::init(4)};

  /// Whether the grouped matmuls get the sm_90a tensor-core kernel.
  bool useWgmma() const { return tensorCores && chip == "sm_90a"; }
  /// Whether attention gets the sm_90a tensor-core kernel.
  bool useMmaAttention() const {
    return attentionTensorCores && chip == "sm_90a";
  }
};

/// moe (tensors) -> LLVM dialect for the host CPU.
void buildMoeToCpuPipeline(OpPassManager &pm,
                           const CpuPipelineOptions &options);

/// moe (tensors) -> host LLVM dialect + gpu.binary holding the kernels.
void buildMoeToCudaPipeline(OpPassManager &pm,
                            const CudaPipelineOptions &options);

/// Registers moe-to-cpu-pipeline and moe-to-cuda-pipeline.
void registerPipelines();

} // namespace moe
} // namespace mlir

#endif // MOEC_CODEGEN_PIPELINES_H
