//===- Device.h - where a compiled model's weights live ---------*- C++ -*-===//
//
// A compiled model runs where its target put it: on the host CPU, whose
// forward pass reads host memory, or on a GPU, whose forward pass reads and
// returns device memory. CompiledModel moves the weights, the tokens and the
// results through a Device. `moec compile` links one implementation with the
// model: libmoec_model_host (runtime/model/HostDevice.cpp) for --target cpu,
// libmoec_model_cuda (runtime/cuda/CudaDevice.cpp) for --target cuda.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_MODEL_DEVICE_H
#define MOEC_RUNTIME_MODEL_DEVICE_H

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace moec::runtime {

class Device {
public:
  virtual ~Device() = default;

  /// The manifest's target this device runs (moec::abi::manifest).
  virtual const char *target() const = 0;

  /// Whether the forward pass reads host memory: then nothing is copied.
  virtual bool hostMemory() const = 0;

  /// Whether the device can be used; false with a one-line `error`.
  virtual bool ready(std::string &error) = 0;

  /// A new device buffer holding `bytes` bytes of `host`; null with a
  /// one-line `error` naming `what` on failure.
  virtual void *upload(const void *host, size_t bytes, const std::string &what,
                       std::string &error) = 0;

  /// A new device buffer of `bytes` zero bytes, set on the device; null
  /// with a one-line `error` naming `what` on failure.
  virtual void *allocateZeroed(size_t bytes, const std::string &what,
                               std::string &error) = 0;

  /// Copies `bytes` bytes of device buffer `device` to `host`, after the
  /// work queued before has finished.
  virtual void download(void *host, const void *device, size_t bytes) = 0;

  /// Frees a buffer from upload() or one the forward pass returned.
  virtual void release(void *device) = 0;

  /// Records the device work that `pass` queues (one forward pass, which
  /// ends by synchronising its stream) instead of running it, so that
  /// replay() runs it again without the host's launch costs: a CUDA graph.
  /// False with a one-line `error` where the device cannot record or the
  /// recording failed; the results `pass` returned are then not valid.
  virtual bool record(const std::function<void()> &pass, std::string &error) {
    (void)pass;
    error = "this device runs forward passes directly";
    return false;
  }

  /// Runs the recorded work `times` times and waits for the last run. The
  /// results of the last run are at the addresses `pass` returned when it
  /// was recorded. False with a one-line `error`.
  virtual bool replay(int64_t times, std::string &error) {
    (void)times;
    error = "nothing recorded";
    return false;
  }

  /// Forgets the recording (after the last run's results were released).
  virtual void dropRecording() {}
};

/// The device of the library linked with the model.
std::unique_ptr<Device> createDevice();

} // namespace moec::runtime

#endif // MOEC_RUNTIME_MODEL_DEVICE_H
