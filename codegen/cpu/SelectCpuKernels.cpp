//===- SelectCpuKernels.cpp - kernel shapes from the target CPU -----------===//
//
// Every decision about the shape of a CPU kernel is taken here, from the
// CpuTarget, and recorded on the op as `moe.kernel`; the lowerings only
// follow it. The rules and the measurements behind them are in the pass
// description (codegen/Passes.td) and docs/performance.md.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"
#include "codegen/cpu/CpuTarget.h"
#include "dialect/MoeDialect.h"
#include "dialect/MoeOps.h"

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

/// Heads of a GQA group of `group` heads per attention iteration: the
/// largest divisor of `group` up to 8, whatever the target. Each key and
/// value row an iteration loads feeds that many heads and their softmax
/// chains overlap; past the register file the accumulators spill to L1,
/// which costs less than the shared loads save. Measured at T = 4096,
/// Dh = 64 (bench/attention_scaling.py, docs/performance.md): 16 heads on 8
/// kv-heads, AVX2: 2.34 s at 1 head per step, 1.44 s at 2; 8 heads on one,
/// AVX2: 0.63, 0.42, 0.32 s at 2, 4, 8; AVX-512: 0.46, 0.40, 0.29 s.
int64_t headsPerStepFor(int64_t group) {
  for (int64_t step = std::min<int64_t>(group, 8); step > 1; --step)
    if (group % step == 0)
      return step;
  return 1;
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
    CpuMatmulKernelAttr matmul = withOverrides(*target);
    if (!matmul)
      return signalPassFailure();

    MoeDialect::KernelAttrHelper kernelAttr(&getContext());
    WalkResult walk = root->walk([&](Operation *op) {
      if (auto gemm = dyn_cast<GroupedMatmulOp>(op)) {
        if (gemm.getWeight().getType().hasStaticShape())
          kernelAttr.setAttr(op, matmul);
        return WalkResult::advance();
      }
      if (!isa<AttentionOp, GroupedAttentionOp>(op))
        return WalkResult::advance();
      auto query = cast<RankedTensorType>(op->getOperand(0).getType());
      auto key = cast<RankedTensorType>(op->getOperand(1).getType());
      int64_t group = query.getDimSize(2) / key.getDimSize(2);
      int64_t step = headsPerStepFor(group);
      if (headsPerStep) {
        step = headsPerStep;
        if (group % step) {
          op->emitOpError()
              << "heads-per-step " << step
              << " does not divide the heads per kv-head (" << group << ")";
          return WalkResult::interrupt();
        }
      }
      kernelAttr.setAttr(op, AttentionKernelAttr::get(&getContext(), step));
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      signalPassFailure();
  }

  /// The target's grouped-GEMM kernel with the options that are set in place
  /// of its fields; null (after an error) when the result is invalid.
  CpuMatmulKernelAttr withOverrides(const CpuTarget &target) {
    MatmulMicroKernel kind = kernelKindFor(bf16Dot);
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
    CpuMatmulKernelAttr chosen = kernelShapeFor(&getContext(), kind, target);
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
