#!/usr/bin/env bash
# maskdcpt:restore through the real `gegl` command-line tool.
#
# Usage: test-gegl-cli.sh GEGL TOOL WEIGHTS PHOTO GRAPHS_DIR DEFAULT_WEIGHTS TMPDIR
#   GEGL: the gegl program ("" when it is not installed or cannot load this
#   build's module, as in a sanitizer build: the test is skipped)
#   TOOL: gegl-test-tool (makes test PNGs, compares images, reads bit depths)
#   WEIGHTS: an untrained weights file; PHOTO: data/samples/coffee.png;
#   GRAPHS_DIR: data/graphs; DEFAULT_WEIGHTS: the installed default's path.
# GEGL_PATH must list the build's gegl-op/ and GEGL's own module directory.
# Prints one line per check; exits 1 if any failed, 77 (skip) without gegl.
# SC2016: `check DESCRIPTION eval '...'` expands its condition when it runs.
# shellcheck disable=SC2016
set -u

GEGL=$1 TOOL=$2 WEIGHTS=$3 PHOTO=$4 GRAPHS=$5 DEFAULT_WEIGHTS=$6 TMP=$7
if [ -z "$GEGL" ]; then
    echo "SKIP: no usable gegl command-line tool (Debian package 'gegl'; not with sanitizers)"
    exit 77
