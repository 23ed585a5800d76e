#!/usr/bin/env bash
# The main job: installs the build dependencies, builds, and restores the
# bundled sample photo (data/samples/coffee.png) into build/coffee-restored.png,
# printing the degradation the network detected.
#
# Until trained weights are bundled (data/default.safetensors), it makes an
# UNTRAINED random-initialised weights file to show the pipeline working end
# to end; such output is not a restoration and the tool says so.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
weights=data/default.safetensors
if [ ! -f "$weights" ]; then
  weights=build/untrained.safetensors
  echo "demo: no trained weights bundled yet; using an untrained random network ($weights)"
  build/cli/maskdcpt init "$weights" --seed 1 --residual-scale 0.05 >/dev/null
fi
build/cli/maskdcpt restore data/samples/coffee.png build/coffee-restored.png --weights "$weights"
