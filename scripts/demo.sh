#!/usr/bin/env bash
# The main job: installs the build dependencies, builds, and restores the
# bundled noisy sample photo (data/samples/crab-noise.png) with the shipped
# weights (data/default.safetensors) into build/crab-noise-restored.png,
# printing the degradation the network detected.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
build/cli/maskdcpt restore data/samples/crab-noise.png build/crab-noise-restored.png \
  --weights data/default.safetensors
