#!/usr/bin/env bash
# Prepare maskdcpt's training photos from openly licensed Debian packages
# (issue 4; docs/training-data.md has the sources, rules and licences).
#
# Usage: scripts/prepare-training-data.sh [--update-repo] [--force] [--jobs N] [OUTDIR]
#
#   OUTDIR         where the photos go (default <repo>/training-data, git-ignored):
#                  OUTDIR/<package>--<name>.jpg, OUTDIR/training-manifest.tsv,
#                  OUTDIR/rejected.tsv (what was left out, and why), OUTDIR/SUMMARY.md.
#                  Downloaded .debs and apt's state are kept in OUTDIR/.cache
#                  (override: MASKDCPT_TRAINING_CACHE=DIR); leave it out when
#                  shipping the data.
#   --update-repo  copy the manifest to data/training-manifest.tsv and redraw
#                  docs/images/training-contact-sheet.png (for a maintainer who
#                  changed the rules; otherwise the run only compares with them)
#   --force        rebuild even if OUTDIR is up to date
#   --jobs N       image worker processes (default: number of CPUs)
#
# What it does:
#   1. downloads the pinned package versions below with `apt-get download`,
#      using a private apt configuration and state under the cache directory
#      (sources: bookworm + trixie main of the host's Debian mirror, override
#      MASKDCPT_MIRROR=URL); needs neither root nor changes to the host's apt.
#      Each .deb is checked against its pinned SHA-256.
#   2. unpacks them with dpkg-deb -x into a temporary directory,
#   3. runs scripts/training_data.py, which finds the photos (also inside
#      Enlightenment .edj and Qt .rcc containers), drops renders, drawings and
#      cut-outs, down-scales x2 (x4 for visibly compressed sources) with
#      Lanczos-3 and writes JPEG quality 95, 4:4:4 + the manifest,
#   4. compares OUTDIR/training-manifest.tsv with the committed
#      data/training-manifest.tsv and prints the manifest's SHA-256.
#
# Idempotent: a second run with nothing changed checks the outputs' SHA-256
# and stops (no network, no unpacking). Deterministic: same packages and
# same Pillow/libjpeg/libwebp give byte-identical files.
#
# Needs: bash, apt-get, dpkg-deb, sha256sum, debian-archive-keyring, and
# python3 with Pillow (scripts/setup-deps.sh --with-training, or apt-get
# install python3-pil). /usr/bin/python3 is preferred when it has Pillow
# (a pyenv/venv python3 first on PATH often has not).
#
# If a pinned version has left the mirror, use a snapshot of the archive:
#   MASKDCPT_MIRROR=https://snapshot.debian.org/archive/debian/20250901T000000Z \
#       scripts/prepare-training-data.sh
set -euo pipefail

# package  version  suite  sha256 of the .deb
PINS="
enlightenment-data 0.25.4-2 bookworm 205df83b80b3a999757b07d7ad1908332c96c6edae559548346bc8af4f292bef
gcompris-qt-data   3.1-2    bookworm e9cf06ab2105529068df73085784e835d2ff03f870d2a8091f09125d40abac9f
lxqt-themes        1.2.0-1  bookworm d518df36b515b09d36cb00b12645dd8ce170bb82bb0966297741905ce3edc8e1
mate-backgrounds   1.26.0-1 bookworm 7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04
budgie-backgrounds 3.0-1    trixie   b91c2d5209558bc11d8d3a161f22a608857e3f8c735980cfab0d6650b03014ca
"
SUITES="bookworm trixie"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

say() { printf 'prepare-training-data: %s\n' "$*"; }
die() { printf 'prepare-training-data: error: %s\n' "$*" >&2; exit 1; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
HELPER=$HERE/training_data.py

update_repo=0 force=0 jobs=$(nproc 2>/dev/null || echo 1) OUTDIR=
while [ $# -gt 0 ]; do
    case "$1" in
        --update-repo) update_repo=1 ;;
        --force) force=1 ;;
        --jobs) [ $# -ge 2 ] || die "--jobs needs a number"; jobs=$2; shift ;;
        --jobs=*) jobs=${1#--jobs=} ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option '$1' (try --help)" ;;
        *) [ -z "$OUTDIR" ] || die "only one OUTDIR"; OUTDIR=$1 ;;
    esac
    shift
