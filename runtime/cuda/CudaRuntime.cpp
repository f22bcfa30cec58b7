//===- CudaRuntime.cpp - moec's mgpu* runtime on the CUDA driver API ------===//
//
// The host code that MLIR 22 produces for CUDA does not talk to the driver
// itself: `gpu-to-llvm`, `convert-nvgpu-to-nvvm` and the LLVM translation of
// `gpu.binary` / `gpu.launch_func` (the SelectObject offloading handler) emit
// calls to a small C ABI of `mgpu*` functions. Upstream implements that ABI in
// mlir/lib/ExecutionEngine/CudaRuntimeWrappers.cpp, but Debian's LLVM 22
// packages ship no libmlir_cuda_runtime.so, so this file provides moec's own
// implementation, libmoec_cuda_runtime.so.
//
// The ABI, exactly as LLVM 22.1 declares it in the IR it emits (`index` is
// i64 on the 64-bit hosts moec supports):
//
//   ptr  mgpuModuleLoad(ptr blob, i64 blobSize)          [global ctor]
//   ptr  mgpuModuleLoadJIT(ptr ptx, i32 optLevel)         [global ctor]
//   void mgpuModuleUnload(ptr module)                     [global dtor]
//   ptr  mgpuModuleGetFunction(ptr module, ptr name)
//   void mgpuLaunchKernel(ptr fn, i64 gx, gy, gz, bx, by, bz, i32 smem,
//                         ptr stream, ptr params, ptr extra, i64 paramsCount)
//   void mgpuLaunchClusterKernel(ptr fn, i64 cx, cy, cz, gx, gy, gz, bx, by,
//   bz,
//                                i32 smem, ptr stream, ptr params, ptr extra)
//   ptr  mgpuStreamCreate()            void mgpuStreamDestroy(ptr)
//   void mgpuStreamSynchronize(ptr)    void mgpuStreamWaitEvent(ptr s, ptr e)
//   ptr  mgpuEventCreate()             void mgpuEventDestroy(ptr)
//   void mgpuEventSynchronize(ptr)     void mgpuEventRecord(ptr e, ptr s)
//   ptr  mgpuMemAlloc(i64 size, ptr stream, i8 isHostShared)
//   void mgpuMemFree(ptr, ptr stream)
//   void mgpuMemcpy(ptr dst, ptr src, i64 size, ptr stream)
//   void mgpuMemset32(ptr dst, i32 value, i64 count, ptr stream)
//   void mgpuMemset16(ptr dst, i16 value, i64 count, ptr stream)
//   void mgpuMemHostRegisterMemRef(i64 rank, ptr desc, i64 elementSize)
//   void mgpuMemHostUnregisterMemRef(i64 rank, ptr desc, i64 elementSize)
//   void mgpuSetDefaultDevice(i32 ordinal)
//   ptr  mgpuTensorMapEncodeTiledMemref(i64 rank, ptr desc, i64 dataType,
//            i64 interleave, i64 swizzle, i64 l2Promotion, i64 oobFill,
//            ptr boxDims)
//
// Besides those, the library exports the helpers upstream also exports but
// generated code does not call (mgpuMemHostRegister, mgpuMemHostUnregister,
// mgpuTensorMapEncodeTiled), and moec's extensions: moecCudaDeviceCount(),
// which tests use to find out whether a GPU is usable, and the CUDA graph
// calls libmoec_model_cuda uses for --bench (moecCudaCaptureNextStream,
// moecCudaInstantiateCapture, moecCudaGraphReplay, moecCudaGraphDestroy).
//
// Deliberately NOT provided (they need cuSPARSE / cuSPARSELt, which moec does
// not use; `gpu-to-llvm` only declares them for the sparse gpu ops):
//   mgpuCreateSparseEnv, mgpuDestroySparseEnv, mgpuCreateDnVec,
//   mgpuDestroyDnVec, mgpuCreateDnMat, mgpuDestroyDnMat, mgpuCreateCoo,
//   mgpuCreateCooAoS, mgpuCreateCsr, mgpuCreateCsc, mgpuCreateBsr,
//   mgpuDestroySpMat, mgpuSpMVBufferSize, mgpuSpMV, mgpuSpMMBufferSize,
//   mgpuSpMM, mgpuSDDMMBufferSize, mgpuSDDMM, mgpuSpGEMMCreateDescr,
//   mgpuSpGEMMDestroyDescr, mgpuSpGEMMWorkEstimation, mgpuSpGEMMCompute,
//   mgpuSpGEMMCopy, mgpuSpMatGetSize, mgpuSetCsrPointers,
//   mgpuCreateSparseLtEnv, mgpuDestroySparseLtEnv, mgpuCreateCuSparseLtDnMat,
//   mgpuDestroyCuSparseLtDnMat, mgpuDestroyCuSparseLtSpMat,
//   mgpuCusparseLtCreate2To4SpMat, mgpuCuSparseLtSpMMBufferSize,
//   mgpuCuSparseLtSpMM.
// Nothing here uses cuBLAS either.
//
// Behaviour:
//  * The driver is initialised lazily, once (cuInit), and each device's
//    primary context is retained lazily, once per device, thread-safely. Every
//    entry point makes the default device's primary context current for its
//    own duration and restores the caller's context afterwards.
//  * Every driver call is checked. A failure prints one line to stderr naming
//    the entry point, the driver call and the CUresult's name and text. The
//    ABI has no way to return an error, so the entry point then carries on
//    (returning null where it returns a handle); set MOEC_CUDA_RUNTIME_FATAL
//    in the environment to abort() right after the message instead.
//  * MOEC_CUDA_RUNTIME_TRACE in the environment prints a line for every module
//    load and kernel launch.
//  * The default device (mgpuSetDefaultDevice) is process-wide, unlike
//    upstream's thread_local one: moec's host code may run launches on async
//    worker threads that never called it. Generated code loads its modules
//    from global constructors, before main can call mgpuSetDefaultDevice, so
//    they live in device 0's context; launching them after switching to
//    another device is not supported.
//
//===----------------------------------------------------------------------===//

