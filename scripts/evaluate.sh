#!/usr/bin/env bash
# Evaluate a weights file against classical GEGL filters (issue 8;
# docs/evaluation.md has the method).
#
# Usage: scripts/evaluate.sh WEIGHTS OUTDIR
#
#   WEIGHTS   a maskdcpt safetensors file (only read)
#   OUTDIR    gets report.md and per-image.csv, forced.csv, summary.csv,
#             confusion.csv, goals.csv, gegl-ranking.csv, raw/ (maskdcpt's
#             compare and classify output per crop)
#
# Steps, each cached under MASKDCPT_EVAL_CACHE (default <repo>/eval-data,
# git-ignored) and redone only when its inputs change:
#   1. python3-skimage (pinned .deb, apt-get download + dpkg-deb -x): four
#      colour photos from its data directory;
#   2. the set: the trainer's held-out validation photos
#      (`maskdcpt-train split`) and those four, cut into fixed 256 px crops
#      (scripts/eval_crops.py), each degraded with `maskdcpt degrade` in all
#      12 classes at level 0.5 and with Gaussian noise of sigma 25, fixed
#      seeds, 8-bit PNG;
#   3. classical baselines: every setting of scripts/eval-gegl-grid.tsv on
#      every degraded crop of its classes, by tools/gegl_baselines.c, which
#      is compiled and run inside the Debian 13 root (GEGL 0.4.62,
#      scripts/debian13-root.sh); per class the setting with the best mean
#      PSNR is kept. Independent of the weights.
# and, for WEIGHTS, always:
#   4. `maskdcpt restore` in auto mode and forced to each of the 12 classes,
#      `maskdcpt compare` against the clean crop, `maskdcpt classify --csv`;
#   5. scripts/eval_report.py writes the tables.
#
# Environment: MASKDCPT_BUILD (build directory with cli/maskdcpt and
# trainer/maskdcpt-train, default <repo>/build), MASKDCPT_TRAINING_DATA
# (default <repo>/training-data, from scripts/prepare-training-data.sh),
# MASKDCPT_EVAL_CACHE, MASKDCPT_EVAL_JOBS (parallel processes, default
# nproc), MASKDCPT_EVAL_KEEP=1 (keep every restored image under
# OUTDIR/images), MASKDCPT_MIRROR (Debian mirror for the .deb),
# MASKDCPT_EVAL_LIMIT=N (only N of the crops, evenly spread: a quick check of
# the pipeline, not an evaluation; use its own MASKDCPT_EVAL_CACHE).
#
# Needs: bash, python3 (standard library), apt-get, dpkg-deb, sha256sum,
# debian-archive-keyring, the built tree, and the Debian 13 root for step 3
# (root privileges, as scripts/debian13-root.sh needs).

# SC2016: the single-quoted bash -c scripts expand in the child shell.
# shellcheck disable=SC2016
set -euo pipefail

# package version suite sha256-of-the-.deb
SKIMAGE_PIN="python3-skimage 0.19.3-8 bookworm 728d88c3e3440f1f3712de0805dc834d29248ff07e1eec8c0f3da07606f752f9"
# file in skimage/data, its SHA-256, licence (from the package's
# skimage/data/_fetchers.py; debian/copyright has only Files: * BSD-3-Clause)
SKIMAGE_IMAGES="
astronaut.png 88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5 public-domain (NASA)
chelsea.png   596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb CC0 (Stefan van der Walt)
coffee.png    cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7 CC0 (Rachel Michetti)
rocket.jpg    c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c public-domain (SpaceX)
"
CROP=256          # crop side
MAX_CROPS=4       # crops per photo at most
LEVEL=0.5         # degradation level of every class
SIGMA=25          # the extra Gaussian-noise benchmark, of 255
SET_VERSION=1     # bump when the seeds or the set's rules change

