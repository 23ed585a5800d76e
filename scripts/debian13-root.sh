#!/usr/bin/env bash
# A Debian 13 ("trixie") root with GIMP 3, GEGL and GTK 3 development files,
# for building and testing maskdcpt's GEGL operation and GIMP plug-in on a
# host that has no GIMP 3 (e.g. Debian 12).
#
# You do NOT need this on a distribution that ships GIMP 3 and its
# development files (Debian 13+, Ubuntu 25.04+, Fedora 41+, Arch, ...):
# install them there and build with meson directly.
#
# Usage (as root, e.g. through sudo):
#   scripts/debian13-root.sh setup [--upgrade]   create / update the root
#   scripts/debian13-root.sh run CMD [ARGS...]   run CMD inside the root
#   scripts/debian13-root.sh shell               interactive bash inside the root
#   scripts/debian13-root.sh build [BUILDDIR] [MESON-SETUP-OPTIONS...]
#                                                meson setup (or reconfigure) + ninja,
#                                                BUILDDIR defaults to build-d13
#   scripts/debian13-root.sh test [BUILDDIR] [MESON-TEST-OPTIONS...]
#                                                meson test in BUILDDIR
#   scripts/debian13-root.sh versions            GIMP/GEGL/GTK/meson/gcc versions inside
#
# The root lives at ${MASKDCPT_ROOT:-<repo>/.debian13-root} (git-ignored).
# It is made with `debootstrap --variant=minbase trixie` from the Debian
# mirror configured for the host's apt (override: MASKDCPT_MIRROR=URL,
# MASKDCPT_SECURITY_MIRROR=URL or "none"). run/build/test create or update it
# on demand; a stamp file inside records the package list, so editing
# D13_PACKAGES below triggers an install on next use (and `setup` notices a
# changed mirror).
#
# Inside, commands run through chroot in a private mount namespace (unshare)
# with /proc, /dev, /sys, /tmp and the repository (at the same absolute path,
# so build directories are usable from both sides) mounted, and
# /usr/local/cuda mounted read-only when the host has it. The working
# directory is the repository; HOME=/root, LANG=C.UTF-8. Extra host paths can
# be mounted at the same place with MASKDCPT_BIND=/path1:/path2.
# Mounts disappear with the namespace; without unshare (or with
# MASKDCPT_NO_UNSHARE=1) they are made in the host's namespace, one command at
# a time, and removed by an exit trap.
#
# Concurrent invocations are serialised with flock: setup/updates take the
# lock exclusively, run/build/test share it.

# SC2016: the single-quoted scripts run inside the root, expanded there.
# SC2317: cleanup() is reached through a trap.
# shellcheck disable=SC2016,SC2317
set -euo pipefail

# Packages installed inside the root (all must exist in trixie).
D13_PACKAGES="gimp libgimp-3.0-dev libgegl-dev libgtk-3-dev libbabl-dev meson ninja-build gcc g++ pkg-config gettext xvfb xauth libjson-c-dev libpng-dev libjpeg-dev libwebp-dev python3 python3-gi gir1.2-gimp-3.0 gegl xdotool x11-apps netpbm locales"

D13_SUITE=trixie
D13_SAFE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd -P)
ROOT=${MASKDCPT_ROOT:-$REPO/.debian13-root}

say()  { printf 'debian13-root: %s\n' "$*" >&2; }
die()  { printf 'debian13-root: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^$/p' "$SELF" | sed '/^$/d; s/^# \{0,1\}//'
}

# ---------------------------------------------------------------- helpers --

# Print the mount points at or below $1 (as seen by this mount namespace).
mounts_under() {
    local dir=$1
    awk -v d="$dir" '{ t=$5; gsub(/\\040/, " ", t); if (t == d || index(t, d "/") == 1) print t }' \
        /proc/self/mountinfo
}

sorted_packages() { tr ' ' '\n' <<<"$D13_PACKAGES" | sed '/^$/d' | sort -u | tr '\n' ' ' | sed 's/ $//'; }

# host_apt_sources: "URI SUITE" pairs of the host's apt sources.
. "$REPO/scripts/apt-sources.sh"