#include <cuda.h>

#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#define MOEC_RT_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

//===----------------------------------------------------------------------===//
// Diagnostics
//===----------------------------------------------------------------------===//

bool envFlag(const char *name) {
  const char *value = std::getenv(name);
  return value && *value && !(value[0] == '0' && value[1] == '\0');
}

bool fatalErrors() {
  static const bool fatal = envFlag("MOEC_CUDA_RUNTIME_FATAL");
  return fatal;
}

bool tracing() {
  static const bool trace = envFlag("MOEC_CUDA_RUNTIME_TRACE");
  return trace;
}

/// Prints one diagnostic line (and aborts if the user asked for that).
void reportError(const char *entry, const char *message) {
  std::fprintf(stderr, "moec-cuda-runtime: %s: %s\n", entry, message);
  std::fflush(stderr);
  if (fatalErrors())
    std::abort();
}

/// Returns true if `result` is CUDA_SUCCESS; otherwise prints which call of
/// which entry point failed, and how, and returns false.
bool checkCu(CUresult result, const char *call, const char *entry,
             const char *detail = nullptr) {
  if (result == CUDA_SUCCESS)
    return true;
  const char *name = nullptr;
  const char *text = nullptr;
  if (result == CUDA_ERROR_STUB_LIBRARY) {
    // The toolkit's stub libcuda cannot name its own error code.
    name = "CUDA_ERROR_STUB_LIBRARY";
    text = "the CUDA driver stub was loaded instead of a real driver";
  } else {
    if (cuGetErrorName(result, &name) != CUDA_SUCCESS || !name)
      name = "CUDA_ERROR_<unknown>";
    if (cuGetErrorString(result, &text) != CUDA_SUCCESS || !text)
      text = "unrecognised error code";
  }
  std::fprintf(stderr, "moec-cuda-runtime: %s: %s%s%s%s failed: %s (%d): %s\n",
               entry, call, detail ? " [" : "", detail ? detail : "",
               detail ? "]" : "", name, static_cast<int>(result), text);
  std::fflush(stderr);
  if (fatalErrors())
    std::abort();
  return false;
}

/// Checks a driver call made directly in an mgpu* entry point.
#define MOEC_CU(call) checkCu((call), #call, __func__)
/// Same, with a detail (such as a kernel name) added to the message.
#define MOEC_CU_DETAIL(call, detail) checkCu((call), #call, __func__, (detail))

//===----------------------------------------------------------------------===//
// Driver and context management
//===----------------------------------------------------------------------===//

/// Device ordinals this runtime can hold a primary context for.
constexpr int kMaxDevices = 64;

/// The device used by the entry points; process-wide (see the file header).
std::atomic<int32_t> defaultDevice{0};

/// The result of the one cuInit call; a failure is reported once.
CUresult driverStatus() {
  static const CUresult status = [] {
    CUresult result = cuInit(/*Flags=*/0);
    checkCu(result, "cuInit(0)", "driver initialisation");
    return result;
  }();
  return status;
}

struct DeviceSlot {
  std::once_flag once;
  CUcontext context = nullptr;
};

/// Constant-initialised, so usable from any other library's global
/// constructors (where generated code loads its modules).
DeviceSlot deviceSlots[kMaxDevices];

/// The primary context of device `ordinal`, retained on first use (never
/// released: generated code unloads modules from global destructors, which
/// may run after any destructor of ours). Null if it cannot be had; the
/// reason has then been printed once.
CUcontext primaryContext(int32_t ordinal) {
  if (driverStatus() != CUDA_SUCCESS)
    return nullptr;
  if (ordinal < 0 || ordinal >= kMaxDevices) {
    static std::once_flag reported;
    std::call_once(reported, [ordinal] {
      char message[128];
      std::snprintf(message, sizeof(message),
                    "device ordinal %d is out of range [0, %d)", ordinal,
                    kMaxDevices);
      reportError("context set-up", message);
    });
    return nullptr;
  }
  DeviceSlot &slot = deviceSlots[ordinal];
  std::call_once(slot.once, [&slot, ordinal] {
    CUdevice device = 0;
    CUcontext context = nullptr;
    if (checkCu(cuDeviceGet(&device, ordinal), "cuDeviceGet",
                "context set-up") &&
        checkCu(cuDevicePrimaryCtxRetain(&context, device),
                "cuDevicePrimaryCtxRetain", "context set-up"))
      slot.context = context;
  });
  return slot.context;
}

/// Makes the default device's primary context current while it lives, and
/// puts the caller's context back when it dies.
class ScopedContext {
public:
  explicit ScopedContext(const char *entryPoint) : entry(entryPoint) {
    if (CUcontext context = primaryContext(defaultDevice.load()))
      pushed = checkCu(cuCtxPushCurrent(context), "cuCtxPushCurrent", entry);
  }
  ~ScopedContext() {
    CUcontext popped = nullptr;
    if (pushed)
      checkCu(cuCtxPopCurrent(&popped), "cuCtxPopCurrent", entry);
  }
  ScopedContext(const ScopedContext &) = delete;
  ScopedContext &operator=(const ScopedContext &) = delete;

private:
  const char *entry;
  bool pushed = false;
};

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

