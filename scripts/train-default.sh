#!/usr/bin/env bash
# The recipe of the shipped weights, data/default.safetensors: prepares the
# training photos (scripts/prepare-training-data.sh, pinned Debian packages,
# manifest data/training-manifest.tsv), trains with maskdcpt-train and
# exports the EMA weights as float16.  The weights file records the same
# settings, the step count and the manifest's hash in its "provenance"
# metadata (`maskdcpt info data/default.safetensors`).
#
# Usage: scripts/train-default.sh [OUTDIR]     (default: build/train-default)
#
# CPU only: about 70 minutes on 2 cores with nothing else running (measured
# with two such runs side by side, one thread each: 8000 steps at 14-17
# crops/s each).  Interrupt it with Ctrl-C and run it again to resume from
# the last checkpoint; the result is the same (docs/training.md).  Copy
# OUTDIR/weights.safetensors to data/default.safetensors to ship it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/train-default}

[ -f training-data/training-manifest.tsv ] || scripts/prepare-training-data.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null

recipe=(training-data "$out" --mode finetune --width 16 --crop 128 --batch 8 --steps 8000
        --loss psnr --cls-weight 1.0 --seed 11 --checkpoint-every 500 --fp16)
resume=()
[ -f "$out/checkpoint.bin" ] && resume=(--resume)
build/trainer/maskdcpt-train "${recipe[@]}" "${resume[@]}"
build/cli/maskdcpt info "$out/weights.safetensors"
