#!/usr/bin/env python3
"""Select, down-scale and catalogue maskdcpt's training photos.

Helper of scripts/prepare-training-data.sh, which downloads and unpacks the
Debian packages; docs/training-data.md explains the rules. Needs only
python3 and python3-pil (Pillow) from Debian's archive (python3-zstandard or
the zstd program only if a Qt resource file uses zstd; bookworm's do not).

  training_data.py build --src PKG VERSION DIR [--src ...] --out OUTDIR [--jobs N]
      Find the photos in the unpacked packages (DIR = dpkg-deb -x root),
      write OUTDIR/<package>--<name>.jpg, OUTDIR/training-manifest.tsv,
      OUTDIR/rejected.tsv and OUTDIR/SUMMARY.md; delete stale outputs.
  training_data.py sheet OUTDIR PNG
      Contact sheet of every photo in OUTDIR/training-manifest.tsv (< 1 MB).

Everything is deterministic: sorted inputs, fixed filters (Lanczos-3, exact
integer factor), fixed JPEG settings (quality 95, 4:4:4, optimised Huffman,
no metadata). Byte-identical results need the same Pillow / libjpeg-turbo /
libwebp (Debian 12: python3-pil 9.4.0, libjpeg62-turbo 2.1.5, libwebp 1.2.4).
"""

import argparse
import glob
import hashlib
import io
import os
import re
import struct
import subprocess
import sys
import time
import zlib
from multiprocessing import Pool

try:
    from PIL import Image, ImageCms, ImageOps
except ImportError:  # pragma: no cover
    sys.exit("training_data.py: needs Pillow: apt-get install python3-pil")

Image.MAX_IMAGE_PIXELS = 200_000_000  # the largest source is 7680x4320

JPEG_QUALITY = 95
MIN_SOURCE_SIDE = 400       # short side of the source, px
MIN_OUTPUT_SIDE = 256       # short side after down-scaling, px
JPEG_Q_CLEAN = 90           # estimated JPEG quality >= this: x2, else x4
WEBP_BPP_CLEAN = 1.5        # lossy WebP bits/pixel >= this: x2, else x4
MAX_TOP_COLOUR = 0.20       # flat-colour guard: share of the commonest colour
MIN_COLOURS = 128           # few-colours guard: distinct colours in the proxy
PROXY = 512                 # statistics are taken on a <= 512 px box-filtered proxy

# ---------------------------------------------------------------------------
# Per-package selection (hand-checked on thumbnails; see docs/training-data.md)

# enlightenment-data: usr/share/enlightenment/data/backgrounds/*.edj
E_DENY = {
    "Dunes": "vector render (flat dunes, sun disc)",
    "Flat-Fan": "render (flat fan shapes)",
    "Flat-Stone-Pattern": "synthetic dark pattern tile",
    "Sunset-Hills": "render (flat layered hills, gradient sky)",
}
# budgie-backgrounds: usr/share/backgrounds/budgie/*.jpg
BUDGIE_DENY = {
    "ocean-waves": "scan of a woodblock print (artwork, not a photo)",
    "valley-midnight": "vector art",
    "waves-midnight": "vector art",
    "saturnian-profile": "spacecraft mosaic on a synthetic black field",
}
# lxqt-themes: usr/share/lxqt/wallpapers/* -- only these are photographs;
# the others are renders / logos (origami, plasma, triangles, waves, ...).
LXQT_ALLOW = {
    "Butterfly-Kenneth-Wimer.jpg", "Valendas.png", "after-the-rain.jpg",
    "appleflower.png", "beam.png", "butterfly.png", "cloud.png", "drop.png",
    "flowers.png", "fog.jpg", "this-is-not-windows.jpg",
}
# mate-backgrounds: only usr/share/backgrounds/mate/nature/ (abstract/ and
# desktop/ are renders and logos).
# gcompris-qt-data: resources under these folders are photographs; the rest
# of the package is drawings, clip-art, paintings (details/, babyshapes/,
# paintings/), cut-outs and renders.
GCOMPRIS_DIRS = re.compile(
    r"^/gcompris/src/activities/("
    r"erase/resource/[^/]+"
    r"|clickgame/resource/sea[0-9]+\.[a-z]+"
    r"|explore_farm_animals/resource/animals/[^/]+"
    r"|explore_monuments/resource/[^/]+/[^/]+"
    r"|explore_world_animals/resource/animals/[^/]+"
    r"|explore_world_music/resource/music/[^/]+"
    r")$")
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp")

