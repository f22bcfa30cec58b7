#!/usr/bin/env bash
# The main job: compile example model descriptions with moec for the CPU,
# run the executables on random weights, and compare their logits and
# routing statistics with the independent NumPy reference of docs/semantics.md.
#   examples/run-cpu.sh [CONFIG.json ...]   (default: mixtral-tiny, all-features)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
configs=("$@")
if [ ${#configs[@]} -eq 0 ]; then
  configs=("$root/examples/mixtral-tiny.json" "$root/examples/all-features.json")
fi
for config in "${configs[@]}"; do
  echo "== $(basename "$config")"
  "$root/examples/check-model.sh" "$config" f32 2,40
done
