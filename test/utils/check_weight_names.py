#!/usr/bin/python3
"""Checks that a .safetensors file holds exactly the tensors moec binds.

    check_weight_names.py FORWARD.mlir WEIGHTS.safetensors

FORWARD.mlir is the output of `moec compile CONFIG --emit mlir`: the
`moe.weights` attribute of its forward function lists the weight table's
entries, each `{name = "<Hugging Face tensor>", type = tensor<...>}`, with
stacked experts written as `experts.{e}.w1` of shape [E_l, ...]. Each stacked parameter stands for E_l per-expert
tensors. Prints one line per difference and `OK: N tensors` when none.
"""

import re
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_reference import read_safetensors  # noqa: E402

WEIGHT = re.compile(r'\{name = "([^"]+)", type = tensor<((?:\d+x)*)(f32|bf16)>\}')


def expected_tensors(mlir_text):
    """{name: shape} of the per-expert tensors the module's parameters need."""
    out = {}
    for name, dims, _ in WEIGHT.findall(mlir_text):
        shape = tuple(int(d) for d in dims.split("x") if d)
        if "{e}" in name:
            for e in range(shape[0]):
                out[name.replace("{e}", str(e))] = shape[1:]
        else:
            out[name] = shape
    return out


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    with open(argv[1]) as f:
        expected = expected_tensors(f.read())
    tensors, _ = read_safetensors(argv[2])
    problems = []
    for name, shape in sorted(expected.items()):
        if name not in tensors:
            problems.append("missing %s %s" % (name, list(shape)))
        elif tensors[name].shape != shape:
            problems.append("shape of %s is %s, moec binds %s" %
                            (name, list(tensors[name].shape), list(shape)))
    for name in sorted(set(tensors) - set(expected)):
        problems.append("extra %s (moec does not bind it)" % name)
    for line in problems:
        print(line)
    if not expected:
        print("no moe.weights entries in %s" % argv[1])
        return 1
    if not problems:
        print("OK: %d tensors" % len(expected))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