CUstream asStream(void *stream) { return static_cast<CUstream>(stream); }
CUevent asEvent(void *event) { return static_cast<CUevent>(event); }
CUdeviceptr asDevicePtr(const void *ptr) {
  return reinterpret_cast<CUdeviceptr>(ptr);
}

/// Converts one launch dimension to the driver's unsigned int; reports and
/// returns false if it does not fit.
bool launchDim(intptr_t value, const char *what, const char *entry,
               unsigned &out) {
  if (value < 0 || static_cast<uintmax_t>(value) > UINT_MAX) {
    char message[128];
    std::snprintf(message, sizeof(message),
                  "launch dimension %s = %lld is out of range", what,
                  static_cast<long long>(value));
    reportError(entry, message);
    return false;
  }
  out = static_cast<unsigned>(value);
  return true;
}

/// Lets `function` use `bytes` of dynamic shared memory: kernels must opt in
/// to more than the default (48 KiB less their static shared memory).
void allowDynamicSharedMemory(CUfunction function, int32_t bytes,
                              const char *entry) {
  if (bytes <= 0 || !function)
    return;
  int allowed = 0;
  if (!checkCu(cuFuncGetAttribute(
                   &allowed, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                   function),
               "cuFuncGetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)", entry) ||
      bytes <= allowed)
    return;

  // Say how much the device offers if the request cannot be met: the driver's
  // own error for this case is a bare CUDA_ERROR_INVALID_VALUE.
  CUdevice device = 0;
  int optIn = 0, staticBytes = 0;
  if (checkCu(cuCtxGetDevice(&device), "cuCtxGetDevice", entry) &&
      checkCu(cuDeviceGetAttribute(
                  &optIn, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                  device),
              "cuDeviceGetAttribute(MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)",
              entry) &&
      checkCu(cuFuncGetAttribute(&staticBytes,
                                 CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, function),
              "cuFuncGetAttribute(SHARED_SIZE_BYTES)", entry) &&
      static_cast<long long>(bytes) + staticBytes > optIn) {
    char message[192];
    std::snprintf(message, sizeof(message),
                  "kernel asks for %d bytes of dynamic shared memory on top of "
                  "%d static bytes; the device allows %d per block",
                  bytes, staticBytes, optIn);
    reportError(entry, message);
  }
  checkCu(cuFuncSetAttribute(
              function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes),
          "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)", entry);
}

/// The leading, rank-independent part of MLIR's ranked memref descriptor;
/// `rank` sizes and then `rank` strides (all int64_t) follow it in memory.
struct MemRefHeader {
  void *allocated;
  void *aligned;
  int64_t offset;
};

const int64_t *memrefSizes(const MemRefHeader *desc) {
  return reinterpret_cast<const int64_t *>(desc + 1);
}

/// The bytes a (possibly strided) memref's elements span: the address of the
/// lowest one and the distance to the end of the highest one. `bytes` is 0
/// for an empty memref.
void memrefSpan(int64_t rank, const MemRefHeader *desc, int64_t elementSize,
                char *&begin, uint64_t &bytes) {
  const int64_t *sizes = memrefSizes(desc);
  const int64_t *strides = sizes + rank;
  int64_t low = 0, high = 0; // element offsets relative to desc->offset
  for (int64_t i = 0; i < rank; ++i) {
    if (sizes[i] <= 0) {
      begin = static_cast<char *>(desc->aligned);
      bytes = 0;
      return;
    }
    int64_t reach = (sizes[i] - 1) * strides[i];
    (reach < 0 ? low : high) += reach;
  }
  begin =
      static_cast<char *>(desc->aligned) + (desc->offset + low) * elementSize;
  bytes = static_cast<uint64_t>(high - low + 1) *
          static_cast<uint64_t>(elementSize);
}

/// Graph capture (moecCudaCaptureNextStream): whether the next stream
/// created is captured, the stream being captured, and the graph of the last
/// capture that ended. Process-wide, like the default device: the generated
/// code may free or synchronise from another thread than the one that
/// created the stream. One capture at a time.
std::atomic<bool> captureNextStream{false};
std::atomic<CUstream> capturingStream{nullptr};
std::atomic<CUgraph> capturedGraph{nullptr};

bool isCapturing(void *stream) {
  return stream && asStream(stream) == capturingStream.load();
}

} // namespace

//===----------------------------------------------------------------------===//
// Modules and kernels
//===----------------------------------------------------------------------===//

/// Loads a cubin or fatbin (or NUL-terminated PTX, which the driver JITs).
MOEC_RT_EXPORT void *mgpuModuleLoad(void *data, size_t gpuBlobSize) {
  ScopedContext scope(__func__);
  if (tracing())
    std::fprintf(stderr, "moec-cuda-runtime: loading a %zu-byte module\n",
                 gpuBlobSize);
  CUmodule module = nullptr;
  MOEC_CU(cuModuleLoadData(&module, data));
  return module;
}