# Upstream notes that debian/copyright does not carry.
LICENCE_NOTES = {
    "lxqt-themes": "upstream wallpapers/License: CC-BY-SA-3.0, LXQt Project Team",
}


def log(msg):
    print("training-data: " + msg, flush=True)


# ---------------------------------------------------------------------------
# Containers

EET_MAGIC = 0x1EE70F42


def eet_entries(path):
    """(name, offset, size, data_size, flags) of every entry of an Eet file."""
    with open(path, "rb") as f:
        head = f.read(12)
        magic, n_dir, _n_dict = struct.unpack(">III", head)
        if magic != EET_MAGIC:
            raise ValueError("%s: not an Eet file (magic %08x)" % (path, magic))
        table = f.read(24 * n_dir)
        out = []
        for i in range(n_dir):
            off, size, dsize, noff, nsize, flags = struct.unpack_from(">6I", table, 24 * i)
            f.seek(noff)
            name = f.read(nsize).split(b"\0", 1)[0].decode("utf-8", "replace")
            out.append((name, off, size, dsize, flags))
    return out


def eet_jpeg_images(path):
    """Edje image entries stored as plain JPEG (Eet's lossy format without
    alpha): uncompressed, not ciphered, not an alias, data starts with SOI.
    Returns [(name, offset, size)]."""
    out = []
    with open(path, "rb") as f:
        for name, off, size, _dsize, flags in eet_entries(path):
            if not name.startswith("edje/images/") or flags & 7:
                continue
            f.seek(off)
            if f.read(3) == b"\xff\xd8\xff":
                out.append((name, off, size))
    return out


def rcc_entries(buf):
    """Files of a Qt resource (.rcc) file: [(path, flags, offset, length)].
    flags: 1 = zlib (qCompress), 4 = zstd, 2 = directory."""
    if buf[:4] != b"qres":
        raise ValueError("not a Qt resource file")
    version, tree, data, names = struct.unpack_from(">IIII", buf, 4)
    node = 22 if version >= 2 else 14

    def name_at(off):
        (n,) = struct.unpack_from(">H", buf, names + off)
        return buf[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")

    out = []
    stack = [(0, "")]
    while stack:
        i, parent = stack.pop()
        o = tree + i * node
        noff, flags = struct.unpack_from(">IH", buf, o)
        path = parent + "/" + name_at(noff) if i else ""
        if flags & 2:
            count, first = struct.unpack_from(">II", buf, o + 6)
            stack.extend((c, path) for c in range(first, first + count))
        else:
            (doff,) = struct.unpack_from(">I", buf, o + 10)
            (length,) = struct.unpack_from(">I", buf, data + doff)
            out.append((path, flags, data + doff + 4, length))
    out.sort()
    return out


def rcc_payload(raw, flags):
    if flags & 1:                       # qCompress: 4-byte size + zlib stream
        return zlib.decompress(raw[4:])
    if flags & 4:                       # zstd frame (Qt >= 5.13 rcc)
        try:
            import zstandard
            return zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 30)
        except ImportError:
            return subprocess.run(["zstd", "-dc"], input=raw, check=True,
                                  stdout=subprocess.PIPE).stdout
    return raw


def read_source(src):
    kind, path, off, length, flags = src
    if kind == "file":
        with open(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        f.seek(off)
        raw = f.read(length)
    return rcc_payload(raw, flags) if kind == "rcc" else raw


# ---------------------------------------------------------------------------
# debian/copyright (DEP-5)

def dep5_parse(path):
    """Files paragraphs of a machine-readable copyright file, in order:
    [(patterns, regexes, copyright, licence)]."""
    paras, cur, field = [], {}, None
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines() + [""]
    for line in lines:
        if not line.strip():
            if cur:
                paras.append(cur)
            cur, field = {}, None
        elif line[0] in " \t":
            if field:
                cur[field] += "\n" + line.strip()
        elif ":" in line:
            field, val = line.split(":", 1)
            field = field.strip().lower()
            cur[field] = val.strip()
    out = []
    for p in paras:
        if "files" not in p:
            continue
        pats = p["files"].split()
        rxs = [re.compile("^" + "".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                                        for c in pat) + "$") for pat in pats]
        copyr = "; ".join(x.strip() for x in p.get("copyright", "").splitlines() if x.strip())
        lic = p.get("license", "").splitlines()[0].strip() if p.get("license") else "?"
        out.append((pats, rxs, copyr, lic))
    return out


