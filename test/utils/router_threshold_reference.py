#!/usr/bin/env python3
"""NumPy reference for router-threshold.mlir, written from the definition of
#moe.threshold (dialect/MoeAttrs.td), not from moec's lowering.

Prints the calls of @main with the FileCheck lines of each policy form
(ids, weights, counts); the test checks that its CHECK lines match.
Run with a Python that has NumPy: /usr/bin/python3 router_threshold_reference.py
"""
import numpy as np

LOGITS = np.array([[2.0, 1.0, 0.5, -1.0],   # distinct
                   [1.0, 1.0, 1.0, 1.0],    # all tied at exactly 0.25
                   [0.0, 3.0, 3.0, 0.0],    # experts 1 and 2 tied
                   [-2.0, 0.0, 4.0, 0.5],   # one dominant expert
                   [0.1, 0.0, 0.2, -0.1]],  # all close to 0.25
                  dtype=np.float32)

# (function, threshold, max_experts, normalize), as in the test.
POLICIES = [("threshold", 0.25, None, False),
            ("threshold_all", 0.2, None, False),
            ("threshold_normalized", 0.1, None, True),
            ("threshold_capped", 0.2, 2, False),
            ("threshold_single", 0.5, 1, False)]


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def route(probs, threshold, max_experts, normalize):
    """Padded ids, weights and counts of every token."""
    experts = probs.shape[1]
    width = min(max_experts, experts) if max_experts else experts
    limit = np.float32(threshold)  # compared in f32
    ids = np.full((len(probs), width), -1, dtype=np.int32)
    weights = np.zeros((len(probs), width), dtype=np.float32)
    counts = np.zeros(len(probs), dtype=np.int32)
    for t, p in enumerate(probs):
        # Descending probability, ties to the lower index (a stable sort).
        order = np.argsort(-p, kind="stable")
        count = max(1, int(np.sum(p > limit)))
        if max_experts:
            count = min(count, max_experts)
        chosen = order[:count]
        w = p[chosen]
        if normalize:
            w = w / w.sum(dtype=np.float32)
        ids[t, :count], weights[t, :count], counts[t] = chosen, w, count
    return ids, weights, counts


def rows(array):
    return ["[" + ", ".join(f"{float(x):g}" for x in row) + "]"
            for row in np.atleast_2d(array)]


def main():
    probs = softmax(LOGITS)
    for name, threshold, max_experts, normalize in POLICIES:
        print(f"  call @{name}(%l) : (tensor<?x4xf32>) -> ()")
        for array in route(probs, threshold, max_experts, normalize):
            print(f"  // CHECK: sizes = {list(array.shape)}")
            for row in rows(array):
                print(f"  // CHECK-NEXT: {row}")
        print()


if __name__ == "__main__":
    main()
