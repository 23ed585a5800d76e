#!/usr/bin/env python3
"""eval_crops.py - the fixed crops of the evaluation set (scripts/evaluate.sh).

Usage: eval_crops.py SIZE MAX ORIGIN=PATH...

Prints one tab-separated line per crop: id, origin, path, x, y, w, h.
Each photo is cut into non-overlapping SIZE x SIZE tiles on a grid centred
in the photo; of its N tiles, MAX are kept, evenly spread in row-major
order (all of them when N <= MAX).  Only the image's size matters, so the
crops are the same on every machine.  Standard library only: the sizes
come from the PNG or JPEG headers.
"""
import os
import re
import struct
import sys


def image_size(path):
    """(width, height) from a PNG's IHDR or a JPEG's first SOF marker."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC)
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return w, h
            i += 2 + length
    raise ValueError(f"{path}: not a PNG or baseline/progressive JPEG")


def crops(width, height, size, most):
    nx, ny = width // size, height // size
    x0, y0 = (width - nx * size) // 2, (height - ny * size) // 2
    tiles = [(x0 + i * size, y0 + j * size) for j in range(ny) for i in range(nx)]
    if len(tiles) <= most:
        return tiles
    return [tiles[(2 * k + 1) * len(tiles) // (2 * most)] for k in range(most)]


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    size, most = int(argv[1]), int(argv[2])
    for arg in argv[3:]:
        origin, path = arg.split("=", 1)
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.splitext(os.path.basename(path))[0])
        w, h = image_size(path)
        for k, (x, y) in enumerate(crops(w, h, size, most), 1):
            print(f"{origin}__{stem}__{k}\t{origin}\t{path}\t{x}\t{y}\t{size}\t{size}")


if __name__ == "__main__":
    main(sys.argv)
