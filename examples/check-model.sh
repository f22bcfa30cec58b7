#!/usr/bin/env bash
# Compiles a model description, runs it on random weights and tokens, and
# compares its logits and routing statistics with the independent reference
# test/utils/model_reference.py (docs/semantics.md).
#   examples/check-model.sh CONFIG.json [f32|bf16] [B,T]
# Uses $MOEC_BUILD_DIR (default ./build) and Debian's /usr/bin/python3.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOEC_BUILD_DIR:-$root/build}"
config="$1" dtype="${2:-f32}" shape="${3:-2,40}"
py=/usr/bin/python3
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$py" "$root/examples/make_weights.py" "$config" "$tmp/w.safetensors" --dtype "$dtype" --seed 1
"$py" "$root/test/utils/model_reference.py" tokens "$config" "$tmp/tokens.npy" --shape "$shape" --seed 3
"$build/bin/moec" compile "$config" -o "$tmp/model" --dtype "$dtype" -v
"$tmp/model" --weights "$tmp/w.safetensors" --tokens "$tmp/tokens.npy" \
  --logits "$tmp/logits.npy" --stats "$tmp/stats.json" --bench 3
"$py" "$root/test/utils/model_reference.py" compare "$config" "$tmp/w.safetensors" \
  --tokens "$tmp/tokens.npy" --logits "$tmp/logits.npy" --stats "$tmp/stats.json"
