//===- TestExpertSchedule.cpp - evaluate expert schedules in tests --------===//
//
// moe-test-expert-schedule: for each function carrying
// `moe.expert_schedule` and `moe.num_layers`, attaches
// `moe.experts_per_layer`, the E_l of every layer, so that lit tests can
// check ExpertScheduleAttr::getNumExperts against docs/semantics.md §4.
//
//===----------------------------------------------------------------------===//

#include "dialect/MoeAttrs.h"
#include "test/lib/TestPasses.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/Pass/Pass.h"

using namespace mlir;

namespace {
struct TestExpertSchedulePass
    : PassWrapper<TestExpertSchedulePass, OperationPass<func::FuncOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(TestExpertSchedulePass)

  StringRef getArgument() const final { return "moe-test-expert-schedule"; }
  StringRef getDescription() const final {
    return "Attach the per-layer expert counts of a function's "
           "moe.expert_schedule (test only)";
  }

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    auto schedule =
        func->getAttrOfType<moe::ExpertScheduleAttr>("moe.expert_schedule");
    auto numLayers = func->getAttrOfType<IntegerAttr>("moe.num_layers");
    if (!schedule || !numLayers)
      return;
    SmallVector<int64_t> counts;
    for (int64_t layer = 0; layer < numLayers.getInt(); ++layer)
      counts.push_back(schedule.getNumExperts(layer, numLayers.getInt()));
    func->setAttr("moe.experts_per_layer",
                  Builder(func).getDenseI64ArrayAttr(counts));
  }
};
} // namespace

void mlir::moe::test::registerTestPasses() {
  PassRegistration<TestExpertSchedulePass>();
}