def dep5_lookup(paras, candidates):
    """Last Files paragraph matching any of the candidate source paths (DEP-5:
    the last match wins). Returns (licence, copyright, matched pattern)."""
    best = None
    for idx, (pats, rxs, copyr, lic) in enumerate(paras):
        for cand in candidates:
            for pat, rx in zip(pats, rxs):
                if rx.match(cand):
                    best = (lic, copyr, pat)
                    break
            else:
                continue
            break
    return best or ("?", "?", "none")


def alt_ext(path):
    """The path plus the same name with other image extensions: the package
    ships WebP made from the .jpg/.png that debian/copyright names."""
    stem, _ext = os.path.splitext(path)
    return [path] + [stem + e for e in (".jpg", ".jpeg", ".png", ".svg", ".webp") if stem + e != path]


# ---------------------------------------------------------------------------
# Candidates

def norm_licence(s):
    """'CC-BY-SA 4.0' -> 'CC-BY-SA-4.0', 'Public domain' -> 'public-domain'."""
    s = s.strip()
    if s.lower().replace("-", " ") == "public domain":
        return "public-domain"
    return re.sub(r"(?i)^(CC[- ][A-Z0-9-]*?)[ -]?([0-9]\.[0-9])$",
                  lambda m: m.group(1).replace(" ", "-").upper() + "-" + m.group(2), s)


def readme_parse(text):
    """Upstream GCompris resource READMEs: blank-line separated blocks of
    'Copyright:', 'License:', 'Source:', 'Comments:', 'Files:' (the file list
    inline or on the following lines). Returns {file: (licence, copyright, source)}."""
    out = {}
    for block in re.split(r"\n\s*\n", text.replace("\r", "")):
        fields, key = {}, None
        for line in block.splitlines():
            m = re.match(r"^([A-Za-z][A-Za-z -]*?)\s*:\s*(.*)$", line)
            if m and m.group(1).lower() in ("copyright", "license", "licence", "source",
                                            "comments", "comment", "files", "author"):
                key = m.group(1).lower().replace("licence", "license")
                fields[key] = m.group(2).strip()
            elif key:
                fields[key] = (fields[key] + "\n" + line.strip()).strip()
        if "files" in fields and "license" in fields:
            for f in fields["files"].split():
                out[f] = (norm_licence(fields["license"]), fields.get("copyright", "?"),
                          fields.get("source", ""))
    return out


class Cand:
    __slots__ = ("package", "version", "name", "display", "src", "licence",
                 "copyright", "origin", "lic_rule", "deny")

    def __init__(self, package, version, name, display, src, lic, deny=None):
        self.package, self.version = package, version
        self.name = "%s--%s.jpg" % (package, name)
        self.display, self.src = display, src
        self.licence, self.copyright, self.origin, self.lic_rule = lic
        self.deny = deny