/// JIT-compiles NUL-terminated PTX at `optLevel` (clamped to the driver's
/// 0..4) and loads it; prints the JIT's error log if that fails.
MOEC_RT_EXPORT void *mgpuModuleLoadJIT(void *data, int optLevel) {
  ScopedContext scope(__func__);
  unsigned level = optLevel < 0 ? 0u : optLevel > 4 ? 4u : unsigned(optLevel);
  if (tracing())
    std::fprintf(stderr, "moec-cuda-runtime: JIT-compiling PTX at -O%u\n",
                 level);
  char errorLog[8192] = {};
  CUjit_option options[] = {CU_JIT_OPTIMIZATION_LEVEL, CU_JIT_ERROR_LOG_BUFFER,
                            CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {reinterpret_cast<void *>(static_cast<uintptr_t>(level)),
                    errorLog, reinterpret_cast<void *>(sizeof(errorLog))};
  CUmodule module = nullptr;
  if (!MOEC_CU(cuModuleLoadDataEx(&module, data, 3, options, values)) &&
      errorLog[0])
    std::fprintf(stderr, "moec-cuda-runtime: PTX JIT log:\n%s\n", errorLog);
  return module;
}

MOEC_RT_EXPORT void mgpuModuleUnload(void *module) {
  // A failed load was reported already; don't report its null handle again.
  if (!module)
    return;
  // Unloads run from global destructors. In an ahead-of-time linked
  // executable those run after the driver's own exit-time teardown, which
  // took the module with it: every driver call, the context push first, then
  // answers CUDA_ERROR_DEINITIALIZED, and there is nothing left to unload.
  CUcontext current = nullptr;
  if (cuCtxGetCurrent(&current) == CUDA_ERROR_DEINITIALIZED)
    return;
  ScopedContext scope(__func__);
  CUresult result = cuModuleUnload(static_cast<CUmodule>(module));
  if (result != CUDA_ERROR_DEINITIALIZED)
    checkCu(result, "cuModuleUnload(module)", __func__);
}

MOEC_RT_EXPORT void *mgpuModuleGetFunction(void *module, const char *name) {
  ScopedContext scope(__func__);
  CUfunction function = nullptr;
  MOEC_CU_DETAIL(
      cuModuleGetFunction(&function, static_cast<CUmodule>(module), name),
      name);
  return function;
}

/// Launches `function` on a gx*gy*gz grid of bx*by*bz blocks. A grid with no
/// blocks (a dynamic size that came out 0) launches nothing and is not an
/// error. The driver knows each parameter's size, so `paramsCount` is unused.
MOEC_RT_EXPORT void mgpuLaunchKernel(void *function, intptr_t gridX,
                                     intptr_t gridY, intptr_t gridZ,
                                     intptr_t blockX, intptr_t blockY,
                                     intptr_t blockZ, int32_t sharedMemBytes,
                                     void *stream, void **params, void **extra,
                                     size_t /*paramsCount*/) {
  unsigned gx = 0, gy = 0, gz = 0, bx = 0, by = 0, bz = 0;
  if (!launchDim(gridX, "gridX", __func__, gx) ||
      !launchDim(gridY, "gridY", __func__, gy) ||
      !launchDim(gridZ, "gridZ", __func__, gz) ||
      !launchDim(blockX, "blockX", __func__, bx) ||
      !launchDim(blockY, "blockY", __func__, by) ||
      !launchDim(blockZ, "blockZ", __func__, bz))
    return;
  if (tracing())
    std::fprintf(stderr,
                 "moec-cuda-runtime: launch grid (%u, %u, %u) block (%u, %u, "
                 "%u) shared %d bytes\n",
                 gx, gy, gz, bx, by, bz, sharedMemBytes);
  if (gx == 0 || gy == 0 || gz == 0)
    return;
  if (sharedMemBytes < 0) {
    reportError(__func__, "negative dynamic shared memory size");
    return;
  }
  ScopedContext scope(__func__);
  auto kernel = static_cast<CUfunction>(function);
  allowDynamicSharedMemory(kernel, sharedMemBytes, __func__);
  MOEC_CU(cuLaunchKernel(kernel, gx, gy, gz, bx, by, bz,
                         static_cast<unsigned>(sharedMemBytes),
                         asStream(stream), params, extra));
}

/// Launches with thread-block clusters (sm_90+). As upstream, the grid is
/// given in blocks and must be a multiple of the cluster shape. LLVM 22's
/// declaration of this function has no trailing paramsCount argument.
MOEC_RT_EXPORT void
mgpuLaunchClusterKernel(void *function, intptr_t clusterX, intptr_t clusterY,
                        intptr_t clusterZ, intptr_t gridX, intptr_t gridY,
                        intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                        intptr_t blockZ, int32_t sharedMemBytes, void *stream,
                        void **params, void **extra) {
#if CUDA_VERSION >= 12000
  unsigned cx = 0, cy = 0, cz = 0, gx = 0, gy = 0, gz = 0, bx = 0, by = 0,
           bz = 0;
  if (!launchDim(clusterX, "clusterX", __func__, cx) ||
      !launchDim(clusterY, "clusterY", __func__, cy) ||
      !launchDim(clusterZ, "clusterZ", __func__, cz) ||
      !launchDim(gridX, "gridX", __func__, gx) ||
      !launchDim(gridY, "gridY", __func__, gy) ||
      !launchDim(gridZ, "gridZ", __func__, gz) ||
      !launchDim(blockX, "blockX", __func__, bx) ||
      !launchDim(blockY, "blockY", __func__, by) ||
      !launchDim(blockZ, "blockZ", __func__, bz))
    return;
  if (tracing())
    std::fprintf(stderr,
                 "moec-cuda-runtime: launch cluster (%u, %u, %u) grid (%u, %u, "
                 "%u) block (%u, %u, %u) shared %d bytes\n",
                 cx, cy, cz, gx, gy, gz, bx, by, bz, sharedMemBytes);
  if (gx == 0 || gy == 0 || gz == 0)
    return;
  if (sharedMemBytes < 0) {
    reportError(__func__, "negative dynamic shared memory size");
    return;
  }
  ScopedContext scope(__func__);
  auto kernel = static_cast<CUfunction>(function);
  allowDynamicSharedMemory(kernel, sharedMemBytes, __func__);
  // More than 8 blocks per cluster is a non-portable size the kernel must
  // opt in to (sm_90 allows 16).
  if (static_cast<unsigned long long>(cx) * cy * cz > 8)
    MOEC_CU(cuFuncSetAttribute(
        kernel, CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 1));

  CUlaunchAttribute attributes[2] = {};
  attributes[0].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
  attributes[0].value.clusterDim.x = cx;
  attributes[0].value.clusterDim.y = cy;
  attributes[0].value.clusterDim.z = cz;
  attributes[1].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE;
  attributes[1].value.clusterSchedulingPolicyPreference =
      CU_CLUSTER_SCHEDULING_POLICY_SPREAD;

  CUlaunchConfig config = {};
  config.gridDimX = gx;
  config.gridDimY = gy;
  config.gridDimZ = gz;
  config.blockDimX = bx;
  config.blockDimY = by;
  config.blockDimZ = bz;
  config.sharedMemBytes = static_cast<unsigned>(sharedMemBytes);
  config.hStream = asStream(stream);
  config.attrs = attributes;
  config.numAttrs = 2;
  MOEC_CU(cuLaunchKernelEx(&config, kernel, params, extra));
#else
  (void)function, (void)clusterX, (void)clusterY, (void)clusterZ;
  (void)gridX, (void)gridY, (void)gridZ, (void)blockX, (void)blockY;
  (void)blockZ, (void)sharedMemBytes, (void)stream, (void)params, (void)extra;
  reportError(__func__, "cluster launches need a CUDA 12 (or newer) toolkit");
#endif
}

//===----------------------------------------------------------------------===//
// Streams and events
//===----------------------------------------------------------------------===//

MOEC_RT_EXPORT void *mgpuStreamCreate() {
  ScopedContext scope(__func__);
  CUstream stream = nullptr;
  if (!MOEC_CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING)))
    return nullptr;
  if (captureNextStream.exchange(false)) {
    // Thread-local mode: a call of this thread that would synchronise
    // (cuMemAlloc, a blocking copy) fails the capture instead of silently
    // running once at capture time.
    if (MOEC_CU(cuStreamBeginCapture(stream,
                                     CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)))
      capturingStream.store(stream);
  }
  return stream;
}