fi
W=$(mktemp -d "$TMP/gegl-cli.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
unset MASKDCPT_WEIGHTS
failures=0

pass() { printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*"; failures=$((failures + 1)); }
check() {  # check DESCRIPTION COMMAND...: passes when COMMAND succeeds
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

# restore NAME IN [PROPERTY=VALUE...]: gegl IN -o $W/NAME.png -- maskdcpt:restore ...
# with stderr in $W/NAME.err and the exit status in $W/NAME.rc
restore() {
    local name=$1 in=$2; shift 2
    "$GEGL" "$in" -o "$W/$name.png" -- maskdcpt:restore "$@" >"$W/$name.err" 2>&1
    echo $? >"$W/$name.rc"
}
wrote() { [ "$(cat "$W/$1.rc")" = 0 ] && [ -s "$W/$1.png" ]; }
warned() { grep -q "GEGL-WARNING.*maskdcpt:restore: .*$2" "$W/$1.err"; }
# compare A B: sets size, rgb_max, rgb_mean, alpha_max (R'G'B'A float differences)
# info FILE: sets depth, channels, fine (16-bit samples off the 8-bit grid)
compare() {
    local out
    size=missing rgb_max=nan rgb_mean=nan alpha_max=nan
    out=$("$TOOL" compare "$1" "$2") && [[ "$out" =~ ^size=[a-z]+( [a-z_]+=[-+.0-9a-z]+)+$ ]] &&
        eval "$out"
    [ "$size" = same ] || rgb_max=nan rgb_mean=nan alpha_max=nan
}
info() {
    local out
    depth=0 channels=0 fine=0
    out=$("$TOOL" info "$1") && [[ "$out" =~ ^depth=[0-9]+\ channels=[0-9]+\ fine=[0-9]+$ ]] &&
        eval "$out"
}
# Numeric tests; anything not a number (a failed compare) fails them.
num() { [[ "$1" =~ ^[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]]; }
gt() { num "$1" && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 > b + 0) }'; }
lt() { num "$1" && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }
# "Unchanged" through PNG files: an 8-bit sample read back from the 16-bit
# PNG the gegl tool writes can differ by one float rounding (6e-8) with
# some babl versions; 1e-6 is still far below one 16-bit step (1.5e-5).
is0() { num "$1" && awk -v a="$1" 'BEGIN { exit !(a + 0 < 1e-6) }'; }

# ------------------------------------------------------------- discovery --
if "$GEGL" --list-all 2>/dev/null | grep -qx 'maskdcpt:restore'; then
    pass "gegl --list-all lists maskdcpt:restore"
else
    fail "gegl --list-all lists maskdcpt:restore (GEGL_PATH=${GEGL_PATH:-unset})"
    exit 1
fi
info_text=$("$GEGL" --info maskdcpt:restore 2>/dev/null)
for prop in degradation strength weights device tile-size; do
    check "gegl --info describes property '$prop'" grep -q "^$prop  *\[" <<<"$info_text"
done
check "gegl --info shows the GIMP menu path" \
    grep -q 'gimp:menu-path  *<Image>/Filters/Enhance' <<<"$info_text"

# ---------------------------------------------------------------- inputs --
if ! { "$TOOL" make "$W/in-rgba8.png" 96 64 8 4 1 &&
        "$TOOL" make "$W/in-rgb16.png" 96 64 16 3 2 &&
        "$TOOL" make "$W/in-grey8.png" 64 48 8 1 3 &&
        "$TOOL" make "$W/in-small.png" 20 13 8 4 4; }; then
    fail "making the test images"
    exit 1
fi

# ------------------------------------------------------------- restoring --
restore photo "$PHOTO" weights="$WEIGHTS" degradation=auto
check "a photo restores (exit 0, file written)" wrote photo
check "... the untrained weights are flagged" warned photo 'untrained'
compare "$PHOTO" "$W/photo.png"
check "... the output differs from the input (max $rgb_max)" gt "$rgb_max" 0.001

restore zero "$PHOTO" weights="$WEIGHTS" strength=0
compare "$PHOTO" "$W/zero.png"
check "strength=0 gives the input (max change $rgb_max)" is0 "$rgb_max"

restore noise "$PHOTO" weights="$WEIGHTS" degradation=noise strength=0.7 device=cpu
check "degradation=noise strength=0.7 device=cpu" wrote noise
compare "$W/photo.png" "$W/noise.png"
check "... differs from auto at full strength (max $rgb_max)" gt "$rgb_max" 0

restore rgba "$W/in-rgba8.png" weights="$WEIGHTS"
compare "$W/in-rgba8.png" "$W/rgba.png"
check "RGBA: colour changed (max $rgb_max)" gt "$rgb_max" 0.001
check "RGBA: alpha untouched (max change $alpha_max)" is0 "$alpha_max"

restore rgb16 "$W/in-rgb16.png" weights="$WEIGHTS"
info "$W/rgb16.png"
check "16-bit PNG in, 16-bit PNG out (depth $depth)" [ "$depth" = 16 ]
check "... with 16-bit detail ($fine samples off the 8-bit grid)" gt "$fine" 1000
check "... and still RGB without alpha ($channels channels)" [ "$channels" = 3 ]
compare "$W/in-rgb16.png" "$W/rgb16.png"
check "... changed (max $rgb_max)" gt "$rgb_max" 0.001

restore grey "$W/in-grey8.png" weights="$WEIGHTS"
info "$W/grey.png"
compare "$W/in-grey8.png" "$W/grey.png"
check "a grey image stays grey ($channels channel) and changes (max $rgb_max)" \
    eval '[ "$channels" = 1 ] && gt "$rgb_max" 0.001'

# ------------------------------------------------------------------ sizes --
restore small "$W/in-small.png" weights="$WEIGHTS" tile-size=64
compare "$W/in-small.png" "$W/small.png"
check "20 x 13 image, smaller than a 64 px tile (max $rgb_max, alpha $alpha_max)" \
    eval 'wrote small && gt "$rgb_max" 0.001 && is0 "$alpha_max"'

restore tiled "$PHOTO" weights="$WEIGHTS" tile-size=64
compare "$PHOTO" "$W/tiled.png"
check "600 x 400 photo in 64 px tiles (max change $rgb_max)" eval 'wrote tiled && gt "$rgb_max" 0.001'
compare "$W/photo.png" "$W/tiled.png"
check "... agrees with the automatic tiling (max $rgb_max, mean $rgb_mean)" \
    eval 'lt "$rgb_max" 0.0078 && lt "$rgb_mean" 0.00078'  # 2/255, 0.2/255

# --------------------------------------------------------------- failures --
restore missing "$PHOTO" weights="$W/no-such-file.safetensors"
compare "$PHOTO" "$W/missing.png"
check "missing weights file: exit 0, output written" wrote missing
check "... a GEGL warning naming the file" warned missing "no-such-file.safetensors"
check "... and the image unchanged (max change $rgb_max)" is0 "$rgb_max"

printf 'not a weights file' >"$W/broken.safetensors"
restore broken "$PHOTO" weights="$W/broken.safetensors"
compare "$PHOTO" "$W/broken.png"
check "broken weights file: warning, image unchanged (max $rgb_max)" \
    eval 'wrote broken && warned broken "passed through unchanged" && is0 "$rgb_max"'

if [ ! -e "$DEFAULT_WEIGHTS" ]; then
    restore nodefault "$PHOTO"
    compare "$PHOTO" "$W/nodefault.png"
    check "no weights anywhere: warning names $DEFAULT_WEIGHTS, image unchanged" \
        eval 'wrote nodefault && warned nodefault "not installed" && is0 "$rgb_max"'
fi

MASKDCPT_WEIGHTS=$WEIGHTS restore fromenv "$PHOTO"
compare "$W/photo.png" "$W/fromenv.png"
check "\$MASKDCPT_WEIGHTS supplies the weights (same result as the property)" \
    eval 'wrote fromenv && is0 "$rgb_max"'

restore cuda "$PHOTO" weights="$WEIGHTS" device=cuda
compare "$PHOTO" "$W/cuda.png"
if warned cuda 'passed through'; then
    check "device=cuda where CUDA is unusable: warning, image unchanged" is0 "$rgb_max"
else
    check "device=cuda restores (max $rgb_max)" gt "$rgb_max" 0.001
fi

# ------------------------------------------------------------ composition --
"$GEGL" "$PHOTO" -o "$W/chain.png" -- \
    maskdcpt:restore weights="$WEIGHTS" degradation=auto strength=0.8 \
    gegl:unsharp-mask std-dev=1.2 scale=0.4 >"$W/chain.err" 2>&1
echo $? >"$W/chain.rc"
compare "$W/photo.png" "$W/chain.png"
check "a chain: maskdcpt:restore then gegl:unsharp-mask (differs from restore alone: $rgb_max)" \
    eval 'wrote chain && gt "$rgb_max" 0.001'

# The XML example (its gegl:load path is relative to the file).
MASKDCPT_WEIGHTS=$WEIGHTS "$GEGL" "$GRAPHS/restore-and-sharpen.xml" -o "$W/xml.png" >"$W/xml.err" 2>&1
echo $? >"$W/xml.rc"
compare "$PHOTO" "$W/xml.png"
check "data/graphs/restore-and-sharpen.xml runs (max change $rgb_max)" \
    eval 'wrote xml && ! warned xml "passed through" && gt "$rgb_max" 0.001'

echo "$failures failure(s)"
[ "$failures" = 0 ]
