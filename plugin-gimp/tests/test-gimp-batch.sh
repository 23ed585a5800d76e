#!/usr/bin/env bash
# Runs a Python test file inside a headless GIMP (gimp-console-3.0, batch
# mode, Python-Fu) with the plug-in installed in a throw-away profile.
#
# Usage: test-gimp-batch.sh GIMP-CONSOLE PLUGIN WEIGHTS WEIGHTS-FEW TMPDIR TEST.py
# Exit status: 0 when every check printed "ok", 77 (skip) without GIMP 3.
set -uo pipefail

GIMP=$1 PLUGIN=$2 WEIGHTS=$3 WEIGHTS_FEW=$4 TMPBASE=$5 TEST=$6
if [ -z "$GIMP" ] || ! command -v "$GIMP" >/dev/null; then
    echo "SKIP: gimp-console-3.0 not found"
    exit 77
fi

mkdir -p "$TMPBASE"
TMP=$(mktemp -d "$TMPBASE/gimp-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# GIMP wants plug-ins in a folder of their own name.
export GIMP3_DIRECTORY=$TMP/profile
mkdir -p "$GIMP3_DIRECTORY/plug-ins/maskdcpt-restore"
cp "$PLUGIN" "$GIMP3_DIRECTORY/plug-ins/maskdcpt-restore/maskdcpt-restore"
printf '(check-updates no)\n' >"$GIMP3_DIRECTORY/gimprc"

export MDG_TEST_WEIGHTS=$WEIGHTS MDG_TEST_WEIGHTS_FEW=$WEIGHTS_FEW MDG_TEST_TMP=$TMP
export GEGL_SWAP=$TMP XDG_CACHE_HOME=$TMP/cache NO_AT_BRIDGE=1
unset MASKDCPT_WEIGHTS DISPLAY

"$GIMP" -i -n --no-fonts --quit --batch-interpreter=python-fu-eval \
    -b "exec(open('$TEST').read())" >"$TMP/log" 2>&1
rc=$?
cat "$TMP/log"

if ! grep -q '^DONE 0 failed' "$TMP/log"; then
    echo "FAIL (gimp exit status $rc)"
    exit 1
fi
echo "PASS: $(grep -c '^ok - ' "$TMP/log") checks"
