#!/usr/bin/env python3
"""Assembles the kernels of a lowered module and reports what they hold.

Usage: check_gpu_kernels.py DEVICE.mlir --ptxas PTXAS [--cuobjdump CUOBJDUMP]
                            [--name REGEX] [--arch sm_90a]

DEVICE.mlir is moe-to-cuda-pipeline's result with format=isa. For each
gpu.binary whose symbol matches REGEX (all by default), in the order they
appear, prints

  kernel NAME: R registers, S bytes spill stores, L bytes spill loads, C wgmma serialisations
  ptx NAME: W wgmma.mma_async, T cp.async.bulk.tensor, B mbarrier waits, M mma.sync, A atom.global.add.f32
  sass NAME: H HGMMA, U UTMALDG, F FFMA, M HMMA, R RED.ADD.F32   (with --cuobjdump)

(C counts ptxas's C75xx notes, each a reason it made wgmmas wait for one
another.)

so that a FileCheck test can tell a tensor-core kernel (HGMMA fed by
UTMALDG) from a scalar one. cuobjdump runs without a GPU (PyPI's triton
wheel ships one).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from extract_gpu_binary import unescape  # noqa: E402

BINARY = re.compile(r'gpu\.binary @([\w.]+) .*?assembly = "((?:[^"\\]|\\.)*)"',
                    re.S)


def count(pattern, text):
    return len(re.findall(pattern, text))


def report(name, ptx, args, tmp):
    cubin = os.path.join(tmp, name + ".cubin")
    ptx_path = os.path.join(tmp, name + ".ptx")
    with open(ptx_path, "w", encoding="latin-1") as f:
        f.write(ptx)
    done = subprocess.run([args.ptxas, "-v", "-arch", args.arch, ptx_path,
                           "-o", cubin], capture_output=True, text=True)
    if done.returncode:
        print("kernel %s: ptxas failed: %s" % (
            name, " ".join(done.stderr.strip().splitlines()[-1:])))
        return
    regs = max(map(int, re.findall(r"Used (\d+) registers", done.stderr)),
               default=0)
    stores = sum(map(int, re.findall(r"(\d+) bytes spill stores", done.stderr)))
    loads = sum(map(int, re.findall(r"(\d+) bytes spill loads", done.stderr)))
    # ptxas's C75xx notes: wgmmas serialised (each waits for the last).
    serialised = count(r"\(C75\d\d\)", done.stderr)
    print("kernel %s: %d registers, %d bytes spill stores, %d bytes spill "
          "loads, %d wgmma serialisations" % (name, regs, stores, loads,
                                              serialised))
    print("ptx %s: %d wgmma.mma_async, %d cp.async.bulk.tensor, %d mbarrier "
          "waits, %d mma.sync, %d atom.global.add.f32" % (
              name, count(r"\bwgmma\.mma_async", ptx),
              count(r"\bcp\.async\.bulk\.tensor", ptx),
              count(r"\bmbarrier\.try_wait", ptx),
              count(r"\bmma\.sync", ptx),
              count(r"\batom\.global\.add\.f32", ptx)))
    if args.cuobjdump:
        # cuobjdump -sass runs nvdisasm, found beside it or on the PATH.
        env = dict(os.environ)
        env["PATH"] = os.path.dirname(os.path.abspath(args.cuobjdump)) + \
            os.pathsep + env.get("PATH", "")
        sass = subprocess.run([args.cuobjdump, "-sass", cubin], env=env,
                              capture_output=True, text=True, check=True).stdout
        print("sass %s: %d HGMMA, %d UTMALDG, %d FFMA, %d HMMA, %d RED.ADD.F32"
              % (name, count(r"\bHGMMA\.", sass), count(r"\bUTMALDG\b", sass),
                 count(r"\bFFMA\b", sass), count(r"\bHMMA\.", sass),
                 count(r"\bREDG?\.E\.ADD\.F32", sass)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("device")
    p.add_argument("--ptxas", required=True)
    p.add_argument("--cuobjdump")
    p.add_argument("--name", default="")
    p.add_argument("--arch", default="sm_90a")
    args = p.parse_args()
    source = open(args.device, encoding="latin-1").read()
    with tempfile.TemporaryDirectory() as tmp:
        for name, payload in BINARY.findall(source):
            if re.search(args.name, name):
                report(name, unescape(payload).decode("latin-1"), args, tmp)


if __name__ == "__main__":
    main()