MOEC_RT_EXPORT void mgpuStreamDestroy(void *stream) {
  ScopedContext scope(__func__);
  MOEC_CU(cuStreamDestroy(asStream(stream)));
}

/// Waits for the work queued on `stream`; on the stream being captured it
/// ends the capture instead (the generated forward pass synchronises once,
/// at its end), keeping the graph for moecCudaInstantiateCapture.
MOEC_RT_EXPORT void mgpuStreamSynchronize(void *stream) {
  ScopedContext scope(__func__);
  if (isCapturing(stream)) {
    capturingStream.store(nullptr);
    CUgraph graph = nullptr;
    if (MOEC_CU(cuStreamEndCapture(asStream(stream), &graph)))
      capturedGraph.store(graph);
    return;
  }
  MOEC_CU(cuStreamSynchronize(asStream(stream)));
}

MOEC_RT_EXPORT void mgpuStreamWaitEvent(void *stream, void *event) {
  ScopedContext scope(__func__);
  MOEC_CU(cuStreamWaitEvent(asStream(stream), asEvent(event), /*Flags=*/0));
}

MOEC_RT_EXPORT void *mgpuEventCreate() {
  ScopedContext scope(__func__);
  CUevent event = nullptr;
  MOEC_CU(cuEventCreate(&event, CU_EVENT_DISABLE_TIMING));
  return event;
}

MOEC_RT_EXPORT void mgpuEventDestroy(void *event) {
  ScopedContext scope(__func__);
  MOEC_CU(cuEventDestroy(asEvent(event)));
}

MOEC_RT_EXPORT void mgpuEventSynchronize(void *event) {
  ScopedContext scope(__func__);
  MOEC_CU(cuEventSynchronize(asEvent(event)));
}

MOEC_RT_EXPORT void mgpuEventRecord(void *event, void *stream) {
  ScopedContext scope(__func__);
  MOEC_CU(cuEventRecord(asEvent(event), asStream(stream)));
}

//===----------------------------------------------------------------------===//
// Memory
//===----------------------------------------------------------------------===//

/// Makes the current device's default memory pool keep what is freed into
/// it (a release threshold of "never"), so that after the first forward pass
/// the stream-ordered allocations are served from memory the pool holds:
/// the arena of the pass, with no driver allocation and no synchronisation.
void keepPoolMemory(const char *entry) {
  static std::once_flag once[kMaxDevices];
  int32_t ordinal = defaultDevice.load();
  if (ordinal < 0 || ordinal >= kMaxDevices)
    return;
  std::call_once(once[ordinal], [ordinal, entry] {
    CUdevice device = 0;
    CUmemoryPool pool = nullptr;
    cuuint64_t never = UINT64_MAX;
    if (checkCu(cuDeviceGet(&device, ordinal), "cuDeviceGet", entry) &&
        checkCu(cuDeviceGetDefaultMemPool(&pool, device),
                "cuDeviceGetDefaultMemPool", entry))
      checkCu(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                                    &never),
              "cuMemPoolSetAttribute(RELEASE_THRESHOLD)", entry);
  });
}

