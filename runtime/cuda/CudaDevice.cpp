//===- CudaDevice.cpp - an NVIDIA GPU as a compiled model's device --------===//
//
// libmoec_model_cuda: the weights of a --target cuda model live in device
// memory, uploaded once at load; each forward pass uploads its tokens and
// copies its results back. Everything goes through the mgpu* functions of
// libmoec_cuda_runtime (runtime/cuda/CudaRuntime.cpp), which the generated
// code calls too: this library holds no kernel and calls no driver function
// itself. Those functions print a one-line error for a failed driver call.
//
//===----------------------------------------------------------------------===//

#include "runtime/model/Device.h"
#include "runtime/model/ModelAbi.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

extern "C" {
void *mgpuMemAlloc(uint64_t sizeBytes, void *stream, bool isHostShared);
void mgpuMemFree(void *ptr, void *stream);
void mgpuMemcpy(void *dst, void *src, size_t sizeBytes, void *stream);
void mgpuMemset32(void *dst, unsigned int value, size_t count, void *stream);
void mgpuStreamSynchronize(void *stream);
int moecCudaDeviceCount();
void moecCudaCaptureNextStream();
void *moecCudaInstantiateCapture();
bool moecCudaGraphReplay(void *exec, int64_t times);
void moecCudaGraphDestroy(void *exec);
}

namespace {

class CudaDevice final : public moec::runtime::Device {
public:
  const char *target() const override {
    return moec::abi::manifest::kTargetCuda;
  }
  bool hostMemory() const override { return false; }

  bool ready(std::string &error) override {
    if (moecCudaDeviceCount() > 0)
      return true;
    error = "no usable CUDA device (the CUDA driver found none; the model "
            "was compiled with --target cuda)";
    return false;
  }

  void *upload(const void *host, size_t bytes, const std::string &what,
               std::string &error) override {
    void *device = allocate(bytes, what, error);
    if (!device)
      return nullptr;
    mgpuMemcpy(device, const_cast<void *>(host), bytes, /*stream=*/nullptr);
    // The forward pass runs on a stream of its own, which does not wait for
    // the default one: the copy completes first.
    mgpuStreamSynchronize(nullptr);
    return device;
  }

  void *allocateZeroed(size_t bytes, const std::string &what,
                       std::string &error) override {
    void *device = allocate(bytes, what, error);
    if (!device)
      return nullptr;
    // In 32-bit words: every size asked for here is a multiple of 4.
    mgpuMemset32(device, 0, bytes / 4, /*stream=*/nullptr);
    mgpuStreamSynchronize(nullptr);
    return device;
  }

  void download(void *host, const void *device, size_t bytes) override {
    // The forward pass ends with a synchronisation of its stream; the copy
    // on the default stream is complete when the synchronisation returns.
    mgpuMemcpy(host, const_cast<void *>(device), bytes, /*stream=*/nullptr);
    mgpuStreamSynchronize(nullptr);
  }

  void release(void *device) override { mgpuMemFree(device, nullptr); }

  bool record(const std::function<void()> &pass, std::string &error) override {
    dropRecording();
    // MOEC_CUDA_GRAPHS=0 measures the launches one by one instead.
    const char *graphs = std::getenv("MOEC_CUDA_GRAPHS");
    if (graphs && std::strcmp(graphs, "0") == 0) {
      error = "CUDA graphs are off (MOEC_CUDA_GRAPHS=0)";
      return false;
    }
    moecCudaCaptureNextStream();
    pass();
    graph = moecCudaInstantiateCapture();
    if (!graph) {
      error = "cannot record the forward pass as a CUDA graph (the "
              "moec-cuda-runtime line above says why)";
      return false;
    }
    return true;
  }

  bool replay(int64_t times, std::string &error) override {
    if (!graph) {
      error = "no CUDA graph recorded";
      return false;
    }
    if (moecCudaGraphReplay(graph, times))
      return true;
    error = "replaying the forward pass's CUDA graph failed (the "
            "moec-cuda-runtime line above says why)";
    return false;
  }

  void dropRecording() override {
    moecCudaGraphDestroy(graph);
    graph = nullptr;
  }

  ~CudaDevice() override { dropRecording(); }

private:
  /// A device buffer of `bytes` bytes; null for none, with a one-line
  /// `error` naming `what` when the allocation failed.
  static void *allocate(size_t bytes, const std::string &what,
                        std::string &error) {
    void *device = mgpuMemAlloc(bytes, /*stream=*/nullptr,
                                /*isHostShared=*/false);
    if (!device && bytes)
      error = "cannot allocate " + std::to_string(bytes) +
              " bytes of GPU memory for " + what;
    return device;
  }

  void *graph = nullptr;
};

} // namespace

std::unique_ptr<moec::runtime::Device> moec::runtime::createDevice() {
  return std::make_unique<CudaDevice>();
}
