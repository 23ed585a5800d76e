#!/usr/bin/env bash
# Runs a Python test file inside GIMP 3 with its GUI, on a private Xvfb
# display, with the plug-in installed in a throw-away profile.  The test
# drives the GUI with xdotool (keys to the image window and the dialog).
#
# Usage: test-gimp-gui.sh GIMP PLUGIN WEIGHTS TMPDIR TEST.py
# Exit status: 0 when every check printed "ok", 77 (skip) without GIMP 3,
# Xvfb or xdotool, or unless MASKDCPT_GUI_TESTS=1: the undo checks are not
# reliable yet (docs/gimp.md, "Tests"), so the default run skips them.
set -uo pipefail

if [ "${MASKDCPT_GUI_TESTS:-0}" != 1 ]; then
    echo "SKIP: set MASKDCPT_GUI_TESTS=1 to run the GUI tests (not yet reliable)"
    exit 77
fi

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
export DISPLAY=:$(cat "$TMP/display")

export GIMP3_DIRECTORY=$TMP/profile
mkdir -p "$GIMP3_DIRECTORY/plug-ins/maskdcpt-restore"
cp "$PLUGIN" "$GIMP3_DIRECTORY/plug-ins/maskdcpt-restore/maskdcpt-restore"
printf '(check-updates no)\n(show-welcome-dialog no)\n' >"$GIMP3_DIRECTORY/gimprc"

# The dialog's runs take their weights from $MASKDCPT_WEIGHTS.
export MASKDCPT_WEIGHTS=$WEIGHTS MDG_TEST_TMP=$TMP
export GEGL_SWAP=$TMP XDG_CACHE_HOME=$TMP/cache NO_AT_BRIDGE=1
unset MASKDCPT_TEST_CANCEL_AFTER

# A hung dialog would block the batch command: the test closes it itself,
# and timeout is the last resort.
timeout 240 "$GIMP" -n --no-splash --no-fonts --batch-interpreter=python-fu-eval \
    -b "exec(open('$TEST').read())" --quit >"$TMP/log" 2>&1
rc=$?
cat "$TMP/log"

if ! grep -q '^DONE 0 failed' "$TMP/log"; then
    echo "FAIL (gimp exit status $rc)"
    exit 1
fi
echo "PASS: $(grep -c '^ok - ' "$TMP/log") checks"
