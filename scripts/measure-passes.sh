#!/usr/bin/env bash
# measure-passes.sh WEIGHTS SETDIR [MAXPASSES] [CLASS...] - the mean PSNR of
# each damaged class restored forced to its own class with 1, 2, ...
# MAXPASSES (default 3) passes of the network, each on the last one's
# output: what the weights file's 'passes' metadata does (docs/network.md).
# SETDIR is laid out as scripts/evaluate.sh's eval-data/set or
# scripts/eval-level-set.sh's output (clean/NAME.png,
# degraded/NAME@CLASS.png).  The classes: those named, else every damaged
# class.  WEIGHTS' own 'passes' is replaced in a temporary copy; its
# 'auto_focus' does not matter (the class is forced).
set -euo pipefail
export LC_ALL=C
usage="usage: measure-passes.sh WEIGHTS SETDIR [MAXPASSES] [CLASS...]"
weights=${1:?$usage}
set_dir=${2:?$usage}
max=${3:-3}
shift $(($# < 3 ? $# : 3))
root=$(cd "$(dirname "$0")/.." && pwd)
maskdcpt=${MASKDCPT_BUILD:-$root/build}/cli/maskdcpt
[ -d "$set_dir/degraded" ] || { echo "measure-passes.sh: no $set_dir/degraded" >&2; exit 1; }
classes=${*:-$("$maskdcpt" degrade --list | awk 'NF == 2 && $1 ~ /^[0-9]+$/ && $2 != "clean" { print $2 }')}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

printf '%-18s %4s' class n
for p in $(seq 1 "$max"); do printf ' %9s' "$p-pass"; done
echo
for c in $classes; do
  crops=("$set_dir"/degraded/*@"$c".png)
  [ -e "${crops[0]}" ] || continue
  printf '%-18s %4d' "$c" ${#crops[@]}
  for p in $(seq 1 "$max"); do
    python3 "$root/tools/set_inference_metadata.py" "$weights" "$tmp/w.safetensors" \
      "passes=$c:$p" >/dev/null
    for f in "${crops[@]}"; do
      name=$(basename "$f" .png)
      "$maskdcpt" restore "$f" "$tmp/out.png" --type "$c" -w "$tmp/w.safetensors" --quiet
      "$maskdcpt" compare "$set_dir/clean/${name%@*}.png" "$tmp/out.png"
    done | awk '{ for (i = 1; i < NF; i++) if ($i == "PSNR") { s += $(i + 1); n++ } }
                END { printf " %9.2f", s / n }'
  done
  echo
done