done
OUTDIR=${OUTDIR:-$REPO/training-data}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
CACHE=${MASKDCPT_TRAINING_CACHE:-$OUTDIR/.cache}
mkdir -p "$CACHE/debs"
CACHE=$(cd "$CACHE" && pwd)
T0=$(date +%s)

# ---------------------------------------------------------------- tools
PY=
for p in /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import PIL.Image, PIL.ImageCms' 2>/dev/null; then
        PY=$(command -v "$p"); break
    fi
done
[ -n "$PY" ] || die "needs python3 with Pillow: scripts/setup-deps.sh --with-training (or apt-get install python3-pil)"
command -v dpkg-deb >/dev/null || die "needs dpkg-deb (package dpkg)"
command -v sha256sum >/dev/null || die "needs sha256sum (package coreutils)"

# ---------------------------------------------------------------- up to date?
stamp_key() {
    { printf '%s\n' "$PINS"; sha256sum "$HELPER" "$0" | cut -d' ' -f1; } | sha256sum | cut -d' ' -f1
}
outputs_ok() {
    local m=$OUTDIR/training-manifest.tsv
    [ -f "$m" ] || return 1
    awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "sha256") c = i; next }
                { print $c "  " $1 }' "$m" | (cd "$OUTDIR" && sha256sum -c --quiet --status -)
}
KEY=$(stamp_key)
if [ "$force" = 0 ] && [ -f "$OUTDIR/.stamp" ] && [ "$(cat "$OUTDIR/.stamp")" = "$KEY" ] && outputs_ok; then
    say "$OUTDIR is up to date ($(($(wc -l <"$OUTDIR/training-manifest.tsv") - 1)) photos; --force rebuilds)"
    built=0
else
    built=1
fi

# ---------------------------------------------------------------- download
# host_apt_sources: "URI SUITE" lines of the host's apt sources.
. "$HERE/apt-sources.sh"
find_mirror() {
    local codenames='(trixie|bookworm|bullseye|buster|forky|sid|unstable|testing|stable|oldstable)'
    local uri suite
    MIRROR=${MASKDCPT_MIRROR:-}
    if [ -z "$MIRROR" ]; then
        while read -r uri suite; do
            uri=${uri%/}
            case "$uri" in http://*|https://*|ftp://*|file:/*) ;; *) continue ;; esac
            if [[ "$suite" =~ ^$codenames(-updates|-backports|-proposed-updates)?$ ]]; then
                MIRROR=$uri; break
            fi
        done < <(host_apt_sources)
    fi
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
    MIRROR=${MIRROR%/}
}

APT_OPTS=()
apt_init() {   # private apt configuration + state, then apt-get update
    [ "${#APT_OPTS[@]}" -eq 0 ] || return 0
    command -v apt-get >/dev/null || die "needs apt-get to download the packages"
    [ -f "$KEYRING" ] || die "needs $KEYRING: apt-get install debian-archive-keyring"
    find_mirror
    local A=$CACHE/apt s
    mkdir -p "$A/etc/sources.list.d" "$A/etc/preferences.d" "$A/lists/partial" "$A/cache/archives/partial"
    : >"$A/status"
    : >"$A/etc/preferences"
    for s in $SUITES; do
        printf 'deb [signed-by=%s] %s %s main\n' "$KEYRING" "$MIRROR" "$s"
    done >"$A/etc/sources.list"
    APT_OPTS=(-q
        -o "Dir::Etc::SourceList=$A/etc/sources.list"
        -o "Dir::Etc::SourceParts=$A/etc/sources.list.d"
        -o "Dir::Etc::Preferences=$A/etc/preferences"
        -o "Dir::Etc::PreferencesParts=$A/etc/preferences.d"
        -o "Dir::State::Lists=$A/lists"
        -o "Dir::State::status=$A/status"
        -o "Dir::Cache=$A/cache"
        -o "Acquire::Languages=none")
    case "$MIRROR" in *snapshot.debian.org*) APT_OPTS+=(-o "Acquire::Check-Valid-Until=false") ;; esac
    [ "$(id -u)" = 0 ] && APT_OPTS+=(-o "APT::Sandbox::User=root")
    say "apt-get update ($MIRROR: $SUITES, private state in $A)"
    apt-get "${APT_OPTS[@]}" update >"$A/update.log" 2>&1 || { cat "$A/update.log" >&2; die "apt-get update failed"; }
}

