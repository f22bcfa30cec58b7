//===- WeightToLLVM.cpp - the moe dialect's LLVM lowering ----------------===//
//
// What of the moe dialect reaches the LLVM dialect: moe.weight's buffer
// form, lowered by `convert-to-llvm` through the dialect's
// ConvertToLLVMPatternInterface, and the moe attributes on functions, which
// translate to nothing in LLVM IR.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"
#include "dialect/MoeDialect.h"
#include "dialect/MoeOps.h"

#include "mlir/Conversion/ConvertToLLVM/ToLLVMInterface.h"
#include "mlir/Conversion/LLVMCommon/MemRefBuilder.h"
#include "mlir/Conversion/LLVMCommon/Pattern.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Target/LLVMIR/LLVMTranslationInterface.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

/// `moe.weight %table[%slot] : memref<...>`: the pointer in the table's
/// entry, described by the memref's static shape (offset 0, row-major
/// strides; the allocated and aligned pointers are both the entry).
struct WeightToLLVM : ConvertOpToLLVMPattern<WeightOp> {
  using ConvertOpToLLVMPattern::ConvertOpToLLVMPattern;

  LogicalResult
  matchAndRewrite(WeightOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto type = dyn_cast<MemRefType>(op.getType());
    if (!type)
      return rewriter.notifyMatchFailure(op, "not a buffer");
    Location loc = op.getLoc();
    Type ptr = LLVM::LLVMPointerType::get(rewriter.getContext());
    Value entry = LLVM::GEPOp::create(rewriter, loc, ptr, ptr,
                                      adaptor.getTable(),
                                      ArrayRef<LLVM::GEPArg>{adaptor.getSlot()});
    Value data = LLVM::LoadOp::create(rewriter, loc, ptr, entry);
    rewriter.replaceOp(op, Value(MemRefDescriptor::fromStaticShape(
                               rewriter, loc, *getTypeConverter(), type, data)));
    return success();
  }
};

struct MoeToLLVMPatterns : public ConvertToLLVMPatternInterface {
  using ConvertToLLVMPatternInterface::ConvertToLLVMPatternInterface;

  void populateConvertToLLVMConversionPatterns(
      ConversionTarget &target, LLVMTypeConverter &typeConverter,
      RewritePatternSet &patterns) const override {
    patterns.add<WeightToLLVM>(typeConverter);
  }
};

/// The moe attributes on functions (`moe.layers`, `moe.weights`,
/// `moe.stats_*`) have no LLVM IR meaning.
/// Without an interface, translation warns once per attribute and each
/// warning prints the whole function, which took seconds for a real model.
struct MoeToLLVMIRTranslation : public LLVMTranslationDialectInterface {
  using LLVMTranslationDialectInterface::LLVMTranslationDialectInterface;
};

} // namespace

void mlir::moe::registerMoeToLLVMInterfaces(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *, MoeDialect *dialect) {
    dialect->addInterfaces<MoeToLLVMPatterns, MoeToLLVMIRTranslation>();
  });
}
