"""Compiled moec functions called on PyTorch's CUDA tensors, for the GPU
benchmarks (bench/gpu_moe_layer.py, bench/gpu_attention.py): the ranked
memref descriptor of a tensor (no copy) and a library of C-interface
functions with the moec CUDA runtime that frees their results.
"""
import ctypes


def memref_type(rank):
    class Memref(ctypes.Structure):
        _fields_ = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
                    ("offset", ctypes.c_int64), ("sizes", ctypes.c_int64 * rank),
                    ("strides", ctypes.c_int64 * rank)]
    return Memref


def memref(tensor):
    """A ranked memref descriptor of a contiguous CUDA tensor."""
    desc = memref_type(tensor.dim())()
    desc.allocated = desc.aligned = tensor.data_ptr()
    desc.offset = 0
    for i in range(tensor.dim()):
        desc.sizes[i] = tensor.shape[i]
        desc.strides[i] = tensor.stride(i)
    return desc


class CompiledLibrary:
    """A shared library of `_mlir_ciface_*` functions and the runtime."""

    def __init__(self, library, runtime):
        self.rt = ctypes.CDLL(runtime)
        self.rt.mgpuMemFree.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.rt.mgpuMemcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                       ctypes.c_size_t, ctypes.c_void_p]
        self.rt.mgpuStreamSynchronize.argtypes = [ctypes.c_void_p]
        self.lib = ctypes.CDLL(library)

    def has(self, name):
        return hasattr(self.lib, "_mlir_ciface_" + name)

    def invoke(self, name, result, args):
        """Calls `name` with the result descriptor and argument descriptors."""
        getattr(self.lib, "_mlir_ciface_" + name)(
            ctypes.byref(result), *[ctypes.byref(a) for a in args])

    def copy_out(self, result, tensor):
        """The result's elements into `tensor` (same shape and type)."""
        self.rt.mgpuMemcpy(tensor.data_ptr(),
                           result.aligned + result.offset * tensor.element_size(),
                           tensor.numel() * tensor.element_size(), None)
        self.rt.mgpuStreamSynchronize(None)

    def free(self, result):
        self.rt.mgpuMemFree(result.allocated, None)
