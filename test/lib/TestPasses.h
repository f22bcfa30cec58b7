//===- TestPasses.h - passes for moec's lit tests only ----------*- C++ -*-===//

#ifndef MOEC_TEST_LIB_TESTPASSES_H
#define MOEC_TEST_LIB_TESTPASSES_H

namespace mlir::moe::test {
/// Registers the moe-test-* passes with moec-opt.
void registerTestPasses();
} // namespace mlir::moe::test

#endif // MOEC_TEST_LIB_TESTPASSES_H
