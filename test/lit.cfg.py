# -*- Python -*-
# lit configuration for moec.

import ctypes
import os
import shutil
import subprocess

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "MOEC"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "lib", "utils",
                   "Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moec_obj_root, "test")

llvm_config.use_default_substitutions()
# Tests write only under the build tree: no __pycache__ beside the helpers
# they import (test/utils, examples/).
config.environment["PYTHONDONTWRITEBYTECODE"] = "1"
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

def shared_lib(directory, name):
    return os.path.join(directory, "lib" + name + ".so")

runner_utils = shared_lib(config.llvm_lib_dir, "mlir_runner_utils")
c_runner_utils = shared_lib(config.llvm_lib_dir, "mlir_c_runner_utils")
libomp = shared_lib(config.llvm_lib_dir, "omp")
cuda_runtime = shared_lib(config.moec_lib_dir, "moec_cuda_runtime")

config.substitutions.append(("%mlir_runner_utils", runner_utils))
config.substitutions.append(("%mlir_c_runner_utils", c_runner_utils))
config.substitutions.append(("%libomp", libomp))
config.substitutions.append(("%moec_cuda_runtime", cuda_runtime))
config.substitutions.append(("%moec_lib_dir", config.moec_lib_dir))
config.substitutions.append(("%llvm_lib_dir", config.llvm_lib_dir))
config.substitutions.append(("%moec_src_root", config.moec_src_root))
config.substitutions.append(("%moec_obj_root", config.moec_obj_root))
config.substitutions.append(("%cuda_toolkit", config.cuda_toolkit_dir))
config.substitutions.append(("%python", config.python_executable))
# The C compiler the project was built with, for programs using a model's C
# API (the unversioned clang on PATH may be another LLVM).
config.substitutions.append(("%cc", config.c_compiler))
config.substitutions.append(("%cmake", config.cmake_command))
config.substitutions.append(
    ("%test_utils", os.path.join(config.test_source_root, "utils")))

tools = [
    ToolSubst("moec-opt", unresolved="fatal"),
    ToolSubst("moec", unresolved="fatal"),
    ToolSubst("moec-safetensors", unresolved="fatal"),
    ToolSubst("mlir-runner", unresolved="fatal"),
    ToolSubst("mlir-translate", unresolved="fatal"),
    ToolSubst("llc", unresolved="fatal"),
    ToolSubst("llvm-readelf", unresolved="fatal"),
    ToolSubst("llvm-strings", unresolved="fatal"),
    ToolSubst("llvm-nm", unresolved="fatal"),
]
llvm_config.add_tool_substitutions(
    tools, [config.moec_tools_dir, config.llvm_tools_dir])

# Features: an OpenMP runtime, a CUDA toolkit able to assemble cubins, the
# built CUDA runtime, and a usable CUDA GPU.
if os.path.exists(libomp):
    config.available_features.add("openmp")
ptxas = os.path.join(config.cuda_toolkit_dir, "bin", "ptxas")
if config.cuda_toolkit_dir and os.access(ptxas, os.X_OK):
    config.available_features.add("cuda-toolkit")
if subprocess.run([config.python_executable, "-c", "import numpy"],
                  capture_output=True).returncode == 0:
    config.available_features.add("numpy")
if os.path.exists(cuda_runtime):
    config.available_features.add("cuda-runtime")
# cuobjdump reads the SASS of a cubin without a GPU (PyPI's triton wheel
# ships one): lit -Dcuobjdump=PATH, $MOEC_CUOBJDUMP, or one on the PATH.
cuobjdump = (lit_config.params.get("cuobjdump") or
             os.environ.get("MOEC_CUOBJDUMP") or shutil.which("cuobjdump"))
if cuobjdump and os.access(cuobjdump, os.X_OK):
    config.available_features.add("cuobjdump")
    config.substitutions.append(("%cuobjdump", cuobjdump))

# Hugging Face transformers (with torch), for checking the model reference:
# the Python of the tests, or one given with lit -Dhf_python=PATH.
hf_python = lit_config.params.get("hf_python", config.python_executable)
if subprocess.run([hf_python, "-c", "import torch, transformers"],
                  capture_output=True).returncode == 0:
    config.available_features.add("transformers")
config.substitutions.append(("%hf_python", hf_python))

def host_cpu_flags():
    """The x86 feature flags of this machine (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()

# The AVX-512 BF16 dot product (vdpbf16ps) of moe-tile-grouped-matmul's
# bf16-dot, run by the JIT of mlir-runner on this host.
if "avx512_bf16" in host_cpu_flags():
    config.available_features.add("avx512bf16")
# Code compiled for AVX2 CPUs (moec compile --cpu znver3) runs here.
if {"avx2", "fma"} <= host_cpu_flags():
    config.available_features.add("avx2")

def count_cuda_devices():
    """Asks the moec CUDA runtime; 0 when the driver or a GPU is missing."""
    if not os.path.exists(cuda_runtime):
        return 0
    try:
        lib = ctypes.CDLL(cuda_runtime)
        return int(lib.moecCudaDeviceCount())
    except OSError:
        return 0

if count_cuda_devices() > 0:
    config.available_features.add("cuda-gpu")
elif lit_config.params.get("require_gpu"):
    lit_config.fatal("require_gpu is set but no CUDA GPU is usable here")
