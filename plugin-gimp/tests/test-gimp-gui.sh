#!/usr/bin/env bash
# Runs a Python test file inside GIMP 3 with its GUI, on a private Xvfb
# display, with the plug-in installed in a throw-away profile.  The test
# drives the GUI with xdotool (keys to the image window and the dialog).
#
# Usage: test-gimp-gui.sh GIMP PLUGIN WEIGHTS TMPDIR TEST.py
# Exit status: 0 when every check printed "ok", 77 (skip) without GIMP 3,
# Xvfb or xdotool.
set -uo pipefail

GIMP=$1 PLUGIN=$2 WEIGHTS=$3 TMPBASE=$4 TEST=$5
if [ -z "$GIMP" ] || ! command -v "$GIMP" >/dev/null; then
    echo "SKIP: gimp-3.0 not found"
    exit 77
fi
for tool in Xvfb xdotool; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done

mkdir -p "$TMPBASE"
TMP=$(mktemp -d "$TMPBASE/gimp-gui-test.XXXXXX")
XPID=""
cleanup() {
    [ -n "$XPID" ] && kill "$XPID" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

Xvfb -displayfd 3 -screen 0 1280x900x24 -nolisten tcp 3>"$TMP/display" 2>"$TMP/xvfb.log" &
XPID=$!
for _ in $(seq 100); do [ -s "$TMP/display" ] && break; sleep 0.1; done
[ -s "$TMP/display" ] || { echo "FAIL: Xvfb did not start"; cat "$TMP/xvfb.log"; exit 1; }
DISPLAY=:$(cat "$TMP/display")
export DISPLAY

export GIMP3_DIRECTORY=$TMP/profile
mkdir -p "$GIMP3_DIRECTORY/plug-ins/maskdcpt-restore"
cp "$PLUGIN" "$GIMP3_DIRECTORY/plug-ins/maskdcpt-restore/maskdcpt-restore"
printf '(check-updates no)\n(show-welcome-dialog no)\n' >"$GIMP3_DIRECTORY/gimprc"

# Only two plug-ins: the one under test and python-eval (the batch
# interpreter).  A fresh profile makes GIMP query every plug-in it finds,
# 120 in Debian's GIMP 3.0, which took longer than the test itself.
# Where python-eval is not found, GIMP keeps its own plug-in path.
PYEVAL=""
for d in "$(pkg-config --variable=gimplibdir gimp-3.0 2>/dev/null)" \
         /usr/lib/*/gimp/3.0 /usr/lib/gimp/3.0 /usr/lib64/gimp/3.0; do
    [ -n "$d" ] && [ -f "$d/plug-ins/python-eval/python-eval.py" ] && { PYEVAL=$d/plug-ins/python-eval; break; }
done
if [ -n "$PYEVAL" ]; then
    cp -r "$PYEVAL" "$GIMP3_DIRECTORY/plug-ins/"
    # shellcheck disable=SC2016  # ${gimp_dir} is for GIMP to expand
    printf '(plug-in-path "${gimp_dir}/plug-ins")\n' >>"$GIMP3_DIRECTORY/gimprc"
fi

# The dialog's runs take their weights from $MASKDCPT_WEIGHTS.
export MASKDCPT_WEIGHTS=$WEIGHTS MDG_TEST_TMP=$TMP
export GEGL_SWAP=$TMP XDG_CACHE_HOME=$TMP/cache NO_AT_BRIDGE=1
unset MASKDCPT_TEST_CANCEL_AFTER

# A hung dialog would block the batch command: the test closes it itself,
# and timeout is the last resort.
start=${EPOCHREALTIME/[.,]/}
timeout 240 "$GIMP" -n --no-splash --no-fonts --batch-interpreter=python-fu-eval \
    -b "exec(open('$TEST').read())" --quit >"$TMP/log" 2>&1
rc=$?
cat "$TMP/log"
end=${EPOCHREALTIME/[.,]/}
echo "# gimp ran $(( (end - start) / 1000000 )).$(( (end - start) / 100000 % 10 )) s"

if ! grep -q '^DONE 0 failed' "$TMP/log"; then
    echo "FAIL (gimp exit status $rc)"
    exit 1
fi
echo "PASS: $(grep -c '^ok - ' "$TMP/log") checks"