def find_candidates(pkg, version, root):
    """Every image of the package that the per-package rules consider, plus
    the reason it is denied (None if kept so far)."""
    paras = dep5_parse(os.path.join(root, "usr/share/doc", pkg, "copyright"))
    note = LICENCE_NOTES.get(pkg)
    out = []

    def lic(cands, upstream=None):
        """(licence, copyright, origin URL, where it comes from). A per-file
        entry of an upstream README in the package wins over a catch-all or
        older debian/copyright paragraph; both are named."""
        licence, copyr, pat = dep5_lookup(paras, cands)
        rule = "debian/copyright Files: %s (%s)" % (pat, licence)
        if note:
            rule += "; " + note
        if upstream:
            u_lic, u_copyr, u_src, where = upstream
            return u_lic, u_copyr, u_src, "upstream %s; %s" % (where, rule)
        return licence, copyr, "", rule

    def files(sub):
        base = os.path.join(root, sub)
        for p in sorted(glob.glob(os.path.join(base, "**", "*"), recursive=True)):
            if os.path.isfile(p) and not os.path.islink(p) and p.lower().endswith(IMAGE_EXT):
                yield p, os.path.relpath(p, root), os.path.relpath(p, base)

    if pkg == "enlightenment-data":
        sub = "usr/share/enlightenment/data/backgrounds"
        for p in sorted(glob.glob(os.path.join(root, sub, "*.edj"))):
            stem = os.path.splitext(os.path.basename(p))[0]
            rel = os.path.relpath(p, root)
            imgs = eet_jpeg_images(p)
            if not imgs:
                log("  skip %s: no plain-JPEG image inside" % rel)
                continue
            # Edje keeps one photo at several resolutions; take the largest.
            best = max(imgs, key=lambda e: (_jpeg_area(p, e[1]), e[2], e[0]))
            out.append(Cand(pkg, version, stem, "%s:%s" % (rel, best[0]),
                            ("edj", p, best[1], best[2], 0),
                            lic(["data/backgrounds/" + stem + ".edj", "data/backgrounds/" + stem + ".jpg"]),
                            E_DENY.get(stem)))
    elif pkg == "budgie-backgrounds":
        for p, rel, short in files("usr/share/backgrounds/budgie"):
            stem = os.path.splitext(short)[0]
            out.append(Cand(pkg, version, stem, rel, ("file", p, 0, 0, 0),
                            lic(["backgrounds/" + short, short]), BUDGIE_DENY.get(stem)))
    elif pkg == "lxqt-themes":
        for p, rel, short in files("usr/share/lxqt/wallpapers"):
            stem = os.path.splitext(short)[0]
            deny = None if short in LXQT_ALLOW else "render / logo wallpaper (not in the photo list)"
            out.append(Cand(pkg, version, stem, rel, ("file", p, 0, 0, 0),
                            lic(["wallpapers/" + short]), deny))
    elif pkg == "mate-backgrounds":
        for p, rel, short in files("usr/share/backgrounds/mate"):
            stem = os.path.splitext(os.path.basename(short))[0]
            deny = None if short.startswith("nature/") else "outside nature/ (abstract or desktop art)"
            out.append(Cand(pkg, version, stem, rel, ("file", p, 0, 0, 0), lic([short]), deny))
    elif pkg == "gcompris-qt-data":
        for p in sorted(glob.glob(os.path.join(root, "usr/share/gcompris-qt/rcc/*.rcc"))):
            rel = os.path.relpath(p, root)
            with open(p, "rb") as f:
                buf = f.read()
            entries = rcc_entries(buf)
            readmes = {}                    # folder -> {relative file: credits}
            for path, flags, off, length in entries:
                if os.path.basename(path) == "README":
                    text = rcc_payload(buf[off:off + length], flags).decode("utf-8", "replace")
                    readmes[os.path.dirname(path)] = readme_parse(text)
            for path, flags, off, length in entries:
                if not path.lower().endswith(IMAGE_EXT) or not GCOMPRIS_DIRS.match(path):
                    continue
                parts = path.split("/")     # /gcompris/src/activities/<activity>/...
                stem = parts[4] + "-" + os.path.splitext(parts[-1])[0]
                kind = "rcc" if flags & 5 else "raw"
                upstream, d = None, os.path.dirname(path)
                while d.startswith("/gcompris/src/activities/") and upstream is None:
                    hit = readmes.get(d, {}).get(path[len(d) + 1:])
                    if hit:
                        upstream = hit + (d[len("/gcompris/src/activities/"):] + "/README",)
                    d = os.path.dirname(d)
                out.append(Cand(pkg, version, stem, "%s:%s" % (rel, path),
                                (kind, p, off, length, flags),
                                lic(alt_ext(path[len("/gcompris/"):]), upstream)))
    else:
        raise SystemExit("training_data.py: no rules for package %s" % pkg)
    return out


def _jpeg_area(path, off):
    with open(path, "rb") as f:
        f.seek(off)
        head = f.read(1 << 16)
    try:
        im = Image.open(io.BytesIO(head))
        return im.size[0] * im.size[1]
    except Exception:
        return 0


# ---------------------------------------------------------------------------
# Image rules

STD_LUMA_Q = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
              14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
              18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
              49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]