# Sets MIRROR and SECURITY_MIRROR ("" = none).
find_mirrors() {
    local codenames='(trixie|bookworm|bullseye|buster|forky|sid|unstable|testing|stable|oldstable)'
    local uri suite
    MIRROR=${MASKDCPT_MIRROR:-}
    SECURITY_MIRROR=${MASKDCPT_SECURITY_MIRROR:-}
    while read -r uri suite; do
        uri=${uri%/}
        case "$uri" in http://*|https://*|ftp://*|file:/*) ;; *) continue ;; esac
        if [[ "$suite" =~ ^$codenames-security$ || "$suite" =~ ^$codenames/updates$ ]]; then
            [ -n "$SECURITY_MIRROR" ] || SECURITY_MIRROR=$uri
        elif [[ "$suite" =~ ^$codenames(-updates|-backports|-proposed-updates)?$ ]]; then
            [ -n "$MIRROR" ] || MIRROR=$uri
        fi
    done < <(host_apt_sources)
    [ "$SECURITY_MIRROR" = none ] && SECURITY_MIRROR=""
    [ -n "$MIRROR" ] || die "no Debian mirror found in the host's apt sources (/etc/apt/sources.list{,.d/*}).
  Set MASKDCPT_MIRROR to a Debian archive URL, e.g. MASKDCPT_MIRROR=http://<your-debian-mirror>/debian"
    MIRROR=${MIRROR%/}
    SECURITY_MIRROR=${SECURITY_MIRROR%/}
}

# The deb822 sources file written into the root.
root_sources() {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$MIRROR" "$D13_SUITE" "$D13_SUITE"
    if [ -n "$SECURITY_MIRROR" ]; then
        printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$SECURITY_MIRROR" "$D13_SUITE"
    fi
}

BASE_STAMP=.maskdcpt-base-complete      # debootstrap finished
OWNER_MARK=.maskdcpt-debian13-root      # this directory is ours (may be wiped)
PKG_STAMP=.maskdcpt-packages            # what the last successful install had

# The package stamp: what a successful install had. (A change of the apt
# sources is detected by setup, which then drops the stamp.)
desired_stamp() {
    printf 'suite: %s\npackages: %s\n' "$D13_SUITE" "$(sorted_packages)"
}

base_complete() { [ -f "$ROOT/$BASE_STAMP" ] && [ -x "$ROOT/usr/bin/apt-get" ]; }

root_ready() {
    base_complete && [ -f "$ROOT/$PKG_STAMP" ] && [ "$(cat "$ROOT/$PKG_STAMP")" = "$(desired_stamp)" ]
}

# ------------------------------------------------------------------ locks --

LOCK_FILE=""
lock_init() {
    local dir=/run/lock
    [ -d "$dir" ] && [ -w "$dir" ] || dir=${TMPDIR:-/tmp}
    LOCK_FILE="$dir/maskdcpt-debian13-root.$(printf '%s' "$ROOT" | sha256sum | cut -c1-16).lock"
    exec 9>>"$LOCK_FILE"
}
lock() {   # lock -x | -s
    if ! flock -n "$1" 9; then
        say "waiting for the lock ($LOCK_FILE): another setup/run is using $ROOT"
        flock "$1" 9
    fi
}

# ------------------------------------------------------------ mount logic --

