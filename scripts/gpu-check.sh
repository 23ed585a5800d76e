#!/bin/bash
# gpu-check.sh OUTDIR [quick] - on a machine with an NVIDIA GPU, from the
# repository root, with gpu-kit/ made by scripts/gpu-kit.sh: the GPU tests
# (strict fp32, TF32 and fp16 against the CPU), compute-sanitizer memcheck on
# them, and the benchmarks against PyTorch on the same network, weights,
# input and GPU.  Every log lands in OUTDIR; the summary is printed.
set -uo pipefail
out=${1:?usage: gpu-check.sh OUTDIR [quick]}
quick=${2:-}
mkdir -p "$out"
. "$(dirname "$0")/gpu-env.sh"
export MASKDCPT_TEST_TMP=$(mktemp -d)
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  ldd $MASKDCPT_CUDA_MODULE | grep -E 'cud|cublas|not found'
} 2>&1 | tee "$out/env.txt"

status=0
run() { # name, command...
  local name=$1; shift
  echo "== $name: $*"
  local t0=$(date +%s%N)
  timeout ${GPU_CHECK_TIMEOUT:-240} "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "   rc $rc, $(( ($(date +%s%N) - t0) / 1000000 )) ms; last lines:"
  tail -n 8 "$out/$name.log" | sed 's/^/   /'
  [ $rc -eq 0 ] || status=1
}
run test_cuda_ops $kit/bin/test_cuda_ops
run test_cuda $kit/bin/test_cuda
run test_cuda_net $kit/bin/test_cuda_net data/default.safetensors
# the shipped weights restoring a photo in fp16 against the CPU, end to end
MASKDCPT_CUDA_FP16=1 run restore_fp16 $kit/bin/maskdcpt restore data/samples/coffee.png \
  "$out/coffee-fp16.png" --device cuda -w data/default.safetensors
run restore_cpu $kit/bin/maskdcpt restore data/samples/coffee.png "$out/coffee-cpu.png" --device cpu \
  -w data/default.safetensors
run compare_fp16 $kit/bin/maskdcpt compare "$out/coffee-cpu.png" "$out/coffee-fp16.png"

# Benchmarks: the same random width-32 network for both sides.
$kit/bin/maskdcpt init "$out/w32.safetensors" --width 32 >/dev/null 2>&1 ||
  python3 tools/torch_reference.py random "$out/w32.safetensors" --width 32
# TF32 (both sides' fast fp32 mode), then strict fp32 on both sides.
for n in 1024 4096; do
  run bench_c_$n $kit/bin/maskdcpt bench -w "$out/w32.safetensors" --device cuda --size $n --scalar-size 0
  # the NAFBlock without its three fusions, for what they save
  MASKDCPT_CUDA_UNFUSED=1 run bench_c_unfused_$n $kit/bin/maskdcpt bench -w "$out/w32.safetensors" \
    --device cuda --size $n --scalar-size 0
  run bench_torch_$n python3 tools/torch_bench.py infer "$out/w32.safetensors" --size $n --device cuda \
    --tf32 --json "$out/torch_infer_$n.json"
  # fp16 storage on both sides (ours: MASKDCPT_CUDA_FP16; PyTorch: the network in half)
  MASKDCPT_CUDA_FP16=1 run bench_c_fp16_$n $kit/bin/maskdcpt bench -w "$out/w32.safetensors" \
    --device cuda --size $n --scalar-size 0
  run bench_torch_fp16_$n python3 tools/torch_bench.py infer "$out/w32.safetensors" --size $n \
    --device cuda --dtype fp16 --json "$out/torch_infer_fp16_$n.json"
done
run train_c $kit/bin/maskdcpt-train bench --device cuda --width 32 --crop 256 --batch 16 --steps 20
# the same step one crop per pass (the trainer before batched layers)
run train_c_per_crop $kit/bin/maskdcpt-train bench --device cuda --width 32 --crop 256 --batch 16 \
  --micro-batch 1 --steps 20
run train_torch python3 tools/torch_bench.py train --width 32 --crop 256 --batch 16 --steps 20 \
  --device cuda --tf32 --json "$out/torch_train.json"
if [ -z "$quick" ]; then
  MASKDCPT_CUDA_STRICT=1 run bench_c_strict_1024 $kit/bin/maskdcpt bench -w "$out/w32.safetensors" \
    --device cuda --size 1024 --scalar-size 0
  run bench_torch_strict_1024 python3 tools/torch_bench.py infer "$out/w32.safetensors" --size 1024 \
    --device cuda --no-tf32
  MASKDCPT_CUDA_STRICT=1 run train_c_strict $kit/bin/maskdcpt-train bench --device cuda --width 32 \
    --crop 256 --batch 16 --steps 20
  run train_torch_strict python3 tools/torch_bench.py train --width 32 --crop 256 --batch 16 \
    --steps 20 --device cuda --no-tf32
fi
rm -f "$out/w32.safetensors"
# Last: memcheck is slow, and the figures above matter more if time runs out.
if [ -z "$quick" ] && command -v compute-sanitizer >/dev/null; then
  run memcheck_ops compute-sanitizer --tool memcheck --leak-check full --error-exitcode 3 $kit/bin/test_cuda_ops
  run memcheck_net compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 3 $kit/bin/test_cuda_net
fi
exit $status
