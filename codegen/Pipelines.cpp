//===- Pipelines.cpp - moe lowering pipelines -----------------------------===//

#include "codegen/Pipelines.h"
#include "codegen/Passes.h"
#include "passes/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

const char *moe::defaultCudaToolkit() { return MOEC_DEFAULT_CUDA_TOOLKIT; }

static const char *stringifyFormat(moe::CudaObjectFormat format) {
  switch (format) {
  case moe::CudaObjectFormat::bin:
    return "bin";
  case moe::CudaObjectFormat::fatbin:
    return "fatbin";
  case moe::CudaObjectFormat::isa:
    return "isa";
  case moe::CudaObjectFormat::llvm:
    return "llvm";
  case moe::CudaObjectFormat::offloading:
    return "offloading";
  }
  llvm_unreachable("unknown CUDA object format");
}

/// The steps both targets share: blocks decomposed, moe ops to linalg on
/// tensors, then buffers with explicit deallocation, then parallel loops.
/// `addKernelPasses` adds a target's own lowerings of moe kernel ops, which
/// run before the generic ones of convert-moe-to-linalg.
static void buildTensorToParallelLoops(
    OpPassManager &pm, bool staticRowBound, bool keepSingleIterationLoops,
    function_ref<void(OpPassManager &)> addKernelPasses = nullptr) {
  pm.addPass(moe::createDecomposeMoeBlock());
  pm.addPass(moe::createFuseRoutingWeights());
  pm.addPass(moe::createLowerRouting());
  if (addKernelPasses)
    addKernelPasses(pm);
  pm.addPass(moe::createConvertMoeToLinalg({staticRowBound}));
  pm.addPass(createCanonicalizerPass());
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  bufferization::buildBufferDeallocationPipeline(pm);
  pm.addPass(createConvertBufferizationToMemRefPass());
  pm.addPass(moe::createLowerExpandShape());
  // Kernel lowerings (attention, the CPU grouped GEMM) emit scf.forall
  // (parallel on tensors); on buffers it is an scf.parallel like the loops
  // of the linalg ops.
  pm.addPass(createForallToParallelLoopPass());
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToParallelLoopsPass());
  // The canonicalizer would inline a parallel loop of one iteration (a
  // reduction into a single element) into the host code, which on the GPU
  // must stay a kernel.
  if (!keepSingleIterationLoops)
    pm.addPass(createCanonicalizerPass());
}

moe::SelectCpuKernelsOptions moe::CpuPipelineOptions::kernelSelection() const {
  SelectCpuKernelsOptions select;
  select.cpu = cpu;
  select.cpuFeatures = cpuFeatures;
  select.kernel = kernel;
  select.tileRows = tileRows;
  select.tileCols = tileCols;
  select.tileK = tileK;
  select.microRows = microRows;
  select.microCols = microCols;
  select.vectorWidth = vectorWidth;
  select.bf16Dot = bf16Dot;
  select.headsPerStep = headsPerStep;
  select.queryBlock = queryBlock;
  select.keyBlock = keyBlock;
  select.attentionMicroRows = attentionMicroRows;
  return select;
}

