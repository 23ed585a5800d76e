#!/usr/bin/env bash
# Screenshots of the plug-in's dialog inside GIMP 3, made under Xvfb, for
# docs/gimp.md.
#
# Usage: plugin-gimp/tests/gimp-dialog-screenshot.sh BUILDDIR [OUTDIR] [LANG...]
#   BUILDDIR: a build with the plug-in (BUILDDIR/plugin-gimp/maskdcpt-restore),
#             the tool (BUILDDIR/cli/maskdcpt) and the catalogs (BUILDDIR/po)
#   OUTDIR:   where to write the images (default docs/images)
#   LANG:     languages to show (default: en de)
# Needs GIMP 3, Xvfb, xdotool, xwd (x11-apps) and netpbm; on a host without
# GIMP 3 run it in the Debian 13 root:
#   scripts/debian13-root.sh run plugin-gimp/tests/gimp-dialog-screenshot.sh /tmp/build-gimp
#
# For each language it starts GIMP in a throw-away profile with the plug-in,
# opens data/samples/cityscape-rain.png and calls the procedure in interactive mode
# from Python-Fu (no menus to walk, so no translated window titles to look
# for), then writes
#   OUTDIR/gimp-dialog-auto-LANG.png    Auto-detect, with the probability bars
#   OUTDIR/gimp-dialog-forced-LANG.png  a forced class (JPEG artifacts)
# The weights are the shipped ones, data/default.safetensors (override:
# MASKDCPT_WEIGHTS), so the bars show what the network detects in the
# sample.  The dialog is cancelled: the image is not changed.
set -euo pipefail

BUILD=$(cd "${1:?usage: $0 BUILDDIR [OUTDIR] [LANG...]}" && pwd)
REPO=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${2:-$REPO/docs/images}
shift $(( $# >= 2 ? 2 : 1 ))
LANGS=("$@")
[ ${#LANGS[@]} -gt 0 ] || LANGS=(en de)
W=1280 H=900
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

for tool in gimp-3.0 Xvfb xdotool xwd xwdtopnm pnmtopng; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found" >&2; exit 1; }
done

Xvfb -displayfd 3 -screen 0 "${W}x${H}x24" -nolisten tcp 3>"$TMP/display" 2>"$TMP/xvfb.log" &
XPID=$!
for _ in $(seq 50); do [ -s "$TMP/display" ] && break; sleep 0.1; done
DISPLAY=:$(cat "$TMP/display")
export DISPLAY NO_AT_BRIDGE=1

export MASKDCPT_WEIGHTS=${MASKDCPT_WEIGHTS:-$REPO/data/default.safetensors}
export MASKDCPT_LOCALEDIR=$BUILD/po
export GEGL_SWAP=$TMP XDG_CACHE_HOME=$TMP/cache

wait_window() {  # wait_window PATTERN [SECONDS]: id of a visible window so named
    local id
    for _ in $(seq $((${2:-60} * 4))); do
        id=$(xdotool search --onlyvisible --name "$1" 2>/dev/null | tail -n1) || true
        if [ -n "$id" ]; then echo "$id"; return 0; fi
        sleep 0.25
    done
    echo "$0: no window '$1' appeared; GIMP said:" >&2
    tail -n 30 "$TMP/gimp.log" >&2
    return 1
}
grab() {  # grab WINDOW OUT.png
    xwd -silent -id "$1" | xwdtopnm 2>/dev/null | pnmtopng -compression 9 >"$2"
}

for lang in "${LANGS[@]}"; do
    export GIMP3_DIRECTORY=$TMP/profile-$lang
    mkdir -p "$GIMP3_DIRECTORY/plug-ins/maskdcpt-restore"
    cp "$BUILD/plugin-gimp/maskdcpt-restore" "$GIMP3_DIRECTORY/plug-ins/maskdcpt-restore/"
    printf '(check-updates no)\n(show-welcome-dialog no)\n' >"$GIMP3_DIRECTORY/gimprc"

    # gettext ignores $LANGUAGE in the C locale, so a language other than
    # English needs its locale.  A root without it (the Debian 13 root has
    # only C.UTF-8) gets one made with localedef from the host's sources:
    #   MASKDCPT_BIND=/usr/share/i18n scripts/debian13-root.sh run ...
    locale_env=(LANGUAGE="$lang")
    if [ "$lang" != en ]; then
        # "de" -> de_DE (the first of de_*), "zh_CN" -> zh_CN
        pat=$lang; [[ $lang == *_* ]] || pat="${lang}_[A-Z][A-Z]"
        loc=$(locale -a 2>/dev/null | grep -i "^${pat}\.utf-\?8$" | head -n1) || true
        if [ -z "$loc" ]; then
            src=$(ls /usr/share/i18n/locales 2>/dev/null | grep -x "$pat" | sort | head -n1) || true
            [ -n "$src" ] || { echo "$0: no locale for '$lang' and no sources to make one" >&2; exit 1; }
            mkdir -p "$TMP/locale"
            localedef -i "$src" -f UTF-8 "$TMP/locale/$src.UTF-8" 2>/dev/null || true
            loc=$src.UTF-8
            locale_env+=(LOCPATH="$TMP/locale")
        fi
        locale_env+=(LC_ALL="$loc" LANG="$loc")
    fi

    # The mnemonic of the degradation combo in this language.
    label=$(env "${locale_env[@]}" TEXTDOMAINDIR="$BUILD/po" gettext -d maskdcpt '_Degradation:')
    mnemonic=$(printf '%s' "${label#*_}" | cut -c1 | tr '[:upper:]' '[:lower:]')

    # The dialog blocks the batch command until it is closed.
    env "${locale_env[@]}" gimp-3.0 --no-splash --no-fonts --batch-interpreter=python-fu-eval -b "
from gi.repository import Gio
img = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path('$REPO/data/samples/cityscape-rain.png'))
Gimp.Display.new(img)
proc = Gimp.get_pdb().lookup_procedure('plug-in-maskdcpt-restore')
c = proc.create_config()
c.set_property('run-mode', Gimp.RunMode.INTERACTIVE)
c.set_property('image', img)
c.set_core_object_array('drawables', [img.get_layers()[0]])
proc.run(c)
" >"$TMP/gimp.log" 2>&1 &
    GPID=$!

    dialog=$(wait_window 'MaskDCPT' 120)
    sleep 4                         # the bars fill, the preview is restored
    xdotool windowmove "$dialog" 40 40
    sleep 1
    grab "$dialog" "$OUT/gimp-dialog-auto-$lang.png"

    # Forced: the combo (Alt and its mnemonic), six down from Auto-detect:
    # clean, noise, gaussian-blur, motion-blur, defocus-blur, jpeg.
    xdotool windowfocus "$dialog"
    sleep 0.5
    xdotool key --window "$dialog" "alt+$mnemonic"
    sleep 0.3
    for _ in 1 2 3 4 5 6; do xdotool key --window "$dialog" Down; sleep 0.2; done
    sleep 1.5
    grab "$dialog" "$OUT/gimp-dialog-forced-$lang.png"

    xdotool key --window "$dialog" Escape
    sleep 1
    grep -h -i 'maskdcpt' "$TMP/gimp.log" || true
    kill "$GPID" 2>/dev/null || true
    wait "$GPID" 2>/dev/null || true
    GPID=""
done
ls -l "$OUT"/gimp-dialog-*.png