# Runs as a separate process (normally in a fresh mount namespace):
#   __enter WORKDIR CMD...
# Environment: _D13_ROOT, _D13_REPO, _D13_BINDS (newline separated),
# _D13_PASSENV (NAME=VALUE lines), _D13_HOSTNS=1 when sharing the host's
# mount namespace.
enter_root() {
    local workdir=$1; shift
    local root=$_D13_ROOT repo=$_D13_REPO
    D13_MOUNTED=()

    cleanup() {
        local i t
        for (( i=${#D13_MOUNTED[@]}-1; i>=0; i-- )); do
            t=${D13_MOUNTED[$i]}
            umount -R "$t" 2>/dev/null || umount -R -l "$t" 2>/dev/null \
                || say "warning: could not unmount $t"
        done
        D13_MOUNTED=()
    }
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP

    bind() {   # bind SRC DST [ro|rec]  (rec: recursive, for /dev and /sys)
        local src=$1 dst=$2
        if [ -d "$src" ]; then mkdir -p "$dst"; else
            mkdir -p "$(dirname "$dst")"; [ -e "$dst" ] || : >"$dst"
        fi
        if [ "${3:-}" = rec ]; then mount --rbind "$src" "$dst"; else mount --bind "$src" "$dst"; fi
        D13_MOUNTED+=("$dst")
        if [ "${3:-}" = ro ]; then
            mount -o remount,bind,ro "$dst" 2>/dev/null \
                || say "warning: could not make $dst read-only"
        fi
    }

    if [ "${_D13_HOSTNS:-0}" != 1 ]; then
        # Never let our mounts propagate back to the host.
        mount --make-rprivate / 2>/dev/null || true
    fi
    mount -t proc proc "$root/proc"; D13_MOUNTED+=("$root/proc")
    bind /dev "$root/dev" rec
    bind /sys "$root/sys" rec
    bind /tmp "$root/tmp"
    bind "$repo" "$root$repo"
    if [ -d /usr/local/cuda ]; then
        bind "$(readlink -f /usr/local/cuda)" "$root/usr/local/cuda" ro
    fi
    local p
    while IFS= read -r p; do
        [ -n "$p" ] || continue
        [ -e "$p" ] || { say "warning: MASKDCPT_BIND: $p does not exist, skipped"; continue; }
        p=$(readlink -f "$p")
        case "$p" in /|/proc|/proc/*|/dev|/dev/*|/sys|/sys/*) say "warning: refusing to bind $p"; continue ;; esac
        bind "$p" "$root$p"
    done <<<"${_D13_BINDS:-}"
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

    local path=$D13_SAFE_PATH
    [ -d /usr/local/cuda ] && path=$path:/usr/local/cuda/bin
    local envv=(HOME=/root LANG=C.UTF-8 PATH="$path" TERM="${TERM:-dumb}"
                DEBIAN_FRONTEND=noninteractive)
    local line
    while IFS= read -r line; do
        if [ -n "$line" ]; then envv+=("$line"); fi
    done <<<"${_D13_PASSENV:-}"

    local rc=0
    chroot "$root" /usr/bin/env -i "${envv[@]}" \
        /bin/sh -c 'cd "$1" || exit 1; shift; exec "$@"' d13 "$workdir" "$@" || rc=$?
    exit "$rc"
}

# Host-namespace mounts: one command at a time (lock on fd 8, kept across exec).
host_ns_mount_lock() {
    local mlock="$LOCK_FILE.mounts"
    exec 8>>"$mlock"
    flock -n 8 || { say "waiting for $mlock (another command is using the mounts)"; flock 8; }
    [ -z "$(mounts_under "$ROOT")" ] || die "stale mounts below $ROOT:
$(mounts_under "$ROOT")
  unmount them first (umount -R <path>)"
}

# in_root WORKDIR CMD... : run CMD inside the root; returns its status.
# With D13_EXEC=1 this process is replaced (the lock fd is inherited, so the
# lock stays held until the command ends, and signals reach it directly).
in_root() {
    [ "$#" -ge 2 ] || die "in_root: no command"
    local passenv="" v
    for v in CUDA_VISIBLE_DEVICES NINJA_STATUS MESON_TESTTHREADS COLUMNS $(compgen -e | grep '^MASKDCPT_' | grep -v '^MASKDCPT_ROOT$' || true); do
        if [ -n "${!v+x}" ]; then passenv+="$v=${!v}"$'\n'; fi
    done
    local binds=""
    if [ -n "${MASKDCPT_BIND:-}" ]; then binds=$(tr ':' '\n' <<<"$MASKDCPT_BIND"); fi
    [ -n "${_EXTRA_BIND:-}" ] && binds+=$'\n'"$_EXTRA_BIND"
    export _D13_ROOT="$ROOT" _D13_REPO="$REPO" _D13_BINDS="$binds" _D13_PASSENV="$passenv"
    local rc=0
    if [ "${MASKDCPT_NO_UNSHARE:-0}" != 1 ] && unshare --mount --propagation private true 2>/dev/null; then
        export _D13_HOSTNS=0
        if [ "${D13_EXEC:-0}" = 1 ]; then
            exec unshare --mount --propagation private -- "$SELF" __enter "$@"
        fi
        unshare --mount --propagation private -- "$SELF" __enter "$@" || rc=$?
    else
        # No mount namespaces here: mount in the host's namespace, one user at
        # a time (a second lock, so setup/run sharing rules stay as they are).
        [ "${MASKDCPT_NO_UNSHARE:-0}" = 1 ] \
            || say "note: unshare --mount unavailable; mounting in the host namespace (cleaned up on exit)"
        export _D13_HOSTNS=1
        if [ "${D13_EXEC:-0}" = 1 ]; then
            host_ns_mount_lock
            exec "$SELF" __enter "$@"
        fi
        ( host_ns_mount_lock; "$SELF" __enter "$@" ) || rc=$?
    fi
    return "$rc"
}

# ------------------------------------------------------------------ setup --

do_setup() {   # called with the exclusive lock held
    local upgrade=${1:-0}
    find_mirrors
    say "root: $ROOT"
    say "mirror: $MIRROR${SECURITY_MIRROR:+ (security: $SECURITY_MIRROR)}"

    if [ -e "$ROOT" ] && ! base_complete; then
        [ -d "$ROOT" ] || die "$ROOT exists and is not a directory"
        if [ -n "$(mounts_under "$ROOT")" ]; then
            die "incomplete root $ROOT has mounts below it; unmount them first:
$(mounts_under "$ROOT")"
        fi
        if [ -e "$ROOT/$OWNER_MARK" ] || [ -z "$(ls -A "$ROOT")" ]; then
            say "removing incomplete root $ROOT (an earlier debootstrap did not finish)"
            rm -rf --one-file-system "$ROOT"
        else
            die "$ROOT exists but is not a root made by this script; move it away or set MASKDCPT_ROOT"
        fi
    fi

    if ! base_complete; then
        command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap, or scripts/setup-deps.sh)"
        local keyring=/usr/share/keyrings/debian-archive-keyring.gpg kr=()
        if [ -f "$keyring" ]; then kr=(--keyring="$keyring"); else
            say "warning: $keyring not found (install debian-archive-keyring); debootstrap may refuse to verify the archive"
        fi
        local arch
        arch=$(dpkg --print-architecture 2>/dev/null || true)
        mkdir -p "$ROOT"
        : >"$ROOT/$OWNER_MARK"
        say "debootstrap --variant=minbase $D13_SUITE $ROOT $MIRROR"
        local t0=$SECONDS
        debootstrap --variant=minbase ${arch:+--arch="$arch"} "${kr[@]}" \
            "$D13_SUITE" "$ROOT" "$MIRROR" \
            || die "debootstrap failed (log: $ROOT/debootstrap/debootstrap.log); re-run setup to retry from scratch"
        # Quieter, faster dpkg; no services started inside the root.
        printf 'force-unsafe-io\n' >"$ROOT/etc/dpkg/dpkg.cfg.d/maskdcpt-unsafe-io"
        printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"; chmod 755 "$ROOT/usr/sbin/policy-rc.d"
        printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
            >"$ROOT/etc/apt/apt.conf.d/90maskdcpt-no-recommends"
        : >"$ROOT/$BASE_STAMP"
        say "base system ready ($((SECONDS - t0)) s)"
        upgrade=1   # bring the base up to date with ${D13_SUITE}-updates/-security
        rm -f "$ROOT/$PKG_STAMP"
    fi

    local sources
    sources=$(root_sources)
    if [ "$(cat "$ROOT/etc/apt/sources.list.d/debian.sources" 2>/dev/null || true)" != "$sources" ] \
       || [ -s "$ROOT/etc/apt/sources.list" ]; then
        printf '%s\n' "$sources" >"$ROOT/etc/apt/sources.list.d/debian.sources"
        : >"$ROOT/etc/apt/sources.list"
        rm -f "$ROOT/$PKG_STAMP"
    fi

    if [ "$upgrade" = 1 ] || ! root_ready; then
        local t0=$SECONDS pkgs
        read -r -a pkgs <<<"$(sorted_packages)"
        say "installing inside the root: ${pkgs[*]}"
        # One shell inside the root: update, check every name exists, install.
        in_root / /bin/sh -ec '
            upgrade=$1; shift
            apt-get update -q
            missing=""
            for p in "$@"; do
                apt-cache show "$p" >/dev/null 2>&1 || missing="$missing $p"
            done
            if [ -n "$missing" ]; then
                echo "debian13-root: error: not in the archive:$missing" >&2; exit 3
            fi
            if [ "$upgrade" = 1 ]; then apt-get -y -q dist-upgrade; fi
            apt-get install -y -q --no-install-recommends "$@"
            apt-get clean
        ' d13 "$upgrade" "${pkgs[@]}" || die "package installation inside the root failed (see above)"
        desired_stamp >"$ROOT/$PKG_STAMP"
        say "packages ready ($((SECONDS - t0)) s)"
    else
        say "root is up to date (package list unchanged; 'setup --upgrade' to update packages)"
    fi
}

# Make sure the root is ready; leaves the lock held *shared*.
ensure_ready() {
    lock -s
    if ! root_ready; then
        flock -u 9; lock -x
        if ! root_ready; then
            say "root missing or out of date: running setup first"
            do_setup 0
        fi
        lock -s
    fi
}

require_root() {
    if [ "$(id -u)" -ne 0 ]; then
        die "must run as root (debootstrap, chroot and mounts need it); try:
  sudo $0 $*"
    fi
    command -v chroot >/dev/null || die "chroot not found (coreutils)"
}

# Absolute path of a build directory given relative to the repository.
abs_builddir() {
    case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$REPO/$1" ;; esac
}

# Bind BUILDDIR when it is neither inside the repository nor under /tmp.
need_extra_bind() {
    local b=$1
    case "$b/" in "$REPO"/*|/tmp/*) return 1 ;; esac
    return 0
}

chown_to_sudo_user() {
    # Files made as root inside a build dir of the invoking user: give them back.
    if [ -n "${SUDO_UID:-}" ] && [ "${SUDO_UID}" != 0 ] && [ -d "$1" ]; then
        chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$1" || true
    fi
}

# ------------------------------------------------------------------- main --

cmd=${1:-}
[ "$#" -gt 0 ] && shift

case "$cmd" in
    __enter)
        enter_root "$@"
        ;;
    ""|-h|--help|help)
        if [ -n "$cmd" ]; then usage; else usage >&2; fi
        [ -n "$cmd" ] || exit 2
        ;;
    setup)
        require_root setup "$@"
        upgrade=0
        for a in "$@"; do
            case "$a" in --upgrade) upgrade=1 ;; *) die "setup: unknown option '$a'" ;; esac
        done
        lock_init; lock -x
        t0=$SECONDS
        do_setup "$upgrade"
        say "setup done in $((SECONDS - t0)) s"
        ;;
    run)
        require_root run "$@"
        [ "$#" -gt 0 ] || die "usage: $0 run CMD [ARGS...]"
        lock_init; ensure_ready
        D13_EXEC=1 in_root "$REPO" "$@"
        ;;
    shell)
        require_root shell "$@"
        lock_init; ensure_ready
        D13_EXEC=1 in_root "$REPO" /bin/bash "$@"
        ;;
    versions)
        require_root versions
        lock_init; ensure_ready
        in_root "$REPO" /bin/sh -c '
            echo "GIMP:  $(gimp-console-3.0 --version 2>/dev/null | head -n1)"
            echo "GEGL:  $(pkg-config --modversion gegl-0.4)"
            echo "babl:  $(pkg-config --modversion babl-0.1)"
            echo "libgimp: $(pkg-config --modversion gimp-3.0)"
            echo "GTK:   $(pkg-config --modversion gtk+-3.0)"
            echo "meson: $(meson --version)"
            echo "ninja: $(ninja --version)"
            echo "gcc:   $(gcc -dumpfullversion)"
            echo "python3: $(python3 -c "import sys; print(sys.version.split()[0])")"
            [ -x /usr/local/cuda/bin/nvcc ] && echo "nvcc:  $(/usr/local/cuda/bin/nvcc --version | tail -n1)" || true
        '
        ;;
    build|test)
        require_root "$cmd" "$@"
        builddir=build-d13
        if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then builddir=$1; shift; fi
        builddir=$(abs_builddir "$builddir")
        lock_init; ensure_ready
        _EXTRA_BIND=""
        if need_extra_bind "$builddir"; then
            mkdir -p "$builddir"; _EXTRA_BIND=$builddir
        fi
        rc=0
        if [ "$cmd" = build ]; then
            say "building $REPO in $builddir (inside the Debian 13 root)"
            in_root "$REPO" /bin/sh -ec '
                b=$1; shift
                if [ -f "$b/meson-private/coredata.dat" ]; then
                    if [ "$#" -gt 0 ]; then meson setup --reconfigure "$b" "$@"; fi
                else
                    meson setup "$b" "$@"
                fi
                ninja -C "$b"
            ' d13 "$builddir" "$@" || rc=$?
        else
            [ -f "$builddir/build.ninja" ] || die "$builddir is not configured; run: $0 build ${builddir#"$REPO"/}"
            say "testing in $builddir (inside the Debian 13 root)"
            in_root "$REPO" meson test -C "$builddir" --print-errorlogs "$@" || rc=$?
        fi
        chown_to_sudo_user "$builddir"
        exit "$rc"
        ;;
    *)
        die "unknown subcommand '$cmd' (setup, run, shell, build, test, versions; --help)"
        ;;
esac
