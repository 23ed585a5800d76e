#!/usr/bin/env python3
"""Writes the seed images of fuzz_image_read into DIR (tests/fuzz/corpus-image):
one small picture in every PNG, JPEG and WebP variant img_read handles.

    /usr/bin/python3 tests/fuzz/make_image_corpus.py tests/fuzz/corpus-image

Needs Pillow (scripts/setup-deps.sh --with-training installs it).  The
16-bit RGB and grey+alpha PNGs are written by hand (zlib), since Pillow
does not write them."""
import os
import struct
import sys
import zlib

from PIL import Image

W, H = 13, 7


def pattern(mode):
    img = Image.new("RGB", (W, H))
    img.putdata([((x * 19) % 256, (y * 37) % 256, ((x + y) * 11) % 256)
                 for y in range(H) for x in range(W)])
    return img.convert(mode)


def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png16(path, channels, colour_type):
    rows = b"".join(
        b"\0" + b"".join(struct.pack(">H", (x * 4099 + y * 911 + c * 20011) % 65536)
                         for x in range(W) for c in range(channels))
        for y in range(H))
    ihdr = struct.pack(">IIBBBBB", W, H, 16, colour_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
                + png_chunk(b"IDAT", zlib.compress(rows, 9)) + png_chunk(b"IEND", b""))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)
    pattern("RGB").save(p("rgb8.png"))
    pattern("RGBA").save(p("rgba8.png"))
    pattern("L").save(p("grey8.png"))
    pattern("LA").save(p("grey-alpha8.png"))
    pattern("1").save(p("bilevel.png"))
    pal = pattern("RGB").quantize(16)
    pal.info["transparency"] = 3
    pal.save(p("palette-trns.png"), transparency=3)
    pattern("RGB").save(p("interlaced.png"), interlace=1)
    png16(p("rgb16.png"), 3, 2)
    png16(p("rgba16.png"), 4, 6)
    png16(p("grey16.png"), 1, 0)
    pattern("RGB").save(p("rgb.jpg"), quality=80)
    pattern("RGB").save(p("progressive.jpg"), quality=80, progressive=True)
    pattern("L").save(p("grey.jpg"), quality=80)
    pattern("CMYK").save(p("cmyk.jpg"), quality=80)
    pattern("RGB").save(p("lossy.webp"), quality=80)
    pattern("RGB").save(p("lossless.webp"), lossless=True)
    pattern("RGBA").save(p("alpha.webp"), quality=80)


if __name__ == "__main__":
    main()
