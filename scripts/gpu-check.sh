#!/usr/bin/env bash
# Runs on the GPU machine what scripts/gpu-prepare.sh built here (it needs no
# LLVM/MLIR there, only CUDA's driver, Python and NumPy), in well under 8
# minutes, and prints a short table last:
#  * every config's --target cuda executable, bf16 and f32 weights, on 2 x 24
#    tokens, against the NumPy reference of docs/semantics.md
#    (test/utils/model_reference.py: relative error <= 2e-2 for bf16, 1e-4
#    for f32; routing statistics equal to the reference's; for the bf16
#    builds the reference with --gemm-inputs bf16, the numerics of the
#    sm_90a tensor-core GEMMs), and the CPU executable the same way;
#  * compute-sanitizer memcheck on one model, where the machine has it;
#  * the outputs of --bench (the last replay of a CUDA graph) against the
#    reference too, and greedy --generate on two models against the
#    reference's continuation;
#  * prefill tokens/s of the GPU executable, replaying a CUDA graph and
#    launch by launch, next to the CPU's (--bench);
#  * the sm_90a tensor-core grouped GEMM against an f64 reference
#    (test/gpu/grouped_gemm_sm90.py; 128- and 256-column tiles), also under
#    memcheck, and the MoE
#    layer at Mixtral-8x7B shapes against PyTorch, torch._grouped_mm,
#    Triton and cuBLAS (bench/gpu_moe_layer.py, T up to 16384);
#  * the sm_90a flash-attention kernel against an f64 reference
#    (test/gpu/attention_sm90.py: causal, windows, GQA, f32 operands, decode
#    offsets), also under memcheck, and its forward time against PyTorch's
#    scaled_dot_product_attention (bench/gpu_attention.py, T up to 16384;
#    its check against SDPA and its speed ratios make a row of the table).
# The memchecks run last; every step after the model checks fits in what is
# left of GPU_CHECK_BUDGET (480 s) or becomes a SKIP row, and with the device
# tool's $OUT the table and the summary are copied there after each step.
set -uo pipefail
cd "$(dirname "$0")/.."
out=build/gpu-check
if [ ! -d "$out/bin" ] && [ -f build/gpu-check.tar.xz ]; then
  tar -C build -xJf build/gpu-check.tar.xz
fi
if [ ! -d "$out/bin" ]; then
  echo "gpu-check: no $out: run scripts/gpu-prepare.sh here first and carry" \
    "build/gpu-check.tar.xz" >&2
  exit 1
fi
export LD_LIBRARY_PATH="$PWD/$out/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-16}"
py=${PYTHON:-python3}
work=$(mktemp -d)
nvidia-smi -L || true
table="$work/table.txt"
printf "%-16s %-10s %-8s %s\n" config build result detail > "$table"

# The device tool allows 10 minutes a call: the steps run most important
# first, each within what is left of GPU_CHECK_BUDGET seconds (default 480),
# skipped (a SKIP row) when too little is left; on the device tool the
# table and the summary are copied to $OUT after each step, so that they
# come back even if the call is cut short.
budget=${GPU_CHECK_BUDGET:-480}
limit() { # seconds: the step's own limit, capped by what is left
  local left=$(( budget - SECONDS ))
  [ "$1" -lt "$left" ] && left=$1
  echo $(( left > 0 ? left : 0 ))
}
room() { # row label seconds: whether at least `seconds` are left (else a
         # SKIP row); `timeout "$(limit N)"` then never gets 0 (no limit)
  if [ $(( budget - SECONDS )) -lt "$3" ]; then
    printf "%-16s %-10s %-8s %s\n" "$1" "$2" SKIP \
      "under $3 s of the ${budget} s budget left" >> "$table"
    return 1
  fi
}
save() {
  [ -n "${OUT:-}" ] && [ -d "$OUT" ] && cp "$table" "$work/summary.txt" "$OUT/" 2>/dev/null
  return 0
}

