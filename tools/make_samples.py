#!/usr/bin/python3
"""Before/after samples for the README: damages crops of photos with
`maskdcpt degrade`, restores them in auto mode with `maskdcpt restore` and
lays out one row per sample: damaged | restored, captioned with the damage
made and the class the network detected.

Usage:
  tools/make_samples.py --weights W --out docs/images/samples.jpg \
      [--maskdcpt build/cli/maskdcpt] [--keep-dir DIR] PHOTO:CLASS:LEVEL:SEED...

--keep-dir also keeps each damaged crop as DIR/<photo>-<class>.png (the
demo's input).  Needs Pillow (apt-get install python3-pil).
"""
import argparse
import os
import subprocess
import sys
import tempfile

from PIL import Image, ImageDraw, ImageFont

CELL_W, CELL_H, CAPTION_H = 480, 320, 26


def font(size):
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",):
        if os.path.exists(path):
            return ImageFont.truetype(path, size)
    return ImageFont.load_default()


def centre_crop(img, w, h):
    """The largest w:h centre crop, scaled to w x h."""
    sw, sh = img.size
    scale = min(sw / w, sh / h)
    cw, ch = int(w * scale), int(h * scale)
    x, y = (sw - cw) // 2, (sh - ch) // 2
    return img.crop((x, y, x + cw, y + ch)).resize((w, h), Image.LANCZOS)


def run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("make_samples: %s failed:\n%s" % (" ".join(cmd), res.stderr))
    return res.stdout


def detected(classify_csv):
    """(class, probability) of the most likely class from classify --csv."""
    header, row = classify_csv.strip().splitlines()[:2]
    names, values = header.split(",")[2:], row.split(",")
    probs = [float(v) for v in values[2:]]
    best = max(range(len(probs)), key=probs.__getitem__)
    return names[best], probs[best]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--maskdcpt", default="build/cli/maskdcpt")
    ap.add_argument("--keep-dir")
    ap.add_argument("samples", nargs="+", metavar="PHOTO:CLASS:LEVEL:SEED")
    a = ap.parse_args()

    big, small = font(17), font(15)
    sheet = Image.new("RGB", (2 * CELL_W, len(a.samples) * (CELL_H + CAPTION_H) + CAPTION_H),
                      "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((8, 4), "damaged", fill="black", font=big)
    draw.text((CELL_W + 8, 4), "restored (auto-detect, strength 1)", fill="black", font=big)
    with tempfile.TemporaryDirectory() as tmp:
        for i, spec in enumerate(a.samples):
            photo, cls, level, seed = spec.rsplit(":", 3)
            base = os.path.splitext(os.path.basename(photo))[0]
            clean = os.path.join(tmp, "clean.png")
            damaged = os.path.join(tmp, "damaged.png")
            restored = os.path.join(tmp, "restored.png")
            centre_crop(Image.open(photo).convert("RGB"), CELL_W, CELL_H).save(clean)
            run([a.maskdcpt, "degrade", clean, damaged, "--type", cls, "--level", level,
                 "--seed", seed])
            run([a.maskdcpt, "restore", damaged, restored, "--weights", a.weights])
            found, p = detected(run([a.maskdcpt, "classify", damaged, "--csv",
                                     "--weights", a.weights]))
            y = CAPTION_H + i * (CELL_H + CAPTION_H)
            sheet.paste(Image.open(damaged).convert("RGB"), (0, y))
            sheet.paste(Image.open(restored).convert("RGB"), (CELL_W, y))
            draw.text((8, y + CELL_H + 4), "%s, level %s" % (cls, level), fill="black", font=small)
            draw.text((CELL_W + 8, y + CELL_H + 4), "detected: %s (%.0f%%)" % (found, 100 * p),
                      fill="black", font=small)
            if a.keep_dir:
                os.makedirs(a.keep_dir, exist_ok=True)
                Image.open(damaged).save(os.path.join(a.keep_dir, "%s-%s.png" % (base, cls)))
    sheet.save(a.out, quality=90)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
