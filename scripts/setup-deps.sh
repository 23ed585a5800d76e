#!/usr/bin/env bash
# Install the host build dependencies of maskdcpt's core and CLI on
# Debian/Ubuntu (apt-get), plus g++ for the emulated CUDA test
# (tests/cuda_emu), clang for the libFuzzer targets and debootstrap for
# scripts/debian13-root.sh.
#
# Usage: scripts/setup-deps.sh [--with-python] [--with-training] [--dry-run]
#   --with-python    also pip-install numpy (used by the development tools)
#   --with-training  also python3-pil, which scripts/prepare-training-data.sh
#                    needs (the trainer, scripts/evaluate.sh and the recipes
#                    read the photos it prepares)
#   --dry-run        only say what is missing / what would be run
#
# Idempotent: every package is checked with dpkg-query first; when nothing is
# missing apt-get is not run at all (not even `apt-get update`).
# Runs apt-get directly as root, through sudo otherwise.
#
# The GIMP 3 / GEGL parts need GIMP 3 development files (Debian 13 "trixie",
# Ubuntu 25.04+, Fedora 41+ ...). On an older host, build them inside the
# Debian 13 root made by scripts/debian13-root.sh.
set -euo pipefail

with_python=0
with_training=0
dry_run=0
for arg in "$@"; do
    case "$arg" in
        --with-python) with_python=1 ;;
        --with-training) with_training=1 ;;
        --dry-run) dry_run=1 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup-deps: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

say() { printf 'setup-deps: %s\n' "$*"; }
die() { printf 'setup-deps: error: %s\n' "$*" >&2; exit 1; }

{ command -v dpkg-query && command -v apt-get; } >/dev/null 2>&1 \
    || die "this script is for Debian/Ubuntu (dpkg + apt-get not found); install the equivalents of: gcc g++ meson ninja pkg-config json-c png jpeg webp (development files), clang, debootstrap"

# Distribution: Debian ships libjpeg62-turbo-dev, Ubuntu & others libjpeg-dev.
os_id=""
[ -r /etc/os-release ] && os_id=$(. /etc/os-release; echo "${ID:-}")
if [ "$os_id" = debian ]; then jpeg_pkg=libjpeg62-turbo-dev; else jpeg_pkg=libjpeg-dev; fi

packages=(gcc g++ meson ninja-build pkg-config libjson-c-dev libpng-dev "$jpeg_pkg"
          libwebp-dev gettext clang debootstrap)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is not installed; run this script as root"
    SUDO=(sudo)
fi

is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

# libFuzzer's runtime (-fsanitize=fuzzer) lives in libclang-rt-N-dev on recent
# Debian/Ubuntu, which clang only *recommends*. Name it when clang is present
# and the archive has that package (older releases ship it in clang itself).
fuzzer_runtime_pkg() {
    is_installed clang || return 0
    local ver major
    ver=$(dpkg-query -W -f='${Version}' clang 2>/dev/null || true)   # e.g. 1:14.0-55.7~deb12u1
    major=${ver#*:}; major=${major%%[.-]*}
    [[ "$major" =~ ^[0-9]+$ ]] || return 0
    if is_installed "libclang-rt-$major-dev" \
       || apt-cache show "libclang-rt-$major-dev" >/dev/null 2>&1; then
        echo "libclang-rt-$major-dev"
    fi
}

missing_from() {
    local p
    for p in "$@"; do is_installed "$p" || printf '%s\n' "$p"; done
}

apt_install() {
    # $@: packages to install
    local env=(env DEBIAN_FRONTEND=noninteractive)
    if [ "$dry_run" = 1 ]; then
        say "would run: ${SUDO[*]:+${SUDO[*]} }apt-get update && apt-get install -y --no-install-recommends $*"
        return 0
    fi
    if [ "$apt_updated" = 0 ]; then
        say "running: ${SUDO[*]:+${SUDO[*]} }apt-get update"
        "${SUDO[@]}" "${env[@]}" apt-get update
        apt_updated=1
    fi
    say "running: ${SUDO[*]:+${SUDO[*]} }apt-get install -y --no-install-recommends $*"
    "${SUDO[@]}" "${env[@]}" apt-get install -y --no-install-recommends "$@"
}

apt_updated=0
if [ "$with_training" = 1 ]; then packages+=(python3-pil); fi   # pulls in python3
if [ "$with_python" = 1 ] && ! command -v python3 >/dev/null 2>&1; then
    packages+=(python3)
fi

mapfile -t missing < <(missing_from "${packages[@]}")
if [ "${#missing[@]}" -eq 0 ]; then
    say "all ${#packages[@]} packages already installed: ${packages[*]}"
else
    say "missing: ${missing[*]}"
    apt_install "${missing[@]}"
fi

# Second pass: the libFuzzer runtime depends on which clang got installed.
rt=$(fuzzer_runtime_pkg)
if [ -n "$rt" ]; then
    if is_installed "$rt"; then
        say "libFuzzer runtime present: $rt"
    else
        say "missing libFuzzer runtime: $rt"
        apt_install "$rt"
    fi
fi

if [ "$with_python" = 1 ]; then
    if [ "$dry_run" = 0 ] && ! command -v python3 >/dev/null 2>&1; then
        die "python3 not found after installation"
    fi
    if command -v python3 >/dev/null 2>&1 && python3 -c 'import numpy' >/dev/null 2>&1; then
        say "numpy already importable by $(command -v python3): $(python3 -c 'import numpy; print(numpy.__version__)')"
    else
        if ! python3 -m pip --version >/dev/null 2>&1; then
            if is_installed python3-pip; then
                die "python3 -m pip does not work although python3-pip is installed"
            fi
            say "pip is not available for $(command -v python3 || echo python3)"
            apt_install python3-pip
        fi
        # pip itself falls back to a --user install when site-packages is
        # not writable; a PEP 668 "externally managed" system Python needs
        # a virtual environment (or an explicit override).
        pip_args=(install numpy)
        if [ -z "${VIRTUAL_ENV:-}" ] && ! python3 -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' 2>/dev/null; then
            stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))' 2>/dev/null || true)
            if [ -n "$stdlib" ] && [ -e "$stdlib/EXTERNALLY-MANAGED" ] && [ -z "${PIP_BREAK_SYSTEM_PACKAGES:-}" ]; then
                die "$(command -v python3) is externally managed (PEP 668): activate a virtual environment first
    (python3 -m venv .venv && . .venv/bin/activate && $0 --with-python)
  or allow pip anyway with PIP_BREAK_SYSTEM_PACKAGES=1"
            fi
        fi
        if [ "$dry_run" = 1 ]; then
            say "would run: python3 -m pip ${pip_args[*]}"
        else
            say "running: python3 -m pip ${pip_args[*]}"
            python3 -m pip "${pip_args[@]}"
        fi
    fi
fi

say "done"