check() { # name build exe dtype [extra options of the executable]
  local name=$1 build=$2 exe=$3 dtype=$4 cfg="$out/configs/$1.json"
  shift 4
  local w="$work/$name-$dtype.safetensors" t="$work/$name-tokens.npy"
  [ -f "$w" ] || $py examples/make_weights.py "$cfg" "$w" --seed 1 --dtype "$dtype" > /dev/null
  [ -f "$t" ] || $py test/utils/model_reference.py tokens "$cfg" "$t" --shape 2,24 --seed 3
  local logits="$work/$name-$build.npy" stats="$work/$name-$build.json"
  if ! timeout 120 "$exe" --weights "$w" --tokens "$t" --logits "$logits" \
      --stats "$stats" "$@" > "$work/run.txt" 2>&1; then
    printf "%-16s %-10s %-8s %s\n" "$name" "$build" RUN-FAIL \
      "$(tail -1 "$work/run.txt")" >> "$table"
    return
  fi
  local verdict
  # bf16 GPU builds round the GEMM inputs to bf16 on the tensor cores.
  local inputs=f32
  [ "$build" = cuda-bf16 ] && inputs=bf16
  verdict=$($py test/utils/model_reference.py compare "$cfg" "$w" --tokens "$t" \
    --logits "$logits" --stats "$stats" --gemm-inputs $inputs 2>&1 | tr '\n' ' ')
  case "$verdict" in
    *"PASS logits"*"PASS stats"*) result=PASS ;;
    *) result=FAIL ;;
  esac
  printf "%-16s %-10s %-8s %s\n" "$name" "$build" "$result" "$verdict" >> "$table"
}