/// Allocates managed memory visible to host and device if `isHostShared`;
/// otherwise device memory, ordered on `stream` when there is one (from the
/// device's default pool: no synchronisation, and reused once freed), or
/// synchronously. A zero-byte request returns null.
MOEC_RT_EXPORT void *mgpuMemAlloc(uint64_t sizeBytes, void *stream,
                                  bool isHostShared) {
  if (sizeBytes == 0)
    return nullptr;
  ScopedContext scope(__func__);
  CUdeviceptr ptr = 0;
  if (isHostShared) {
    MOEC_CU(cuMemAllocManaged(&ptr, sizeBytes, CU_MEM_ATTACH_GLOBAL));
  } else if (stream) {
    keepPoolMemory(__func__);
    MOEC_CU(cuMemAllocAsync(&ptr, sizeBytes, asStream(stream)));
  } else {
    MOEC_CU(cuMemAlloc(&ptr, sizeBytes));
  }
  return reinterpret_cast<void *>(ptr);
}

/// Frees memory from mgpuMemAlloc once the work queued on `stream` (which
/// may still use it; null: the default stream) has finished: pool memory in
/// stream order, without waiting; other memory after synchronising with the
/// stream.
MOEC_RT_EXPORT void mgpuMemFree(void *ptr, void *stream) {
  if (!ptr)
    return;
  ScopedContext scope(__func__);
  // Memory allocated during a capture belongs to the graph: it is freed in
  // stream order, and nothing here may synchronise.
  if (isCapturing(stream)) {
    MOEC_CU(cuMemFreeAsync(asDevicePtr(ptr), asStream(stream)));
    return;
  }
  CUmemoryPool pool = nullptr;
  if (cuPointerGetAttribute(&pool, CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE,
                            asDevicePtr(ptr)) == CUDA_SUCCESS &&
      pool) {
    MOEC_CU(cuMemFreeAsync(asDevicePtr(ptr), asStream(stream)));
    return;
  }
  if (stream)
    MOEC_CU(cuStreamSynchronize(asStream(stream)));
  MOEC_CU(cuMemFree(asDevicePtr(ptr)));
}

/// Copies between any two of host, device and managed memory (the driver
/// tells them apart through unified addressing), ordered on `stream`.
MOEC_RT_EXPORT void mgpuMemcpy(void *dst, void *src, size_t sizeBytes,
                               void *stream) {
  if (sizeBytes == 0)
    return;
  ScopedContext scope(__func__);
  MOEC_CU(cuMemcpyAsync(asDevicePtr(dst), asDevicePtr(src), sizeBytes,
                        asStream(stream)));
}

/// Sets `count` 32-bit words at `dst` to `value`, ordered on `stream`.
MOEC_RT_EXPORT void mgpuMemset32(void *dst, unsigned int value, size_t count,
                                 void *stream) {
  if (count == 0)
    return;
  ScopedContext scope(__func__);
  MOEC_CU(cuMemsetD32Async(asDevicePtr(dst), value, count, asStream(stream)));
}

/// Sets `count` 16-bit words at `dst` to `value`, ordered on `stream`.
MOEC_RT_EXPORT void mgpuMemset16(void *dst, unsigned short value, size_t count,
                                 void *stream) {
  if (count == 0)
    return;
  ScopedContext scope(__func__);
  MOEC_CU(cuMemsetD16Async(asDevicePtr(dst), value, count, asStream(stream)));
}

/// Page-locks host memory and maps it for the device.
MOEC_RT_EXPORT void mgpuMemHostRegister(void *ptr, uint64_t sizeBytes) {
  if (!ptr || sizeBytes == 0)
    return;
  ScopedContext scope(__func__);
  MOEC_CU(cuMemHostRegister(ptr, sizeBytes,
                            CU_MEMHOSTREGISTER_PORTABLE |
                                CU_MEMHOSTREGISTER_DEVICEMAP));
}

MOEC_RT_EXPORT void mgpuMemHostUnregister(void *ptr) {
  if (!ptr)
    return;
  ScopedContext scope(__func__);
  MOEC_CU(cuMemHostUnregister(ptr));
}

/// Registers the memory a ranked memref of rank `rank` spans. `descriptor`
/// points to the ranked descriptor; strided layouts are fine.
MOEC_RT_EXPORT void mgpuMemHostRegisterMemRef(int64_t rank, void *descriptor,
                                              int64_t elementSizeBytes) {
  char *begin = nullptr;
  uint64_t bytes = 0;
  memrefSpan(rank, static_cast<const MemRefHeader *>(descriptor),
             elementSizeBytes, begin, bytes);
  mgpuMemHostRegister(begin, bytes);
}

/// Undoes mgpuMemHostRegisterMemRef for the same memref.
MOEC_RT_EXPORT void mgpuMemHostUnregisterMemRef(int64_t rank, void *descriptor,
                                                int64_t elementSizeBytes) {
  char *begin = nullptr;
  uint64_t bytes = 0;
  memrefSpan(rank, static_cast<const MemRefHeader *>(descriptor),
             elementSizeBytes, begin, bytes);
  if (bytes != 0) // empty memrefs were never registered
    mgpuMemHostUnregister(begin);
}

