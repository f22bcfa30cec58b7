#!/usr/bin/env python3
"""Checks a compiled model's decode steps against its own forward pass.

Usage:
  decode_agreement.py sequence PROMPT.npy IDS.npy OUT.npy
      writes the int32 [B, T + N - 1] sequence the decode steps saw: the
      [B, T] prompt, then the first N - 1 of the [B, N] generated ids;
  decode_agreement.py compare GEN_LOGITS.npy FORWARD_LOGITS.npy
      [--tolerance X]
      compares the [B, N, V] logits of the generated tokens (--generate N
      --logits) with the last N positions of the [B, T + N - 1, V] logits of
      one forward pass over that sequence: step t's logits must equal those
      of position T - 1 + t within a relative error max|a - b| / max|b| of X
      (default 1e-5). Prints one PASS or FAIL line; exit status 1 on FAIL.

The forward pass attends to every key at once, a decode step to the KV
cache (and with GMHA to incrementally built group summaries), so the two
agree up to f32 rounding, not bit for bit.
"""
import argparse
import sys

import numpy as np


def sequence(args):
    prompt = np.load(args.prompt)
    ids = np.load(args.ids)
    if prompt.ndim != 2 or ids.ndim != 2 or prompt.shape[0] != ids.shape[0]:
        sys.exit("error: prompt %s and ids %s do not match" %
                 (list(prompt.shape), list(ids.shape)))
    np.save(args.out, np.concatenate([prompt, ids[:, :-1]], 1).astype(np.int32))
    return 0


def compare(args):
    gen = np.load(args.generated).astype(np.float64)
    full = np.load(args.forward).astype(np.float64)
    steps = gen.shape[1]
    if gen.ndim != 3 or full.ndim != 3 or full.shape[0] != gen.shape[0] or \
            full.shape[2] != gen.shape[2] or full.shape[1] < steps:
        print("FAIL decode vs forward: shapes %s and %s do not match" %
              (list(gen.shape), list(full.shape)))
        return 1
    want = full[:, full.shape[1] - steps:]
    per_step = np.abs(gen - want).max(axis=(0, 2)) / np.abs(want).max()
    err = float(per_step.max())
    ok = np.isfinite(err) and err <= args.tolerance
    print("%s decode vs forward: max relative error %.1e over %d steps of %d "
          "sequences (tolerance %g)" % ("PASS" if ok else "FAIL", err, steps,
                                         gen.shape[0], args.tolerance))
    if not ok:
        print("  per step: " + " ".join("%.1e" % e for e in per_step))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("sequence")
    s.add_argument("prompt")
    s.add_argument("ids")
    s.add_argument("out")
    c = sub.add_parser("compare")
    c.add_argument("generated")
    c.add_argument("forward")
    c.add_argument("--tolerance", type=float, default=1e-5)
    args = ap.parse_args()
    return sequence(args) if args.mode == "sequence" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