for cfg in "$out"/configs/*.json; do
  name=$(basename "$cfg" .json)
  check "$name" cuda-bf16 "$out/bin/$name-cuda-bf16" bf16
  check "$name" cuda-f32 "$out/bin/$name-cuda-f32" f32
  # The outputs of the last replay of the forward pass's CUDA graph.
  check "$name" cuda-graph "$out/bin/$name-cuda-f32" f32 --bench 2
  check "$name" cpu-f32 "$out/bin/$name-cpu-f32" f32
done

# Greedy generation on the GPU against the reference's continuation.
generation() { # name build dtype
  local name=$1 build=$2 dtype=$3 cfg="$out/configs/$1.json"
  local w="$work/$name-$dtype.safetensors" t="$work/$name-tokens.npy"
  local ids="$work/$name-$build-ids.npy" logits="$work/$name-$build-gen.npy"
  if ! timeout 120 "$out/bin/$name-$build" --weights "$w" --tokens "$t" \
      --generate 4 --output-ids "$ids" --logits "$logits" > "$work/run.txt" 2>&1; then
    printf "%-16s %-10s %-8s %s\n" "$name" "$build-gen" RUN-FAIL \
      "$(tail -1 "$work/run.txt")" >> "$table"
    return
  fi
  local verdict
  verdict=$($py test/utils/model_reference.py generate "$cfg" "$w" --tokens "$t" \
    --steps 4 --ids "$ids" --logits "$logits" 2>&1 | tr '\n' ' ')
  case "$verdict" in
    *"PASS ids"*"PASS logits"*) result=PASS ;;
    *) result=FAIL ;;
  esac
  printf "%-16s %-10s %-8s %s\n" "$name" "$build-gen" "$result" "$verdict" >> "$table"
}
generation mixtral-tiny cuda-f32 f32
generation all-features cuda-f32 f32

# The tensor-core kernels against f64 references, then under memcheck (small
# cases only: --quick): the grouped GEMM and flash attention.
kernel_check() { # row script seconds label library [sanitizer...]
  local row=$1 script=$2 seconds=$3 label=$4 lib=$5
  shift 5
  room "$row" "$label" 30 || return 0
  timeout "$(limit "$seconds")" "$@" $py "$script" "$out/lib/$lib" \
    --runtime "$out/lib/libmoec_cuda_runtime.so" $([ $# -gt 0 ] && echo --quick) \
    > "$work/$row-$label.txt" 2>&1
  local status=$? result=PASS
  [ $status = 0 ] || result=FAIL
  cat "$work/$row-$label.txt" >> "$work/summary.txt"
  printf "%-16s %-10s %-8s %s\n" "$row" "$label" "$result" \
    "exit $status; $(grep -c '^PASS' "$work/$row-$label.txt") cases passed, $(grep -c '^FAIL' "$work/$row-$label.txt") failed" >> "$table"
}
gemm_check() { kernel_check grouped-gemm test/gpu/grouped_gemm_sm90.py 240 "$@"; }
attention_check() { kernel_check attention test/gpu/attention_sm90.py 150 "$@"; }
save
gemm_check sm90 libgrouped_gemm_sm90.so
gemm_check sm90-w256 libgrouped_gemm_sm90_w256.so
attention_check sm90 libattention_sm90.so
attention_check sm90-8warps libattention_sm90_8warps.so
save

# The MoE layer at Mixtral-8x7B shapes against the baselines.
if room gpu_moe_layer bench 60; then
  timeout "$(limit 300)" $py bench/gpu_moe_layer.py --library "$out/lib/libmoe_layer_sm90.so" \
    --variant scatter="$out/lib/libmoe_layer_sm90_scatter.so" \
    --variant w256="$out/lib/libmoe_layer_sm90_w256.so" \
    --runtime "$out/lib/libmoec_cuda_runtime.so" > "$work/moe-layer.txt" 2>&1
  echo "gpu_moe_layer: exit $?" >> "$work/summary.txt"
  cat "$work/moe-layer.txt" >> "$work/summary.txt"
fi
save

# Flash attention against PyTorch's SDPA (well under 2 minutes); its check
# against SDPA and the speed ratios at the largest T make a row.
if room attention-sdpa bench 60; then
  timeout "$(limit 240)" $py bench/gpu_attention.py "$out/lib/libattention_sm90.so" \
    --runtime "$out/lib/libmoec_cuda_runtime.so" \
    --variant 8warps="$out/lib/libattention_sm90_8warps.so" > "$work/attention-bench.txt" 2>&1
  status=$?
  echo "gpu_attention: exit $status" >> "$work/summary.txt"
  cat "$work/attention-bench.txt" >> "$work/summary.txt"
  result=PASS
  [ $status = 0 ] || result=FAIL
  detail=$(grep '^summary:' "$work/attention-bench.txt" | cut -d' ' -f2-)
  [ -n "$detail" ] || detail=$(tail -1 "$work/attention-bench.txt")
  printf "%-16s %-10s %-8s %s\n" attention-sdpa bench "$result" \
    "exit $status; $detail" >> "$table"
fi
save

# Memory errors on the device, last: on one model, and the kernels' small
# cases (--quick).
if command -v compute-sanitizer > /dev/null && room memcheck all-features 60; then
  name=all-features
  timeout "$(limit 300)" compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$out/bin/$name-cuda-f32" --weights "$work/$name-f32.safetensors" \
    --tokens "$work/$name-tokens.npy" > "$work/memcheck.txt" 2>&1
  echo "memcheck $name: exit $? ($(grep -c '=========' "$work/memcheck.txt") sanitizer lines)" \
    >> "$work/summary.txt"
fi

if command -v compute-sanitizer > /dev/null; then
  gemm_check sm90-memcheck libgrouped_gemm_sm90.so compute-sanitizer --tool memcheck --error-exitcode 9
  attention_check sm90-memcheck libattention_sm90.so compute-sanitizer --tool memcheck --error-exitcode 9
  gemm_check w256-memcheck libgrouped_gemm_sm90_w256.so compute-sanitizer --tool memcheck --error-exitcode 9
fi
save

# Prefill speed, GPU next to CPU (tiny models: this measures launch and
# dispatch overheads, not kernel throughput).
$py test/utils/model_reference.py tokens "$out/configs/mixtral-tiny.json" \
  "$work/bench.npy" --shape 1,512 --seed 4
bench() { # label build [env]
  local label=$1 build=$2 dtype=${2##*-}
  shift 2
  room prefill "$label" 30 || return 0
  echo "bench mixtral-tiny $label: $(env "$@" timeout "$(limit 120)" \
    "$out/bin/mixtral-tiny-$build" --weights "$work/mixtral-tiny-$dtype.safetensors" \
    --tokens "$work/bench.npy" --bench 10 2>&1 | tail -1)" >> "$work/summary.txt"
}
bench cuda-bf16-graph cuda-bf16
bench cuda-bf16-launches cuda-bf16 MOEC_CUDA_GRAPHS=0
bench cpu-f32 cpu-f32

save
echo
cat "$work/summary.txt" 2>/dev/null
cut -c1-200 "$table"
! grep -q "FAIL" "$table"
