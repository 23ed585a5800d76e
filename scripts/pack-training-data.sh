#!/usr/bin/env bash
# pack-training-data.sh [SRC] [DST] [LONG_SIDE] - a compact copy of the
# training photos for machines that receive them over a size limit (the
# project's GPU sessions carry at most 64 MiB): each photo is scaled so its
# long side is at most LONG_SIDE (default 1280) and stored as JPEG quality
# 95 under the SAME file name (maskdcpt reads images by their content, and
# the held-out split hashes the names, so the split is unchanged).  The
# manifest is copied with a line saying how the pack was made.
#
# Defaults: training-data -> gpu-data (git-ignored).  Needs python3 with
# PIL (Debian: python3-pil).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-training-data}
dst=${2:-gpu-data}
long=${3:-1280}
[ -f "$src/training-manifest.tsv" ] || { echo "no $src/training-manifest.tsv: run scripts/prepare-training-data.sh" >&2; exit 1; }
rm -rf "$dst"
mkdir -p "$dst"
/usr/bin/python3 - "$src" "$dst" "$long" <<'PY'
import os, sys
from PIL import Image
src, dst, long_side = sys.argv[1], sys.argv[2], int(sys.argv[3])
n = 0
for name in sorted(os.listdir(src)):
    if not name.lower().endswith((".png", ".jpg", ".jpeg", ".webp")):
        continue
    im = Image.open(os.path.join(src, name)).convert("RGB")
    scale = long_side / max(im.size)
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    im.save(os.path.join(dst, name), "JPEG", quality=95, subsampling=0)
    n += 1
print(f"{n} photos packed")
PY
{ cat "$src/training-manifest.tsv"
  echo "# packed by scripts/pack-training-data.sh: long side <= $long px, JPEG quality 95, same names"
} > "$dst/training-manifest.tsv"
du -sh "$dst"
