#!/usr/bin/env python3
"""Checks a whole model lowered by moe-to-cuda-pipeline, offline.

Usage: check_gpu_model.py HOST.mlir DEVICE.mlir --ptxas PTXAS [--arch sm_90a]

HOST.mlir is the module after moe-map-allocs-to-gpu (-mlir-print-ir-after):
outside its gpu.modules, the host code must not touch GPU memory, so it may
hold no memref.load / memref.store / memref.copy / memref.alloc and no
scf.for / scf.while (a host loop over data). DEVICE.mlir is the pipeline's
result with format=isa: each gpu.binary's PTX is assembled by ptxas -v for
the architecture, and its spill bytes and wgmma serialisations (ptxas's
C75xx notes: a wgmma made to wait for the previous one) are summed. Prints
one line per check:

  host: N launches, M GPU allocations, K host accesses to GPU memory
  streams: @F C/S, ... (for each host function F of the lowered code that
           creates or synchronises streams: C created, S synchronisations)
  device: N modules, K kernels assembled for ARCH, S bytes spill stores, L bytes spill loads, W wgmma serialisations

and the offending host lines, if any.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from extract_gpu_binary import unescape  # noqa: E402

HOST_ACCESS = re.compile(r"\b(memref\.(load|store|copy|alloc)|scf\.(for|while))\b")


def host_lines(text):
    """The lines of `text` outside gpu.module bodies."""
    depth = None
    for line in text.splitlines():
        if depth is None:
            if re.match(r"\s*gpu\.module\b", line):
                depth = line.count("{") - line.count("}")
                if depth <= 0:
                    depth = None
                continue
            yield line
        else:
            depth += line.count("{") - line.count("}")
            if depth <= 0:
                depth = None


def check_host(path):
    lines = list(host_lines(open(path).read()))
    launches = sum("gpu.launch_func" in line for line in lines)
    allocs = sum("gpu.alloc" in line for line in lines)
    bad = [line.strip() for line in lines if HOST_ACCESS.search(line)]
    print("host: %d launches, %d GPU allocations, %d host accesses to GPU "
          "memory" % (launches, allocs, len(bad)))
    for line in bad:
        print("  host access: " + line[:160])


def check_streams(source):
    """Streams created and synchronised, per host function that has any."""
    counts = {}
    name = None
    for line in source.splitlines():
        m = re.match(r"\s*llvm\.func @([\w.]+)\(", line)
        if m:
            name = m.group(1)
        for call, i in (("mgpuStreamCreate", 0), ("mgpuStreamSynchronize", 1)):
            if name and re.search(r"llvm\.call @%s\(" % call, line):
                counts.setdefault(name, [0, 0])[i] += 1
    print("streams: " + ", ".join("@%s %d/%d" % (f, c, s)
                                  for f, (c, s) in sorted(counts.items())))


def check_device(path, ptxas, arch):
    source = open(path, encoding="latin-1").read()
    check_streams(source)
    payloads = re.findall(r'assembly = "((?:[^"\\]|\\.)*)"', source, re.S)
    kernels = stores = loads = serialised = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, payload in enumerate(payloads):
            ptx = os.path.join(tmp, "m%d.ptx" % i)
            with open(ptx, "wb") as f:
                f.write(unescape(payload))
            done = subprocess.run(
                [ptxas, "-v", "-arch", arch, ptx, "-o",
                 os.path.join(tmp, "m%d.cubin" % i)],
                capture_output=True, text=True)
            if done.returncode:
                print("device: ptxas failed on module %d: %s" %
                      (i, done.stderr.strip().splitlines()[-1:]))
                return
            kernels += len(re.findall(r"Compiling entry function", done.stderr))
            for s, l in re.findall(r"(\d+) bytes spill stores, (\d+) bytes "
                                   r"spill loads", done.stderr):
                stores += int(s)
                loads += int(l)
            serialised += len(re.findall(r"\(C75\d\d\)", done.stderr))
    print("device: %d modules, %d kernels assembled for %s, %d bytes spill "
          "stores, %d bytes spill loads, %d wgmma serialisations" % (
              len(payloads), kernels, arch, stores, loads, serialised))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("host")
    p.add_argument("device")
    p.add_argument("--ptxas", required=True)
    p.add_argument("--arch", default="sm_90a")
    args = p.parse_args()
    check_host(args.host)
    check_device(args.device, args.ptxas, args.arch)


if __name__ == "__main__":
    main()