def jpeg_quality(im):
    """libjpeg-equivalent quality (1..100) of the luminance quantisation
    table: the table's scale against the standard Annex K table, inverted
    through libjpeg's quality -> scale mapping."""
    q = getattr(im, "quantization", None)
    if not q:
        return None
    table = q[min(q)]
    s = 100.0 * sum(table) / sum(STD_LUMA_Q)
    return max(1, min(100, round(100 - s / 2 if s <= 100 else 5000.0 / s)))


def describe_source(im, data):
    """(format text, scale factor) by the compression rule."""
    w, h = im.size
    bpp = 8.0 * len(data) / (w * h)
    if im.format == "JPEG":
        q = jpeg_quality(im)
        return "JPEG q%d %.2fbpp" % (q, bpp), (2 if q >= JPEG_Q_CLEAN else 4)
    if im.format == "WEBP":
        lossless = b"VP8L" in data[12:4096] and b"VP8 " not in data[12:4096]
        if lossless:
            return "WebP-lossless %.2fbpp" % bpp, 2
        return "WebP %.2fbpp" % bpp, (2 if bpp >= WEBP_BPP_CLEAN else 4)
    return "%s %.2fbpp" % (im.format, bpp), 2


def to_srgb(im):
    """RGB, upright, sRGB."""
    im = ImageOps.exif_transpose(im)
    icc = im.info.get("icc_profile")
    if im.mode in ("I;16", "I;16B", "I"):
        im = im.point(lambda v: v / 256).convert("L")
    if im.mode not in ("RGB", "L", "RGBA", "LA", "P", "CMYK"):
        im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
    if icc:
        prof = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        desc = ImageCms.getProfileDescription(prof).strip()
        if "srgb" not in desc.lower():
            base = im.convert("RGB") if im.mode not in ("RGB", "CMYK") else im
            im = ImageCms.profileToProfile(base, prof, ImageCms.createProfile("sRGB"),
                                           outputMode="RGB")
    return im


def photo_stats(im):
    """(share of non-opaque pixels, share of the commonest colour, number of
    distinct colours) on a <= PROXY px box-filtered proxy."""
    transp = 0.0
    if "A" in im.getbands() or (im.mode == "P" and "transparency" in im.info):
        a = im.convert("RGBA").getchannel("A")
        hist = a.histogram()
        transp = 1.0 - hist[255] / float(sum(hist))
    t = im.convert("RGB")
    t.thumbnail((PROXY, PROXY), Image.BOX)
    n = t.size[0] * t.size[1]
    cols = t.getcolors(n)
    return transp, max(c for c, _ in cols) / float(n), len(cols)


def process(job):
    """Decode, check, down-scale and write one candidate. Returns
    ("ok", row) or ("reject", reason)."""
    cand, outdir = job
    data = read_source(cand.src)
    im = Image.open(io.BytesIO(data))
    im.load()
    fmt, scale = describe_source(im, data)
    w, h = im.size
    if min(w, h) < MIN_SOURCE_SIDE:
        return "reject", "source %dx%d smaller than %d px" % (w, h, MIN_SOURCE_SIDE), fmt
    im = to_srgb(im)
    transp, top, ncol = photo_stats(im)
    if transp > 0.001:
        return "reject", "%.1f%% transparent pixels (cut-out / graphic)" % (100 * transp), fmt
    if top > MAX_TOP_COLOUR:
        return "reject", "flat: one colour covers %.0f%%" % (100 * top), fmt
    if ncol < MIN_COLOURS:
        return "reject", "only %d colours" % ncol, fmt
    ow, oh = w // scale, h // scale
    if min(ow, oh) < MIN_OUTPUT_SIDE:
        return "reject", "x%d gives %dx%d, short side < %d" % (scale, ow, oh, MIN_OUTPUT_SIDE), fmt
    im = im.convert("RGB")
    # Exact integer factor: crop to a multiple of the factor (at most
    # scale-1 px off the right/bottom edge) so output pixel (x, y) is the
    # Lanczos-filtered block [x*s, x*s+s) x [y*s, y*s+s).
    if (w, h) != (ow * scale, oh * scale):
        im = im.crop((0, 0, ow * scale, oh * scale))
    im = im.resize((ow, oh), Image.LANCZOS, reducing_gap=None)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)
    out = buf.getvalue()
    path = os.path.join(outdir, cand.name)
    try:
        with open(path, "rb") as f:
            same = f.read() == out
    except OSError:
        same = False
    if not same:
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(out)
        os.replace(tmp, path)
    row = [cand.name, cand.package, cand.version, cand.display, fmt,
           "%dx%d" % (w, h), "%dx%d" % (ow, oh), str(scale), cand.licence,
           cand.copyright, cand.origin, cand.lic_rule, hashlib.sha256(out).hexdigest(),
           str(len(out))]
    return "ok", row, fmt


