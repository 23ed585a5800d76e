#!/bin/bash
# gpu-profile.sh OUTDIR - on the GPU machine, from the repository root, with
# gpu-kit/: where the time of a training step goes.  Nsight Systems' CUDA
# API and kernel summaries of `maskdcpt-train bench` (ours) and of
# tools/torch_bench.py train (PyTorch), width 32, crop 256, batch 16, and
# compute-sanitizer memcheck of the two GPU test binaries not covered by
# gpu-check.sh's memcheck (API errors are not reported: test_cuda_net fills
# the GPU on purpose, so cudaMalloc fails there by design).
set -uo pipefail
out=${1:?usage: gpu-profile.sh OUTDIR}
mkdir -p "$out"
. "$(dirname "$0")/gpu-env.sh"
if command -v compute-sanitizer >/dev/null; then
  for t in test_cuda test_cuda_net; do
    timeout 150 compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 3 \
      $kit/bin/$t >"$out/memcheck_$t.log" 2>&1
    echo "memcheck $t: rc $?; $(grep 'ERROR SUMMARY' "$out/memcheck_$t.log")"
  done
fi
nsys=$(command -v nsys || ls /usr/local/cuda*/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
[ -n "$nsys" ] || { echo "no nsys on this machine"; exit 0; }
stats="--stats=true --force-overwrite=true -t cuda,cublas,cudnn"
timeout 150 $nsys profile $stats -o /tmp/prof_c $kit/bin/maskdcpt-train bench --device cuda \
  --width 32 --crop 256 --batch 16 --steps 6 >"$out/nsys_c.txt" 2>&1
timeout 150 $nsys profile $stats -o /tmp/prof_torch python3 tools/torch_bench.py train --width 32 \
  --crop 256 --batch 16 --steps 6 --device cuda --tf32 >"$out/nsys_torch.txt" 2>&1
ls -la "$out"