//===----------------------------------------------------------------------===//
// Tensor memory accelerator (TMA) descriptors, sm_90+
//===----------------------------------------------------------------------===//

#if CUDA_VERSION >= 12000

/// Encodes a tiled TMA descriptor into host memory `*tensorMap`.
MOEC_RT_EXPORT void mgpuTensorMapEncodeTiled(
    CUtensorMap *tensorMap, CUtensorMapDataType tensorDataType,
    cuuint32_t tensorRank, void *globalAddress, const cuuint64_t *globalDim,
    const cuuint64_t *globalStrides, const cuuint32_t *boxDim,
    const cuuint32_t *elementStrides, CUtensorMapInterleave interleave,
    CUtensorMapSwizzle swizzle, CUtensorMapL2promotion l2Promotion,
    CUtensorMapFloatOOBfill oobFill) {
  ScopedContext scope(__func__);
  MOEC_CU(cuTensorMapEncodeTiled(tensorMap, tensorDataType, tensorRank,
                                 globalAddress, globalDim, globalStrides,
                                 boxDim, elementStrides, interleave, swizzle,
                                 l2Promotion, oobFill));
}

/// Encoded TMA descriptors already copied to the device, by their 128
/// bytes. A forward pass creates the same descriptors on every call (the
/// weights do not move, and the stream-ordered pool hands the activations
/// the same addresses), so after the first pass each creation is a lookup:
/// no allocation, no copy, nothing that would break a graph capture. Each
/// descriptor has a device slot and a pinned host copy that are never
/// reused, so a copy captured into a graph (a descriptor first seen while
/// capturing) still finds the same bytes when the graph is replayed.
class TensorMapCache {
public:
  /// The device copy of `map`, or null after reporting an error.
  void *lookup(const CUtensorMap &map);

private:
  struct Key {
    unsigned char bytes[sizeof(CUtensorMap)];
    bool operator<(const Key &other) const {
      return std::memcmp(bytes, other.bytes, sizeof(bytes)) < 0;
    }
  };
  /// Slots come in chunks allocated outside captures.
  static constexpr size_t kChunkSlots = 1024;
  bool growIfFull();

  std::mutex mutex;
  std::map<Key, CUdeviceptr> slots;
  CUdeviceptr deviceChunk = 0;
  CUtensorMap *hostChunk = nullptr;
  size_t used = kChunkSlots;
};

bool TensorMapCache::growIfFull() {
  if (used < kChunkSlots)
    return true;
  if (capturingStream.load()) {
    reportError("mgpuTensorMapEncodeTiledMemref",
                "no free TMA descriptor slot while capturing a CUDA graph");
    return false;
  }
  CUdeviceptr device = 0;
  void *host = nullptr;
  if (!MOEC_CU(cuMemAlloc(&device, kChunkSlots * sizeof(CUtensorMap))))
    return false;
  if (!MOEC_CU(cuMemHostAlloc(&host, kChunkSlots * sizeof(CUtensorMap), 0))) {
    MOEC_CU(cuMemFree(device));
    return false;
  }
  deviceChunk = device;
  hostChunk = static_cast<CUtensorMap *>(host);
  used = 0;
  return true;
}

void *TensorMapCache::lookup(const CUtensorMap &map) {
  Key key;
  std::memcpy(key.bytes, &map, sizeof(map));
  std::lock_guard<std::mutex> lock(mutex);
  auto found = slots.find(key);
  if (found != slots.end())
    return reinterpret_cast<void *>(found->second);
  if (!growIfFull())
    return nullptr;
  CUdeviceptr slot = deviceChunk + used * sizeof(CUtensorMap);
  CUtensorMap *host = hostChunk + used;
  *host = map;
  // While capturing, the copy becomes a node of the graph, ordered before
  // the launch that reads the slot; otherwise a copy from pinned memory is
  // complete when it returns.
  CUstream capturing = capturingStream.load();
  bool copied =
      capturing ? MOEC_CU(cuMemcpyHtoDAsync(slot, host, sizeof(map), capturing))
                : MOEC_CU(cuMemcpyHtoD(slot, host, sizeof(map)));
  if (!copied)
    return nullptr;
  ++used;
  slots.emplace(key, slot);
  return reinterpret_cast<void *>(slot);
}

TensorMapCache &tensorMapCache() {
  static TensorMapCache *cache = new TensorMapCache; // never destroyed
  return *cache;
}