MANIFEST_COLUMNS = ["name", "package", "version", "source_path", "source_format",
                    "source_size", "output_size", "scale", "licence", "copyright",
                    "origin", "licence_source", "sha256"]
SHA = MANIFEST_COLUMNS.index("sha256")


def tsv_field(s):
    return s.replace("\t", " ").replace("\n", " ")


def cmd_build(args):
    t0 = time.time()
    outdir = args.out
    os.makedirs(outdir, exist_ok=True)
    cands = []
    for pkg, version, root in sorted(args.src):
        found = find_candidates(pkg, version, root)
        log("%-20s %s: %d candidate images" % (pkg, version, len(found)))
        cands.extend(found)
    names = {}
    for c in cands:
        if c.name in names:
            raise SystemExit("training_data.py: output name clash: %s (%s, %s)"
                             % (c.name, names[c.name], c.display))
        names[c.name] = c.display
    cands.sort(key=lambda c: c.name)

    rows, rejected = [], []
    todo = []
    for c in cands:
        if c.deny:
            rejected.append((c.name, c.display, "-", "denied: " + c.deny))
        else:
            todo.append(c)
    log("processing %d images with %d job(s)" % (len(todo), args.jobs))
    jobs = [(c, outdir) for c in todo]
    with Pool(args.jobs) as pool:
        for i, (c, res) in enumerate(zip(todo, pool.imap(process, jobs, chunksize=1))):
            if res[0] == "ok":
                rows.append(res[1])
                log("  [%3d/%d] %-62s %-22s x%s -> %s" % (i + 1, len(todo), c.name, res[2],
                                                          res[1][7], res[1][6]))
            else:
                rejected.append((c.name, c.display, res[2], res[1]))
                log("  [%3d/%d] %-62s skip: %s" % (i + 1, len(todo), c.name, res[1]))

    # Duplicate sources (same output bytes) would weigh a photo twice.
    seen = {}
    uniq = []
    for r in rows:
        if r[SHA] in seen:
            rejected.append((r[0], r[3], r[4], "duplicate of " + seen[r[SHA]]))
            os.remove(os.path.join(outdir, r[0]))
            continue
        seen[r[SHA]] = r[0]
        uniq.append(r)
    rows = uniq
    rejected.sort()

    keep = {r[0] for r in rows}
    for p in sorted(glob.glob(os.path.join(outdir, "*--*.jpg"))):
        if os.path.basename(p) not in keep:
            log("removing stale %s" % os.path.basename(p))
            os.remove(p)

    with open(os.path.join(outdir, "training-manifest.tsv"), "w", encoding="utf-8") as f:
        f.write("\t".join(MANIFEST_COLUMNS) + "\n")
        for r in rows:
            f.write("\t".join(tsv_field(x) for x in r[:SHA + 1]) + "\n")
    with open(os.path.join(outdir, "rejected.tsv"), "w", encoding="utf-8") as f:
        f.write("name\tsource_path\tsource_format\treason\n")
        for r in rejected:
            f.write("\t".join(tsv_field(x) for x in r) + "\n")
    summary = make_summary(rows, rejected)
    with open(os.path.join(outdir, "SUMMARY.md"), "w", encoding="utf-8") as f:
        f.write(summary)
    print(summary, end="")
    log("kept %d, rejected %d, %.1f s" % (len(rows), len(rejected), time.time() - t0))