say() { printf 'evaluate: %s\n' "$*" >&2; }
die() { printf 'evaluate: error: %s\n' "$*" >&2; exit 1; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -eq 2 ] || die "usage: scripts/evaluate.sh WEIGHTS OUTDIR (--help for more)"
WEIGHTS=$(readlink -f "$1")
[ -r "$WEIGHTS" ] || die "cannot read $1"
mkdir -p "$2"
OUTDIR=$(cd "$2" && pwd)
BUILD=$(readlink -f "${MASKDCPT_BUILD:-$REPO/build}")
MASKDCPT=$BUILD/cli/maskdcpt
TRAIN=$BUILD/trainer/maskdcpt-train
DATA=$(readlink -f "${MASKDCPT_TRAINING_DATA:-$REPO/training-data}")
CACHE=${MASKDCPT_EVAL_CACHE:-$REPO/eval-data}
JOBS=${MASKDCPT_EVAL_JOBS:-$(nproc 2>/dev/null || echo 1)}
D13=$REPO/scripts/debian13-root.sh
[ -x "$MASKDCPT" ] || die "$MASKDCPT not built (set MASKDCPT_BUILD)"
[ -x "$TRAIN" ] || die "$TRAIN not built (set MASKDCPT_BUILD)"
[ -f "$DATA/training-manifest.tsv" ] || die "no training photos in $DATA: run scripts/prepare-training-data.sh"
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
T0=$(date +%s)

sha() { sha256sum "$@" | cut -d' ' -f1; }
key_of() { printf '%s\n' "$@" | sha256sum | cut -d' ' -f1; }

# ------------------------------------------------------ 1. scikit-image photos
SRC=$CACHE/sources
images_ok() {
    local name hash _
    while read -r name hash _; do
        [ -n "$name" ] || continue
        [ -f "$SRC/$name" ] && [ "$(sha "$SRC/$name")" = "$hash" ] || return 1
    done <<<"$SKIMAGE_IMAGES"
}
# apt with a private configuration and state (bookworm main of the host's
# mirror), as scripts/prepare-training-data.sh does: any Debian host works.
download_deb() { # package version suite destdir
    local A=$CACHE/apt mirror=${MASKDCPT_MIRROR:-} uri suite
    if [ -z "$mirror" ]; then
        # shellcheck source=scripts/apt-sources.sh
        . "$HERE/apt-sources.sh"
        while read -r uri suite; do
            case "$uri" in http://*|https://*|ftp://*|file:/*) mirror=${uri%/}; break ;; esac
        done < <(host_apt_sources)
    fi
    mirror=${mirror:-http://deb.debian.org/debian}
    mkdir -p "$A/etc/sources.list.d" "$A/etc/preferences.d" "$A/lists/partial" "$A/cache/archives/partial"
    : >"$A/status"; : >"$A/etc/preferences"
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' "${mirror%/}" "$3" >"$A/etc/sources.list"
    local opts=(-q -o "Dir::Etc::SourceList=$A/etc/sources.list" -o "Dir::Etc::SourceParts=$A/etc/sources.list.d"
        -o "Dir::Etc::Preferences=$A/etc/preferences" -o "Dir::Etc::PreferencesParts=$A/etc/preferences.d"
        -o "Dir::State::Lists=$A/lists" -o "Dir::State::status=$A/status" -o "Dir::Cache=$A/cache"
        -o "Acquire::Languages=none")
    case "$mirror" in *snapshot.debian.org*) opts+=(-o "Acquire::Check-Valid-Until=false") ;; esac
    [ "$(id -u)" = 0 ] && opts+=(-o "APT::Sandbox::User=root")
    say "apt-get update ($mirror $3, private state in $A)"
    apt-get "${opts[@]}" update >"$A/update.log" 2>&1 || { cat "$A/update.log" >&2; die "apt-get update failed"; }
    (cd "$4" || exit; apt-get "${opts[@]}" download "$1=$2" 2>&1 | grep -v '^Get:' >&2 || true)
}
if ! images_ok; then
    read -r pkg ver suite debsha <<<"$SKIMAGE_PIN"
    deb=$CACHE/debs/${pkg}_${ver}_all.deb
    mkdir -p "$CACHE/debs" "$SRC"
    if [ ! -f "$deb" ] || [ "$(sha "$deb")" != "$debsha" ]; then
        say "downloading $pkg $ver"
        rm -f "$deb"
        download_deb "$pkg" "$ver" "$suite" "$CACHE/debs"
        [ -f "$deb" ] || die "could not download $pkg=$ver; if it has left the mirror, set
  MASKDCPT_MIRROR=https://snapshot.debian.org/archive/debian/<YYYYMMDDTHHMMSSZ>"
    fi
    [ "$(sha "$deb")" = "$debsha" ] || die "$deb: SHA-256 differs from the pinned one"
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    dpkg-deb -x "$deb" "$tmp"
    while read -r name _; do
        [ -n "$name" ] && cp "$tmp/usr/lib/python3/dist-packages/skimage/data/$name" "$SRC/$name"
    done <<<"$SKIMAGE_IMAGES"
    cp "$tmp/usr/share/doc/python3-skimage/copyright" "$SRC/debian-copyright"
    rm -rf "$tmp"; trap - EXIT
    images_ok || die "the extracted images differ from the pinned SHA-256"
