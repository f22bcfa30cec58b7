//===- HostDevice.cpp - the host CPU as a compiled model's device ---------===//
//
// libmoec_model_host: the forward pass of a --target cpu model reads and
// returns host memory, so CompiledModel copies nothing.
//
//===----------------------------------------------------------------------===//

#include "runtime/model/Device.h"
#include "runtime/model/ModelAbi.h"

#include <cstdlib>

namespace {

class HostDevice final : public moec::runtime::Device {
public:
  const char *target() const override {
    return moec::abi::manifest::kTargetCpu;
  }
  bool hostMemory() const override { return true; }
  bool ready(std::string &) override { return true; }
  // Never called: hostMemory() is true.
  void *upload(const void *, size_t, const std::string &,
               std::string &error) override {
    error = "the host device copies nothing";
    return nullptr;
  }
  void *allocateZeroed(size_t, const std::string &,
                       std::string &error) override {
    error = "the host device allocates nothing";
    return nullptr;
  }
  void download(void *, const void *, size_t) override {}
  void release(void *) override {}
};

} // namespace

std::unique_ptr<moec::runtime::Device> moec::runtime::createDevice() {
  return std::make_unique<HostDevice>();
}
