#!/usr/bin/env bash
# eval-level-set.sh LEVEL OUTDIR - the evaluation's clean crops
# (eval-data/set/clean, made by scripts/evaluate.sh) degraded in the 11
# damaged classes at another level than the evaluation's 0.5, with their
# own seeds: OUTDIR/clean (a link) and OUTDIR/degraded/NAME@CLASS.png, the
# layout build/cli/auto_conditioning reads.  Checks whether a finding at
# level 0.5 holds at milder and stronger damage.
set -euo pipefail
export LC_ALL=C
level=${1:?usage: eval-level-set.sh LEVEL OUTDIR}
out=${2:?usage: eval-level-set.sh LEVEL OUTDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
set_dir=${MASKDCPT_EVAL_CACHE:-$root/eval-data}/set
maskdcpt=${MASKDCPT_BUILD:-$root/build}/cli/maskdcpt
[ -d "$set_dir/clean" ] || { echo "eval-level-set.sh: no $set_dir/clean; run scripts/evaluate.sh first" >&2; exit 1; }
# the damaged classes in registry order, as scripts/evaluate.sh lists them
classes=$("$maskdcpt" degrade --list | awk 'NF == 2 && $1 ~ /^[0-9]+$/ && $2 != "clean" { print $2 }')
# the seed follows from the level's tenths and the crop and class order
tenths=$(awk -v l="$level" 'BEGIN { printf "%d", l * 10 + 0.5 }')
mkdir -p "$out/degraded"
ln -sfn "$set_dir/clean" "$out/clean"
seed=1000
for f in "$set_dir"/clean/*.png; do
  name=$(basename "$f" .png)
  for c in $classes; do
    seed=$((seed + 1))
    "$maskdcpt" degrade "$f" "$out/degraded/$name@$c.png" --type "$c" --level "$level" \
      --seed $((seed * 7 + tenths)) >/dev/null
  done
done
echo "$out: $(ls "$out/degraded" | wc -l) degraded crops at level $level"