def make_summary(rows, rejected):
    per = {}
    for r in rows:
        w, h = map(int, r[6].split("x"))
        d = per.setdefault((r[1], r[2]), [0, 0, 0, 0, 0])
        d[0] += 1
        d[1] += w * h
        d[2] += int(r[SHA + 1])
        d[3 if r[7] == "2" else 4] += 1
    lines = ["| package | version | photos | x2 | x4 | megapixels | bytes (JPEG q95) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    tot = [0, 0, 0, 0, 0]
    for (pkg, ver), d in sorted(per.items()):
        lines.append("| %s | %s | %d | %d | %d | %.1f | %s |" % (pkg, ver, d[0], d[3], d[4],
                                                              d[1] / 1e6, format(d[2], ",")))
        tot = [a + b for a, b in zip(tot, d)]
    lines.append("| **total** | | **%d** | %d | %d | **%.1f** | **%s** (%.1f MiB) |" % (
        tot[0], tot[3], tot[4], tot[1] / 1e6, format(tot[2], ","), tot[2] / 2.0 ** 20))
    return "\n".join(lines) + "\n\nrejected: %d candidate images (see rejected.tsv)\n" % len(rejected)


# ---------------------------------------------------------------------------
# Contact sheet

def layout_sheet(images, width, row_h, gap=2):
    """Justified rows of about equal width: the strip of thumbnails (all
    row_h high) is split into R rows at the points closest to k * total / R,
    then each row is scaled to exactly `width`."""
    widths = [max(1, round(row_h * im.size[0] / float(im.size[1]))) for im in images]
    total = sum(widths)
    nrows = max(1, round(total / float(width)))
    rows, cur, acc = [], [], 0
    for im, tw in zip(images, widths):
        if cur and len(rows) < nrows - 1:
            target = (len(rows) + 1) * total / float(nrows)
            if abs(acc - target) <= abs(acc + tw - target):
                rows.append(cur)
                cur = []
        cur.append((im, tw))
        acc += tw
    rows.append(cur)
    placed, y = [], 0
    for r in rows:
        f = (width - gap * (len(r) - 1)) / float(sum(tw for _, tw in r))
        h = max(1, round(row_h * f))
        x = 0
        for i, (im, tw0) in enumerate(r):
            tw = width - x if i == len(r) - 1 else max(1, round(tw0 * f))
            placed.append((im.resize((tw, h), Image.LANCZOS), x, y))
            x += tw + gap
        y += h + gap
    sheet = Image.new("RGB", (width, y - gap), (255, 255, 255))
    for im, x, yy in placed:
        sheet.paste(im, (x, yy))
    return sheet


def cmd_sheet(args):
    """Contact sheet, in manifest order (= by package), as an RGB PNG; the
    row height shrinks in steps of 4 px until the file is < max_bytes."""
    with open(os.path.join(args.outdir, "training-manifest.tsv"), encoding="utf-8") as f:
        names = [line.split("\t", 1)[0] for line in f.read().splitlines()[1:]]
    images = []
    for n in names:
        im = Image.open(os.path.join(args.outdir, n))
        aspect = im.size[0] / float(im.size[1])
        # Fast DCT-domain decode at the smallest scale still >= 4x the thumbnail.
        im.draft("RGB", (int(4 * args.row_height * aspect), 4 * args.row_height))
        images.append(im.convert("RGB"))
    row_h = args.row_height
    while True:
        sheet = layout_sheet(images, args.width, row_h)
        buf = io.BytesIO()
        sheet.save(buf, "PNG", optimize=True)
        if len(buf.getvalue()) < args.max_bytes or row_h <= 16:
            break
        row_h -= 4
    with open(args.png, "wb") as f:
        f.write(buf.getvalue())
    log("contact sheet %s: %dx%d, %d photos, %d bytes" % (args.png, sheet.size[0], sheet.size[1],
                                                          len(images), len(buf.getvalue())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--src", nargs=3, action="append", required=True,
                   metavar=("PACKAGE", "VERSION", "DIR"))
    b.add_argument("--out", required=True)
    b.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    s = sub.add_parser("sheet")
    s.add_argument("outdir")
    s.add_argument("png")
    s.add_argument("--width", type=int, default=1000)
    s.add_argument("--row-height", type=int, default=64)
    s.add_argument("--max-bytes", type=int, default=1000000)
    args = ap.parse_args()
    if args.cmd == "build":
        cmd_build(args)
    else:
        cmd_sheet(args)


if __name__ == "__main__":
    main()
