//===- SelectCpuKernels.cpp - kernel shapes from the target CPU -----------===//
//
// Every decision about the shape of a CPU kernel is taken here, from the
// CpuTarget, and recorded on the op as `moe.kernel`; the lowerings only
// follow it. The rules and the measurements behind them are in the pass
// description (codegen/Passes.td) and docs/performance.md.
//
//===----------------------------------------------------------------------===//

#include "codegen/AttentionUtils.h"
#include "codegen/Passes.h"
#include "codegen/cpu/CpuTarget.h"
#include "dialect/MoeDialect.h"
#include "dialect/MoeOps.h"

#include "mlir/Interfaces/FunctionInterfaces.h"

#include <numeric>

namespace mlir::moe {
#define GEN_PASS_DEF_SELECTCPUKERNELS
#include "codegen/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// The grouped-GEMM micro-kernel: outer products on packed panels, whose
/// registers each hold vector-width outputs. The dot kernel (one output per
/// register) measured 0.45-0.7x of it on AVX2, and 0.6-0.75x on AVX-512 in
/// bench/grouped_gemm.py though within noise of it in whole-model prefill
/// (docs/performance.md); it stays for the AVX-512 BF16 dot product, which
/// multiplies along K.
MatmulMicroKernel kernelKindFor(bool bf16Dot) {
  return bf16Dot ? MatmulMicroKernel::dot : MatmulMicroKernel::outer;
}

/// The sizes of a `kind` kernel on `target`, before the overrides.
CpuMatmulKernelAttr kernelShapeFor(MLIRContext *ctx, MatmulMicroKernel kind,
                                   const CpuTarget &target) {
  auto lanes = static_cast<int64_t>(target.f32Lanes());
  bool wide = target.vectorRegisters >= 32;
  if (kind == MatmulMicroKernel::dot)
    // Accumulators in half the registers: 4 x 4, or 4 x 3 of 16.
    return CpuMatmulKernelAttr::get(ctx, kind, /*tileRows=*/64,
                                    /*tileCols=*/64, /*tileK=*/1024,
                                    /*microRows=*/4,
                                    /*microCols=*/wide ? 4 : 3, lanes, false);
  // 6 rows of 2 vectors (4 with 32 registers): 12 (24) accumulators, the
  // panel vectors and a broadcast. 192 rows are 32 blocks, over which the
  // panel of a K chunk of 512 is packed once.
  return CpuMatmulKernelAttr::get(ctx, kind, /*tileRows=*/192,
                                  /*tileCols=*/64, /*tileK=*/512,
                                  /*microRows=*/6,
                                  /*microCols=*/(wide ? 4 : 2) * lanes, lanes,
                                  false);
}

/// The grouped-GEMM kernel of a decode step (`moe.decode_step`), whose
/// GEMMs have about one row per sequence and group, so each weight element
/// is read from memory for a row or two and the step is bound by reading
/// the weights. The outer kernel's packing then copies every weight once
/// more; the dot kernel reads them in place. One row by 4 columns per
/// register block (4 accumulators each along K): at the design brief's
/// shape on Zen 3 it ran a decode step in 0.55x the time of the outer
/// kernel at B = 1 and 0.58x at B = 8; 1 x 8, 2 x 4 and 4 x 3 were slower
/// (docs/performance.md).
CpuMatmulKernelAttr decodeShapeFor(MLIRContext *ctx, const CpuTarget &target) {
  return CpuMatmulKernelAttr::get(ctx, MatmulMicroKernel::dot,
                                  /*tileRows=*/64, /*tileCols=*/64,
                                  /*tileK=*/1024, /*microRows=*/1,
                                  /*microCols=*/4, target.f32Lanes(), false);
}

/// The attention kernel for `target` and an op with `group` heads per
/// kv-head of `headDim` dimensions, before the overrides. A work item's query
/// rows are 2 row vectors, as many heads of the group as divide them (they
/// then share every key and value row) times positions; its register blocks
/// are 4 keys or dimensions with 16 registers (8 accumulators, 2 row vectors
/// and a broadcast) and 8 with 32 (16 + 2 + 1). 3 row vectors with 16
/// registers (the whole file) were 12% faster in the attention
/// benchmark on AVX2, but LLVM then spills in some loops; 3 with 32 were
/// no faster. Key blocks of 64 (32 and 128 were no faster). Measured at
/// T = 4096, 16/8 heads, Dh = 64 (bench/attention_scaling.py,
/// docs/performance.md).
AttentionKernelAttr attentionShapeFor(MLIRContext *ctx, const CpuTarget &target,
                                      int64_t lanes, int64_t group,
                                      int64_t headDim) {
  int64_t rows = 2 * lanes;
  int64_t heads = std::gcd(group, rows);
  int64_t microRows =
      std::gcd<int64_t>(target.vectorRegisters >= 32 ? 8 : 4, headDim);
  return AttentionKernelAttr::get(ctx, heads, rows / heads, /*keyBlock=*/64,
                                  microRows, lanes);
}

struct SelectCpuKernelsPass
    : moe::impl::SelectCpuKernelsBase<SelectCpuKernelsPass> {
  using SelectCpuKernelsBase::SelectCpuKernelsBase;

  void runOnOperation() override {
    Operation *root = getOperation();
    llvm::Expected<CpuTarget> target = resolveCpuTarget(cpu, cpuFeatures);
    if (!target) {
      root->emitError() << "moe-select-cpu-kernels: "
                        << llvm::toString(target.takeError());
      return signalPassFailure();
    }
    if (bf16Dot && !target->avx512bf16) {
      InFlightDiagnostic diag = root->emitError();
      diag << "moe-select-cpu-kernels: bf16-dot needs a CPU with avx512bf16, "
              "and "
           << target->cpu;
      if (!cpuFeatures.empty())
        diag << " with " << cpuFeatures;
      diag << " has none";
      return signalPassFailure();
    }
    CpuMatmulKernelAttr matmul = withOverrides(*target, /*decode=*/false);
    CpuMatmulKernelAttr decodeMatmul = withOverrides(*target, /*decode=*/true);
    if (!matmul || !decodeMatmul)
      return signalPassFailure();

    MoeDialect::KernelAttrHelper kernelAttr(&getContext());
    MoeDialect::DecodeStepAttrHelper decodeStep(&getContext());
    WalkResult walk = root->walk([&](Operation *op) {
      if (auto gemm = dyn_cast<GroupedMatmulOp>(op)) {
        if (!gemm.getWeight().getType().hasStaticShape())
          return WalkResult::advance();
        auto func = op->getParentOfType<FunctionOpInterface>();
        kernelAttr.setAttr(
            op, func && decodeStep.isAttrPresent(func) ? decodeMatmul : matmul);
        return WalkResult::advance();
      }
      // An attention with a query offset keeps the generic lowering
      // (moe-tile-attention leaves it alone).
      if (!isa<AttentionOp, GroupedAttentionOp>(op) ||
          AttentionKeyRange::of(op).queryOffset)
        return WalkResult::advance();
      AttentionKernelAttr attention = attentionShape(op, *target);
      if (!attention)
        return WalkResult::interrupt();
      kernelAttr.setAttr(op, attention);
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      signalPassFailure();
  }

  /// The target's kernel for attention op `op` with the options that are set
  /// in place of its fields; null (after an error) when it does not fit.
  AttentionKernelAttr attentionShape(Operation *op, const CpuTarget &target) {
    auto query = cast<RankedTensorType>(op->getOperand(0).getType());
    auto key = cast<RankedTensorType>(op->getOperand(1).getType());
    int64_t group = query.getDimSize(2) / key.getDimSize(2);
    int64_t headDim = query.getDimSize(3);
    int64_t lanes = vectorWidth ? int64_t(vectorWidth)
                                : static_cast<int64_t>(target.f32Lanes());
    AttentionKernelAttr chosen =
        attentionShapeFor(&getContext(), target, lanes, group, headDim);
    int64_t heads =
        headsPerStep ? int64_t(headsPerStep) : chosen.getHeadsPerStep();
    if (group % heads) {
      op->emitOpError() << "heads-per-step " << heads
                        << " does not divide the heads per kv-head (" << group
                        << ")";
      return {};
    }
    // A forced head count keeps about the target's rows: the fewest
    // positions that reach them in whole vectors.
    int64_t unit = lanes / std::gcd(heads, lanes);
    int64_t positions =
        queryBlock ? int64_t(queryBlock)
                   : llvm::alignTo(
                         llvm::divideCeil(chosen.getQueryRows(), heads), unit);
    int64_t microRows = attentionMicroRows ? int64_t(attentionMicroRows)
                                           : chosen.getMicroRows();
    if (headDim % microRows) {
      op->emitOpError() << "attention-micro-rows " << microRows
                        << " does not divide the head dimension (" << headDim
                        << ")";
      return {};
    }
    auto emitErrorOnOp = [&] { return op->emitOpError(); };
    function_ref<InFlightDiagnostic()> emitError = emitErrorOnOp;
    return AttentionKernelAttr::getChecked(
        emitError, &getContext(), heads, positions,
        keyBlock ? int64_t(keyBlock) : chosen.getKeyBlock(), microRows, lanes);
  }

  /// The target's grouped-GEMM kernel (of a decode step when `decode`) with
  /// the options that are set in place of its fields; null (after an error)
  /// when the result is invalid.
  CpuMatmulKernelAttr withOverrides(const CpuTarget &target, bool decode) {
    MatmulMicroKernel kind =
        decode ? MatmulMicroKernel::dot : kernelKindFor(bf16Dot);
    if (!kernel.empty()) {
      std::optional<MatmulMicroKernel> parsed =
          symbolizeMatmulMicroKernel(kernel);
      if (!parsed) {
        getOperation()->emitError()
            << "moe-select-cpu-kernels: kernel must be dot or outer, got '"
            << kernel << "'";
        return {};
      }
      kind = *parsed;
    }
    CpuMatmulKernelAttr chosen =
        decode && kind == MatmulMicroKernel::dot
            ? decodeShapeFor(&getContext(), target)
            : kernelShapeFor(&getContext(), kind, target);
    auto pick = [](int64_t option, int64_t value) {
      return option ? option : value;
    };
    auto emitErrorOnRoot = [&] { return getOperation()->emitError(); };
    function_ref<InFlightDiagnostic()> emitError = emitErrorOnRoot;
    return CpuMatmulKernelAttr::getChecked(
        emitError, &getContext(), kind, pick(tileRows, chosen.getTileRows()),
        pick(tileCols, chosen.getTileCols()), pick(tileK, chosen.getTileK()),
        pick(microRows, chosen.getMicroRows()),
        pick(microCols, chosen.getMicroCols()),
        pick(vectorWidth, chosen.getVectorWidth()), bool(bf16Dot));
  }
};

} // namespace