/// Builds the TMA descriptor of a ranked memref (`descriptor`, rank `rank`)
/// tiled in boxes of `boxDims` (outermost dimension first, as in MLIR) and
/// returns the device address of its copy (TensorMapCache), or null on
/// failure. The enum arguments arrive as i64 from nvgpu-to-nvvm.
MOEC_RT_EXPORT void *mgpuTensorMapEncodeTiledMemref(
    int64_t rank, void *descriptor, int64_t dataType, int64_t interleave,
    int64_t swizzle, int64_t l2Promotion, int64_t oobFill, int64_t *boxDims) {
  // Bytes per element, indexed by CUtensorMapDataType; 0 for the packed
  // sub-byte formats, which a memref cannot describe.
  static const int64_t elementBytes[] = {1, 2, 4, 4, 8, 8, 2, 4, 8, 2, 4, 4, 4};
  constexpr int64_t kKnownTypes =
      static_cast<int64_t>(sizeof(elementBytes) / sizeof(elementBytes[0]));
  constexpr int64_t kMaxRank = 5;
  if (rank < 1 || rank > kMaxRank) {
    reportError(__func__, "TMA descriptors need a memref of rank 1 to 5");
    return nullptr;
  }
  if (dataType < 0 || dataType >= kKnownTypes) {
    reportError(__func__, "unsupported CUtensorMapDataType");
    return nullptr;
  }
  const auto *desc = static_cast<const MemRefHeader *>(descriptor);
  const int64_t *sizes = memrefSizes(desc);
  const int64_t *strides = sizes + rank;
  int64_t elementSize = elementBytes[dataType];
  if (strides[rank - 1] != 1) {
    reportError(__func__, "TMA needs a memref whose innermost dimension is "
                          "contiguous (stride 1)");
    return nullptr;
  }

  // The driver lists dimensions innermost first; MLIR outermost first. The
  // innermost dimension's stride is implied, so globalStrides has rank - 1
  // entries, in bytes.
  cuuint64_t globalDim[kMaxRank] = {}, globalStrides[kMaxRank] = {};
  cuuint32_t boxDim[kMaxRank] = {}, elementStrides[kMaxRank] = {};
  for (int64_t r = 0; r < rank; ++r) {
    int64_t dim = rank - 1 - r;
    globalDim[r] = static_cast<cuuint64_t>(sizes[dim]);
    boxDim[r] = static_cast<cuuint32_t>(boxDims[dim]);
    elementStrides[r] = 1;
    if (r > 0)
      globalStrides[r - 1] =
          static_cast<cuuint64_t>(strides[dim] * elementSize);
  }
  void *globalAddress =
      static_cast<char *>(desc->aligned) + desc->offset * elementSize;

  ScopedContext scope(__func__);
  CUtensorMap tensorMap;
  if (!MOEC_CU(cuTensorMapEncodeTiled(
          &tensorMap, static_cast<CUtensorMapDataType>(dataType),
          static_cast<cuuint32_t>(rank), globalAddress, globalDim,
          globalStrides, boxDim, elementStrides,
          static_cast<CUtensorMapInterleave>(interleave),
          static_cast<CUtensorMapSwizzle>(swizzle),
          static_cast<CUtensorMapL2promotion>(l2Promotion),
          static_cast<CUtensorMapFloatOOBfill>(oobFill))))
    return nullptr;
  return tensorMapCache().lookup(tensorMap);
}

#endif // CUDA_VERSION >= 12000

//===----------------------------------------------------------------------===//
// CUDA graphs (moec extensions, not part of MLIR's ABI)
//===----------------------------------------------------------------------===//

/// Makes the next mgpuStreamCreate begin a capture of that
/// stream: until the generated code synchronises it, its launches, copies
/// and stream-ordered allocations are recorded into a graph, not run.
MOEC_RT_EXPORT void moecCudaCaptureNextStream(void) {
  captureNextStream.store(true);
  capturedGraph.store(nullptr);
}

/// The executable graph of the capture that ended last, or
/// null (with the reason printed) if there is none. Allocations the graph
/// makes and does not free (the forward pass's results) are freed when it
/// is launched again, so it can be replayed back to back; the last launch's
/// are the caller's to free (mgpuMemFree).
MOEC_RT_EXPORT void *moecCudaInstantiateCapture(void) {
  captureNextStream.store(false);
  CUgraph graph = capturedGraph.exchange(nullptr);
  if (!graph) {
    reportError(__func__, "no capture has ended (the captured "
                          "code never synchronised its stream, or a call "
                          "inside the capture failed)");
    return nullptr;
  }
  ScopedContext scope(__func__);
  CUgraphExec exec = nullptr;
  bool ok = MOEC_CU(cuGraphInstantiateWithFlags(
      &exec, graph, CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH));
  MOEC_CU(cuGraphDestroy(graph));
  return ok ? exec : nullptr;
}

/// Launches graph `exec` `times` times back to back on a stream of its own
/// and waits for the last launch to finish. False if a call failed.
MOEC_RT_EXPORT bool moecCudaGraphReplay(void *exec, int64_t times) {
  ScopedContext scope(__func__);
  CUstream stream = nullptr;
  if (!MOEC_CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING)))
    return false;
  bool ok = true;
  for (int64_t i = 0; i < times && ok; ++i)
    ok = MOEC_CU(cuGraphLaunch(static_cast<CUgraphExec>(exec), stream));
  ok &= MOEC_CU(cuStreamSynchronize(stream));
  MOEC_CU(cuStreamDestroy(stream));
  return ok;
}

MOEC_RT_EXPORT void moecCudaGraphDestroy(void *exec) {
  if (!exec)
    return;
  ScopedContext scope(__func__);
  MOEC_CU(cuGraphExecDestroy(static_cast<CUgraphExec>(exec)));
}

//===----------------------------------------------------------------------===//
// Devices
//===----------------------------------------------------------------------===//

/// Selects the device later entry points use (process-wide). Its context is
/// set up on first use; a bad ordinal is reported then.
MOEC_RT_EXPORT void mgpuSetDefaultDevice(int32_t device) {
  defaultDevice.store(device);
}

/// moec extension, not part of MLIR's ABI: the number of CUDA devices, or 0
/// when the driver is missing, is only the toolkit's stub, or fails. Prints
/// nothing, so tests can probe for a GPU quietly.
MOEC_RT_EXPORT int moecCudaDeviceCount(void) {
  int count = 0;
  if (cuInit(/*Flags=*/0) != CUDA_SUCCESS ||
      cuDeviceGetCount(&count) != CUDA_SUCCESS || count < 0)
    return 0;
  return count;
}
