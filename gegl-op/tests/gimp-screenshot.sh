#!/usr/bin/env bash
# Screenshots of maskdcpt:restore inside GIMP 3, made under Xvfb, for docs/.
#
# Usage: gegl-op/tests/gimp-screenshot.sh BUILDDIR [OUTDIR]
#   BUILDDIR: a build with the GEGL op (BUILDDIR/gegl-op/maskdcpt-restore.so)
#   OUTDIR: where to write the images (default docs/images)
# Needs GIMP 3, Xvfb, xdotool, xwd (x11-apps) and netpbm; on a host without
# GIMP 3 run it in the Debian 13 root:
#   scripts/debian13-root.sh run gegl-op/tests/gimp-screenshot.sh /tmp/build-gegl
#
# It starts GIMP on data/samples/coffee.png with GEGL_PATH naming the build,
# in a throw-away GIMP profile, opens the op through GIMP's action search
# ("/", "maskdcpt", Return: the same action as Filters > Enhance >
# Restore (MaskDCPT)...) and writes
#   OUTDIR/gegl-op-in-gimp.png    the op's dialog open on the photo
#   OUTDIR/gegl-op-gimp-menu.png  Filters > Enhance listing the op
# No weights file is given, so the op warns (GIMP prints the GEGL warning)
# and the preview is the photo unchanged: nothing in the pictures pretends
# to be a restoration.  There is no window manager: windows are placed with
# xdotool and menus, which are separate X windows, are captured one by one
# and pasted onto the screen image.
set -euo pipefail

BUILD=$(cd "${1:?usage: $0 BUILDDIR [OUTDIR]}" && pwd)
REPO=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${2:-$REPO/docs/images}
W=1440 H=900
mkdir -p "$OUT"
TMP=$(mktemp -d)
XPID="" GPID=""
cleanup() {
    [ -n "$GPID" ] && kill "$GPID" 2>/dev/null
    [ -n "$XPID" ] && kill "$XPID" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

for tool in gimp-3.0 Xvfb xdotool xwd xwdtopnm pnmtopng pnmpaste pamcut; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found" >&2; exit 1; }
done

# A free display, chosen by the X server itself.
Xvfb -displayfd 3 -screen 0 "${W}x${H}x24" -nolisten tcp 3>"$TMP/display" 2>"$TMP/xvfb.log" &
XPID=$!
for _ in $(seq 50); do [ -s "$TMP/display" ] && break; sleep 0.1; done
DISPLAY=:$(cat "$TMP/display")
export DISPLAY

GEGL_PATH=$BUILD/gegl-op:$(pkg-config --variable=pluginsdir gegl-0.4)
export GEGL_PATH
export GIMP3_DIRECTORY=$TMP/profile NO_AT_BRIDGE=1
mkdir -p "$GIMP3_DIRECTORY"
printf '(check-updates no)\n' >"$GIMP3_DIRECTORY/gimprc"
unset MASKDCPT_WEIGHTS

gimp-3.0 --no-splash --no-fonts "$REPO/data/samples/coffee.png" >"$TMP/gimp.log" 2>&1 &
GPID=$!

# wait_window PATTERN [SECONDS]: prints the id of a visible window so named
wait_window() {
    local id
    for _ in $(seq $((${2:-60} * 4))); do
        id=$(xdotool search --onlyvisible --name "$1" 2>/dev/null | tail -n1) || true
        if [ -n "$id" ]; then echo "$id"; return 0; fi
        sleep 0.25
    done
    echo "$0: no window '$1' appeared; GIMP said:" >&2
    tail -n 20 "$TMP/gimp.log" >&2
    return 1
}
grab() {  # grab OUT.pnm [WINDOW]
    if [ -n "${2:-}" ]; then xwd -silent -id "$2"; else xwd -silent -root; fi | xwdtopnm 2>/dev/null >"$1"
}
geometry() {  # geometry WINDOW: sets X Y WIDTH HEIGHT
    eval "$(xdotool getwindowgeometry --shell "$1")"
}

main=$(wait_window ' – GIMP$' 90)
sleep 2
# First start of a profile: GIMP greets; close that dialog.
if welcome=$(wait_window '^Welcome to GIMP' 5 2>/dev/null); then
    xdotool windowfocus "$welcome" key Escape
    sleep 0.5
fi
xdotool windowsize "$main" "$W" "$H" windowfocus "$main"
sleep 1

# The action search finds the op by name, as it lists every filter.
xdotool key slash
search=$(wait_window '^Search Actions$' 10)
xdotool windowfocus "$search"
sleep 0.3
xdotool type --delay 60 'maskdcpt'
sleep 1.5
xdotool key Return
dialog=$(wait_window 'maskdcpt:restore' 30)
sleep 3                               # the preview runs (and passes through)
xdotool windowmove "$dialog" 975 440
sleep 1
grab "$TMP/dialog.pnm"
pnmtopng -compression 9 "$TMP/dialog.pnm" >"$OUT/gegl-op-in-gimp.png"

# Filters > Enhance: open the menus by pointer, then paste each menu
# window's own picture onto the screen picture.
menubar_filters_x=426
xdotool mousemove "$menubar_filters_x" 11 click 1
sleep 1.5
menu=$(xdotool search --onlyvisible --name '^GNU Image Manipulation Program$' | tail -n1)
geometry "$menu"; mx=$X my=$Y mh=$HEIGHT
xdotool mousemove $((mx + 60)) $((my + 138))     # "Enhance", the 6th entry
sleep 1.5
sub=$(xdotool search --onlyvisible --name '^GNU Image Manipulation Program$' | grep -vx "$menu" | tail -n1)
geometry "$sub"; sx=$X sy=$Y sw=$WIDTH sh=$HEIGHT
grab "$TMP/screen.pnm"
grab "$TMP/menu.pnm" "$menu"
grab "$TMP/sub.pnm" "$sub"
pnmpaste -replace "$TMP/menu.pnm" "$mx" "$my" "$TMP/screen.pnm" >"$TMP/a.pnm"
pnmpaste -replace "$TMP/sub.pnm" "$sx" "$sy" "$TMP/a.pnm" >"$TMP/b.pnm"
right=$((sx + sw + 16)) bottom=$(( (my + mh > sy + sh ? my + mh : sy + sh) + 16 ))
pamcut -left 0 -top 0 -width $((right > W ? W : right)) -height $((bottom > H ? H : bottom)) \
    "$TMP/b.pnm" | pnmtopng -compression 9 >"$OUT/gegl-op-gimp-menu.png"
xdotool key Escape Escape

grep -h 'maskdcpt' "$TMP/gimp.log" || true
ls -l "$OUT/gegl-op-in-gimp.png" "$OUT/gegl-op-gimp-menu.png"