fi
# none of them may be training data: the training photos come from five
# other packages (docs/training-data.md)
if awk -F'\t' 'NR > 1 && $2 == "python3-skimage"' "$DATA/training-manifest.tsv" | grep -q .; then
    die "python3-skimage appears in the training manifest: the scikit-image photos are not held out"
fi
for f in "$SRC"/*.png "$SRC"/*.jpg; do
    if awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "sha256") c = i; next } { print $c }' \
            "$DATA/training-manifest.tsv" | grep -qx "$(sha "$f")"; then
        die "$f is a training photo"
    fi
done

# ------------------------------------------------------------------ 2. the set
SET=$CACHE/set
mkdir -p "$SET"
T1=$(date +%s)
"$TRAIN" split "$DATA" --crop "$CROP" >"$SET/validation.txt.new"
sources=()
while read -r f; do sources+=("val=$DATA/$f"); done <"$SET/validation.txt.new"
while read -r name _; do [ -n "$name" ] && sources+=("skimage=$SRC/$name"); done <<<"$SKIMAGE_IMAGES"
python3 "$HERE/eval_crops.py" "$CROP" "$MAX_CROPS" "${sources[@]}" >"$SET/crops.tsv.new"
if [ -n "${MASKDCPT_EVAL_LIMIT:-}" ]; then # a quick check of the pipeline: N crops, evenly spread
    awk -v n="$MASKDCPT_EVAL_LIMIT" -v t="$(wc -l <"$SET/crops.tsv.new")" \
        'int((NR - 1) * n / t) < int(NR * n / t)' "$SET/crops.tsv.new" >"$SET/crops.tsv.limit"
    mv "$SET/crops.tsv.limit" "$SET/crops.tsv.new"
fi
CLASSES=$("$MASKDCPT" degrade --list | awk 'NF == 2 && $1 ~ /^[0-9]+$/ { print $2 }' | tr '\n' ' ')
# The synthesis's version and ranges stand for the binary: DG_VERSION is
# bumped whenever a class's output changes.
SET_KEY=$(key_of "$SET_VERSION $LEVEL $SIGMA" "$(cat "$SET/crops.tsv.new")" \
    "$(cut -f3 "$SET/crops.tsv.new" | sort -u | xargs sha256sum | cut -d' ' -f1)" \
    "$("$MASKDCPT" degrade --list)")
if [ -f "$SET/.key" ] && [ "$(cat "$SET/.key")" = "$SET_KEY" ] && (cd "$SET" && sha256sum -c --quiet --status SHA256SUMS); then
    say "set: $(wc -l <"$SET/crops.tsv") crops, up to date"
    rm -f "$SET"/*.new
else
    say "set: degrading $(wc -l <"$SET/crops.tsv.new") crops x 13 (level $LEVEL; sigma $SIGMA)"
    rm -rf "$SET/clean" "$SET/degraded" "$SET/.key"
    mkdir -p "$SET/clean" "$SET/degraded"
    mv "$SET/validation.txt.new" "$SET/validation.txt"
    mv "$SET/crops.tsv.new" "$SET/crops.tsv"
    # crop number n (1-based, crops.tsv order): class k gets seed 100 n + k,
    # the sigma-25 noise seed 100 n + 50
    make_crop() { # n id path x y w h
        local n=$1 id=$2 path=$3 x=$4 y=$5 w=$6 h=$7 k=0 cls
        "$MASKDCPT" degrade "$path" "$SET/clean/$id.png" --type clean --crop "${w}x${h}+$x+$y" --bit-depth 8 >/dev/null
        for cls in $CLASSES; do
            "$MASKDCPT" degrade "$SET/clean/$id.png" "$SET/degraded/$id@$cls.png" --type "$cls" \
                --level "$LEVEL" --seed $((100 * n + k)) --bit-depth 8 >/dev/null
            k=$((k + 1))
        done
        "$MASKDCPT" degrade "$SET/clean/$id.png" "$SET/degraded/$id@noise-s$SIGMA.png" --type noise \
            --sigma "$SIGMA" --seed $((100 * n + 50)) --bit-depth 8 >/dev/null
    }
    export -f make_crop
    export MASKDCPT SET LEVEL SIGMA CLASSES
    awk -F'\t' '{ print NR, $1, $3, $4, $5, $6, $7 }' "$SET/crops.tsv" |
        xargs -P "$JOBS" -L 1 bash -ec 'make_crop "$@"' _
    [ "$(find "$SET/degraded" -name '*.png' | wc -l)" = $(($(wc -l <"$SET/crops.tsv") * 13)) ] ||
        die "the set is incomplete"
    (cd "$SET" && find clean degraded -name '*.png' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)
    echo "$SET_KEY" >"$SET/.key"
fi
T2=$(date +%s)

# ---------------------------------------------------------- 3. GEGL baselines
BASE=$CACHE/baselines
GRID=$HERE/eval-gegl-grid.tsv
BASE_KEY=$(key_of "$(cat "$SET/.key")" "$(sha "$GRID" "$REPO/tools/gegl_baselines.c" \
    "$REPO/degrade/metrics.c" "$REPO/degrade/metrics.h")")
if [ -f "$BASE/.key" ] && [ "$(cat "$BASE/.key")" = "$BASE_KEY" ]; then
    say "GEGL baselines: up to date"
else
    rm -rf "$BASE"; mkdir -p "$BASE"
    # the root sees the repository and /tmp; anything else must be bound
    case "$CACHE/" in "$REPO"/*|/tmp/*) ;; *) export MASKDCPT_BIND=$CACHE ;; esac
    say "GEGL baselines: compiling tools/gegl_baselines.c in the Debian 13 root"
    "$D13" run sh -c "gcc -O2 -std=c11 -Wall -Wextra -I'$REPO/degrade' '$REPO/tools/gegl_baselines.c' \
        '$REPO/degrade/metrics.c' \$(pkg-config --cflags --libs gegl-0.4) -lm -o '$BASE/gegl-baselines'" >&2
    "$D13" run pkg-config --modversion gegl-0.4 >"$BASE/gegl-version.txt"
    say "GEGL baselines: GEGL $(cat "$BASE/gegl-version.txt")"
    while read -r id _; do
        for cls in $CLASSES "noise-s$SIGMA"; do
            printf '%s@%s\t%s\t%s\t%s\n' "$id" "$cls" "$cls" "$SET/degraded/$id@$cls.png" "$SET/clean/$id.png"
        done
    done <"$SET/crops.tsv" >"$BASE/jobs.tsv"
    # one process per part of the job list; GEGL's own threads help less
    for j in $(seq 0 $((JOBS - 1))); do
        awk -v j="$j" -v n="$JOBS" '(NR - 1) % n == j' "$BASE/jobs.tsv" >"$BASE/jobs.$j.tsv"
    done
    say "GEGL baselines: $(grep -vc '^#' "$GRID") settings on $(wc -l <"$BASE/jobs.tsv") images, $JOBS processes"
    pids=()
    for j in $(seq 0 $((JOBS - 1))); do
        "$D13" run "$BASE/gegl-baselines" "$GRID" "$BASE/jobs.$j.tsv" "$BASE/grid.$j.csv" 2>"$BASE/log.$j.txt" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || die "gegl-baselines failed (see $BASE/log.*.txt)"; done
    { head -1 "$BASE/grid.0.csv"; for j in $(seq 0 $((JOBS - 1))); do tail -n +2 "$BASE/grid.$j.csv"; done; } >"$BASE/grid.csv"
    python3 "$HERE/eval_report.py" best "$GRID" "$BASE/grid.csv" "$BASE/best-grid.tsv" "$BASE/ranking.csv"
    "$D13" run "$BASE/gegl-baselines" "$BASE/best-grid.tsv" "$BASE/jobs.tsv" "$BASE/best.csv" --ssim 2>>"$BASE/log.0.txt"
    rm -f "$BASE"/jobs.*.tsv "$BASE"/grid.*.csv
    echo "$BASE_KEY" >"$BASE/.key"
fi
T3=$(date +%s)

# ------------------------------------------------------------------ 4. ours
RAW=$OUTDIR/raw IMAGES=$OUTDIR/images
rm -rf "$RAW" "$IMAGES"; mkdir -p "$RAW" "$IMAGES"
THREADS=$(( $(nproc 2>/dev/null || echo 1) / JOBS )); [ "$THREADS" -ge 1 ] || THREADS=1
say "ours: $(wc -l <"$SET/crops.tsv") crops x (12 classes x 13 restorations + 2), $JOBS processes of $THREADS threads"
eval_crop() { # id
    local id=$1 d=$IMAGES/$1 cls f
    mkdir -p "$d"
    # untrained weights make every call warn; keep other messages
    exec 2> >(grep -v 'untrained, random weights' >&2)
    for f in "$SET/degraded/$id"@*.png; do
        cls=${f##*@}; cls=${cls%.png}
        "$MASKDCPT" restore "$f" "$d/$id@$cls@auto.png" --weights "$WEIGHTS" --threads "$THREADS" --quiet
        if [ "$cls" = "noise-s$SIGMA" ]; then
            "$MASKDCPT" restore "$f" "$d/$id@$cls@as-noise.png" --type noise --weights "$WEIGHTS" --threads "$THREADS" --quiet
            continue
        fi
        for forced in $CLASSES; do
            "$MASKDCPT" restore "$f" "$d/$id@$cls@as-$forced.png" --type "$forced" --weights "$WEIGHTS" --threads "$THREADS" --quiet
        done
    done
    "$MASKDCPT" compare --csv "$SET/clean/$id.png" "$SET/degraded/$id"@*.png "$d"/*.png >"$RAW/$id.compare.csv"
    "$MASKDCPT" classify --csv "$SET/degraded/$id"@*.png --weights "$WEIGHTS" --threads "$THREADS" >"$RAW/$id.classify.csv"
    [ "${MASKDCPT_EVAL_KEEP:-0}" = 1 ] || rm -rf "$d"
}
export -f eval_crop
export MASKDCPT SET WEIGHTS IMAGES RAW THREADS SIGMA CLASSES
cut -f1 "$SET/crops.tsv" | xargs -P "$JOBS" -n 1 bash -ec 'eval_crop "$1"' _
[ "${MASKDCPT_EVAL_KEEP:-0}" = 1 ] || rmdir "$IMAGES"
T4=$(date +%s)

# ----------------------------------------------------------------- 5. report
cp "$BASE/ranking.csv" "$OUTDIR/gegl-ranking.csv"
{
    printf 'weights\t%s\n' "$WEIGHTS"
    printf 'weights_sha256\t%s\n' "$(sha "$WEIGHTS")"
    printf 'arch\t%s\n' "$("$MASKDCPT" info "$WEIGHTS" 2>/dev/null | grep -E '^(Architecture|Parameters)' | tr -s ' ' | paste -sd ';' - | sed 's/;/; /')"
    printf 'set_key\t%s\n' "$(cat "$SET/.key")"
    printf 'gegl\t%s\n' "$(cat "$BASE/gegl-version.txt" 2>/dev/null || echo '?')"
    printf 'crop\t%s\nlevel\t%s\n' "$CROP" "$LEVEL"
    printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'host\t%s, %s CPUs, %s processes\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$(nproc)" "$JOBS"
    printf 'seconds_set\t%s\nseconds_baselines\t%s\nseconds_ours\t%s\nseconds_total\t%s\n' \
        $((T2 - T1)) $((T3 - T2)) $((T4 - T3)) $(($(date +%s) - T0))
} >"$OUTDIR/info.tsv"
python3 "$HERE/eval_report.py" report "$SET" "$BASE" "$RAW" "$OUTDIR" "$OUTDIR/info.tsv"
say "wrote $OUTDIR/report.md ($(($(date +%s) - T0)) s)"
