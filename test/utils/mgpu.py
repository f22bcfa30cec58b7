"""Device buffers for the GPU checks, through the moec CUDA runtime.

test/gpu/grouped_gemm_sm90.py and test/gpu/attention_sm90.py call compiled
C-interface functions on device buffers with only NumPy: this module holds
their bf16 conversions, the ranked memref descriptor and the buffers,
allocated, filled and read back through the runtime's mgpu* functions.
"""
import ctypes

import numpy as np


def bf16_bits(a):
    """f32 -> bf16 bit patterns, rounding to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_value(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def descriptor_type(rank):
    class Memref(ctypes.Structure):
        _fields_ = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
                    ("offset", ctypes.c_int64),
                    ("sizes", ctypes.c_int64 * rank),
                    ("strides", ctypes.c_int64 * rank)]
    return Memref


class Device:
    """Device buffers through the moec CUDA runtime's mgpu* functions."""

    def __init__(self, path):
        self.rt = ctypes.CDLL(path)
        self.rt.mgpuMemAlloc.restype = ctypes.c_void_p
        self.rt.mgpuMemAlloc.argtypes = [ctypes.c_uint64, ctypes.c_void_p,
                                         ctypes.c_bool]
        self.rt.mgpuMemFree.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.rt.mgpuMemcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                       ctypes.c_size_t, ctypes.c_void_p]
        self.rt.mgpuStreamSynchronize.argtypes = [ctypes.c_void_p]
        self.buffers = []

    def upload(self, array):
        array = np.ascontiguousarray(array)
        ptr = self.rt.mgpuMemAlloc(max(array.nbytes, 1), None, False)
        if not ptr:
            raise RuntimeError("mgpuMemAlloc failed")
        self.rt.mgpuMemcpy(ptr, array.ctypes.data, array.nbytes, None)
        self.rt.mgpuStreamSynchronize(None)
        self.buffers.append(ptr)
        desc = descriptor_type(array.ndim)()
        desc.allocated = desc.aligned = ptr
        desc.offset = 0
        for i, (size, stride) in enumerate(zip(array.shape, array.strides)):
            desc.sizes[i] = size
            desc.strides[i] = stride // array.itemsize
        return desc

    def download(self, desc, shape, dtype):
        """The result's contents (row-major, checked by the caller), then
        frees it."""
        out = np.empty(shape, dtype)
        src = desc.aligned + desc.offset * out.itemsize
        self.rt.mgpuMemcpy(out.ctypes.data, src, out.nbytes, None)
        self.rt.mgpuStreamSynchronize(None)
        self.rt.mgpuMemFree(desc.allocated, None)
        return out

    def free(self, desc):
        self.rt.mgpuMemFree(desc.allocated, None)

    def free_all(self):
        for ptr in self.buffers:
            self.rt.mgpuMemFree(ptr, None)
        self.buffers = []