void moe::buildMoeToCpuPipeline(OpPassManager &pm,
                                const CpuPipelineOptions &options) {
  buildTensorToParallelLoops(
      pm, options.staticRowBound, /*keepSingleIterationLoops=*/false,
      [&](OpPassManager &kernels) {
        kernels.addPass(moe::createSelectCpuKernels(options.kernelSelection()));
        kernels.addPass(moe::createTileGroupedMatmul());
        kernels.addPass(moe::createTileAttention());
      });
  if (options.openmp) {
    pm.addPass(createConvertSCFToOpenMPPass());
    // Inlines the memref.alloca_scope wrapped around each loop body: our
    // bodies allocate nothing, and scf-to-cf cannot lower a scope holding
    // loops.
    pm.addPass(createCanonicalizerPass());
  }
  // expand-strided-metadata emits affine.apply: lower affine after it.
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  // The grouped-GEMM kernel's vector ops: masked transfers become masked
  // loads and stores, x86vector ops LLVM's x86 intrinsics.
  ConvertVectorToLLVMPassOptions vectorToLLVM;
  vectorToLLVM.x86Vector = true; // x86vector.avx512.dot (option bf16-dot)
  pm.addPass(createConvertVectorToLLVMPass(vectorToLLVM));
  if (options.runtimeAlloc) {
    FinalizeMemRefToLLVMConversionPassOptions memrefToLLVM;
    memrefToLLVM.useGenericFunctions = true;
    pm.addPass(createFinalizeMemRefToLLVMConversionPass(memrefToLLVM));
  }
  pm.addPass(createConvertToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void moe::buildMoeToCudaPipeline(OpPassManager &pm,
                                 const CudaPipelineOptions &options) {
  // Row buffers sized without reading device memory back on the host.
  buildTensorToParallelLoops(
      pm, /*staticRowBound=*/true, /*keepSingleIterationLoops=*/true,
      [&](OpPassManager &kernels) {
        if (options.useWgmma())
          kernels.addPass(moe::createTileGroupedMatmulSm90(
              {options.stages, options.smCount, options.tileCols,
               options.combineScatter}));
        if (options.useMmaAttention())
          kernels.addPass(moe::createTileAttentionSm90(
              {options.smCount, options.attentionWarps}));
      });
  // Tiles of each parallel loop nest become thread blocks and the points of
  // a tile their threads; reductions stay sequential loops in each thread.
  pm.addNestedPass<func::FuncOp>(createParallelLoopTilingPass(
      llvm::to_vector(options.tileSizes), /*noMinMaxBounds=*/true));
  pm.addNestedPass<func::FuncOp>(createGpuMapParallelLoopsPass());
  pm.addNestedPass<func::FuncOp>(createConvertParallelLoopToGpuPass());
  pm.addPass(createGpuKernelOutliningPass());
  pm.addPass(moe::createMapAllocsToGpu({options.hostShared}));
  if (!options.hostShared) {
    // One stream for the whole forward pass: the layer functions inlined
    // into it (their kernels stay shared), then every GPU op chained in
    // program order, with one synchronisation at the end.
    pm.addPass(moe::createInlineLayers());
    pm.addNestedPass<func::FuncOp>(createGpuAsyncRegionPass());
  }

  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = options.features;
  target.optLevel = options.optLevel;
  pm.addPass(createGpuNVVMAttachTarget(target));

  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  // The tensor-core kernels' TMA, mbarrier ops (device) and descriptor
  // creation (host).
  pm.addPass(createConvertNVGPUToNVVMPass());
  OpPassManager &device = pm.nest<gpu::GPUModuleOp>();
  device.addPass(createConvertGpuOpsToNVVMOps());
  device.addPass(createCanonicalizerPass());
  device.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createGpuToLLVMConversionPass());
  pm.addPass(createConvertToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());

  GpuModuleToBinaryPassOptions binary;
  binary.toolkitPath = options.toolkit;
  binary.compilationTarget = stringifyFormat(options.format);
  pm.addPass(createGpuModuleToBinaryPass(binary));
}

void moe::registerPipelines() {
  PassPipelineRegistration<CpuPipelineOptions>(
      "moe-to-cpu-pipeline",
      "Lower moe ops on tensors to the LLVM dialect for the host CPU, with "
      "parallel loops on OpenMP threads",
      buildMoeToCpuPipeline);
  PassPipelineRegistration<CudaPipelineOptions>(
      "moe-to-cuda-pipeline",
      "Lower moe ops on tensors to host LLVM dialect code that launches GPU "
      "kernels, compiled into a gpu.binary (an sm_90a cubin by default)",
      buildMoeToCudaPipeline);
}
