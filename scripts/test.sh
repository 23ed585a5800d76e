#!/usr/bin/env bash
# The test command: installs the build dependencies (scripts/setup-deps.sh),
# builds with meson in build/, runs every test, then builds again with
# AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/ and runs the
# unit tests under them, and runs the libFuzzer targets (clang, build-fuzz/)
# once over their seed corpora.
#
# Usage: scripts/test.sh [--no-deps] [--no-sanitizers]
set -euo pipefail
cd "$(dirname "$0")/.."

deps=1 sanitizers=1
for arg in "$@"; do
  case "$arg" in
    --no-deps) deps=0 ;;
    --no-sanitizers) sanitizers=0 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

[ "$deps" = 1 ] && scripts/setup-deps.sh

configure() { # builddir [meson options...]
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

echo "== build (release) =="
configure build
ninja -C build
echo "== tests (release) =="
meson test -C build --print-errorlogs

if [ "$sanitizers" = 1 ]; then
  echo "== build (ASan + UBSan) =="
  # nvcc takes no sanitizer flags; the CUDA code is checked by
  # compute-sanitizer on a GPU machine (scripts/gpu-check.sh) instead.
  configure build-asan -Dbuildtype=debugoptimized -Db_sanitize=address,undefined \
    -Db_lundef=false -Dcuda=disabled
  ninja -C build-asan
  echo "== tests (ASan + UBSan) =="
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --print-errorlogs --suite unit --timeout-multiplier 4

  if command -v clang >/dev/null; then
    echo "== fuzz targets over their seed corpora (clang, ASan + UBSan) =="
    # only the two targets are built, not the rest of the tree with clang
    CC=clang configure build-fuzz -Dfuzz=true -Dcuda=disabled -Dtrainer=disabled \
      -Dgegl=disabled -Dgimp=disabled
    ninja -C build-fuzz tests/fuzz/fuzz_weights tests/fuzz/fuzz_image_read
    meson test -C build-fuzz --no-rebuild --print-errorlogs --suite fuzz
  else
    echo "== fuzz targets: skipped, clang is not installed (scripts/setup-deps.sh installs it) =="
  fi
fi
echo "== all tests passed =="