deb_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

SRC_ARGS=()
while read -r pkg ver suite sha; do
    [ -n "$pkg" ] || continue
    deb=$CACHE/debs/${pkg}_${ver}_all.deb
    if [ "$built" = 1 ] && ! deb_ok "$deb" "$sha"; then
        apt_init
        say "downloading $pkg $ver ($suite)"
        rm -f "$deb"
        (cd "$CACHE/debs" || exit 1
         apt-get "${APT_OPTS[@]}" download "$pkg=$ver" 2>&1 | grep -v '^Get:' || true)
        [ -f "$deb" ] || die "could not download $pkg=$ver from $MIRROR ($suite). If this version has left
  the mirror, use a snapshot: MASKDCPT_MIRROR=https://snapshot.debian.org/archive/debian/<YYYYMMDDTHHMMSSZ>"
        deb_ok "$deb" "$sha" || die "$deb: SHA-256 differs from the pinned one"
    fi
    SRC_ARGS+=("$pkg $ver $deb")
done <<<"$PINS"

# ---------------------------------------------------------------- unpack + build
if [ "$built" = 1 ]; then
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/maskdcpt-training.XXXXXX")
    trap 'rm -rf "$TMP"' EXIT
    say "unpacking ${#SRC_ARGS[@]} packages into $TMP"
    PY_ARGS=() pids=()
    for s in "${SRC_ARGS[@]}"; do
        read -r pkg ver deb <<<"$s"
        mkdir -p "$TMP/$pkg"
        dpkg-deb -x "$deb" "$TMP/$pkg" & pids+=($!)
        PY_ARGS+=(--src "$pkg" "$ver" "$TMP/$pkg")
    done
    for p in "${pids[@]}"; do wait "$p" || die "dpkg-deb -x failed"; done
    say "unpacked after $(($(date +%s) - T0)) s"
    rm -f "$OUTDIR/.stamp"
    "$PY" "$HELPER" build "${PY_ARGS[@]}" --out "$OUTDIR" --jobs "$jobs"
    rm -rf "$TMP"
    trap - EXIT
    outputs_ok || die "the outputs do not match the manifest just written"
    printf '%s\n' "$KEY" >"$OUTDIR/.stamp"
fi

# ---------------------------------------------------------------- compare / update
M=$OUTDIR/training-manifest.tsv
C=$REPO/data/training-manifest.tsv
SHEET=$REPO/docs/images/training-contact-sheet.png
if [ "$update_repo" = 1 ]; then
    mkdir -p "$(dirname "$C")" "$(dirname "$SHEET")"
    cp "$M" "$C"
    "$PY" "$HELPER" sheet "$OUTDIR" "$SHEET"
    say "updated $C and $SHEET"
elif [ -f "$C" ]; then
    if cmp -s "$M" "$C"; then
        say "manifest matches the committed data/training-manifest.tsv"
    else
        say "WARNING: the manifest differs from the committed data/training-manifest.tsv:"
        diff <(cut -f1,13 "$C") <(cut -f1,13 "$M") | sed -n '1,20p' >&2 || true
        say "(other Pillow/libjpeg/libwebp versions give other bytes; see docs/training-data.md)"
    fi
fi
n=$(($(wc -l <"$M") - 1))
bytes=$(awk -F'\t' 'NR > 1 { print $1 }' "$M" | (cd "$OUTDIR" && xargs -d '\n' stat -c %s) | awk '{ s += $1 } END { print s }')
say "$n photos, $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }') MiB) in $OUTDIR"
say "manifest sha256 $(sha256sum "$M" | cut -d' ' -f1)"
say "done in $(($(date +%s) - T0)) s"
