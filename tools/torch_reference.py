#!/usr/bin/env python3
"""torch_reference.py - an independent PyTorch implementation of the network.

A development tool, never a run-time dependency.  It implements
docs/network.md as nn.Modules (CPU), reads a maskdcpt safetensors weights
file with its own small reader, and checks the C library against it
through ctypes.

  compare WEIGHTS [--size HxW] [--lib PATH]   C library vs torch (fp32, fp64)
  bench WEIGHTS [--size N] [--threads N]       megapixels/s, torch vs C
  selftest                                     torch layers vs brute force
  random OUT [--width ...]                     a random weights file (tests)

Module names follow the weights file's tensor names, so loading is a
strict load_state_dict.
"""
import argparse
import ctypes
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CROP = 256      # whole-image classification crop edge
MAX_CROPS = 3   # per axis

# ------------------------------------------------------------ safetensors


def read_safetensors(path):
    """(tensors {name: float32 numpy array}, metadata {str: str})."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} exceeds the file")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = memoryview(data)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        raw = body[b:end]
        dt = e["dtype"]
        if dt == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif dt == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif dt == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dt}")
        shape = tuple(e["shape"])
        if a.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{path}: tensor {name}: {a.size} values for shape {shape}")
        tensors[name] = a.reshape(shape)
    return tensors, meta


def write_safetensors(path, tensors, metadata):
    """F32 safetensors; tensors {name: numpy array}, metadata {str: str}."""
    header = {"__metadata__": metadata}
    blobs, off = [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class Arch:
    def __init__(self, d, classes):
        self.width = int(d["width"])
        self.levels = int(d["levels"])
        self.enc_blocks = [int(v) for v in d["enc_blocks"]]
        self.middle_blocks = int(d["middle_blocks"])
        self.dec_blocks = [int(v) for v in d["dec_blocks"]]
        self.cls_hidden = int(d["cls_hidden"])
        self.sca_window = int(d["sca_window"])
        self.norm_eps = float(d["norm_eps"])
        self.classes = list(classes)
        self.num_classes = len(self.classes)

    def to_json(self):
        return json.dumps({"width": self.width, "levels": self.levels,
                           "enc_blocks": self.enc_blocks, "middle_blocks": self.middle_blocks,
                           "dec_blocks": self.dec_blocks, "cls_hidden": self.cls_hidden,
                           "sca_window": self.sca_window, "norm_eps": self.norm_eps})

    def channels(self, level):
        return self.width << level


# ------------------------------------------------------------------ layers


def reflect_index(n_out, n):
    """Index map of the padding: reflect-101, periodic beyond n - 1."""
    i = torch.arange(n_out)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    m = i % period
    return torch.where(m < n, m, period - m)


def pad_input(x, multiple):
    """x [N,C,H,W] padded at the bottom/right to multiples of `multiple`."""
    h, w = x.shape[2], x.shape[3]
    hp, wp = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    x = x.index_select(2, reflect_index(hp, h).to(x.device))
    return x.index_select(3, reflect_index(wp, w).to(x.device))


def _box_mean(t, k, dim):
    """Mean over the clamped window of k along `dim` (2 or 3; the whole axis
    if k >= n), from a cumulative sum accumulated in float64: the n - k + 1
    full windows, then the clamping as replicate padding (k // 2 before,
    k - 1 - k // 2 after)."""
    n = t.shape[dim]
    if k >= n:
        return t.mean(dim, keepdim=True)
    c = torch.cumsum(t, dim, dtype=torch.float64)
    c = F.pad(c, (0, 0, 1, 0) if dim == 2 else (1, 0))
    full = ((c.narrow(dim, k, n - k + 1) - c.narrow(dim, 0, n - k + 1)) / k).to(t.dtype)
    before, after = k // 2, k - 1 - k // 2
    return F.pad(full, (0, 0, before, after) if dim == 2 else (before, after, 0, 0), mode="replicate")


def tlc_pool(t, window, level):
    """NAFNet's TLC pooling per docs/network.md; broadcastable to t."""
    if window == 0:
        return t.mean((2, 3), keepdim=True)
    k = max(window >> level, 1)
    return _box_mean(_box_mean(t, k, 2), k, 3)


class Norm(nn.Module):
    """Per-pixel LayerNorm over channels; classes > 0: parameters [K, C]
    mixed by the class probabilities."""

    def __init__(self, c, eps, classes=0):
        super().__init__()
        shape = (classes, c) if classes else (c,)
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))
        self.eps = eps
        self.classes = classes

    def forward(self, x, probs=None):
        if self.classes:
            g = probs.to(x.dtype) @ self.weight
            b = probs.to(x.dtype) @ self.bias
        else:
            g, b = self.weight, self.bias
        # F.layer_norm normalises the last dimension with the biased variance
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), g, b, self.eps)
        return y.permute(0, 3, 1, 2)


class NAFBlock(nn.Module):
    def __init__(self, c, level, arch, classes=0):
        super().__init__()
        self.level = level
        self.window = arch.sca_window
        self.norm1 = Norm(c, arch.norm_eps, classes)
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.conv2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.sca = nn.Conv2d(c, c, 1)
        self.conv3 = nn.Conv2d(c, c, 1)
        self.norm2 = Norm(c, arch.norm_eps, classes)
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp, probs=None):
        x = self.conv2(self.conv1(self.norm1(inp, probs)))
        a, b = x.chunk(2, dim=1)
        x = a * b
        x = x * self.sca(tlc_pool(x, self.window, self.level))
        y = inp + self.beta * self.conv3(x)
        a, b = self.conv4(self.norm2(y, probs)).chunk(2, dim=1)
        return y + self.gamma * self.conv5(a * b)


class Classifier(nn.Module):
    def __init__(self, arch):
        super().__init__()
        h = arch.cls_hidden
        self.proj = nn.ModuleList(nn.Conv2d(arch.channels(l), h, 1) for l in range(arch.levels + 1))
        self.mix = nn.Parameter(torch.zeros(arch.levels + 1))
        self.fc1 = nn.Linear(h, h)
        self.fc2 = nn.Linear(h, arch.num_classes)

    def pooled(self, feats, h, w):
        """g [N, L+1, H]: mean of ReLU(proj_l(f_l)) over the valid area."""
        gs = []
        for l, f in enumerate(feats):
            vh, vw = -(-h // (1 << l)), -(-w // (1 << l))
            gs.append(F.relu(self.proj[l](f))[:, :, :vh, :vw].mean((2, 3)))
        return torch.stack(gs, 1)

    def from_g(self, g):
        m = torch.softmax(self.mix.to(g.dtype), 0)
        g = (g * m.view(1, -1, 1)).sum(1)
        return torch.softmax(self.fc2(F.relu(self.fc1(g))), -1)


class Net(nn.Module):
    def __init__(self, arch):
        super().__init__()
        self.arch = arch
        L, K = arch.levels, arch.num_classes
        self.intro = nn.Conv2d(3, arch.width, 3, padding=1)
        self.encoders = nn.ModuleList(
            nn.ModuleList(NAFBlock(arch.channels(l), l, arch) for _ in range(arch.enc_blocks[l]))
            for l in range(L))
        self.downs = nn.ModuleList(
            nn.Conv2d(arch.channels(l), arch.channels(l + 1), 2, stride=2) for l in range(L))
        self.middle = nn.ModuleList(NAFBlock(arch.channels(L), L, arch)
                                    for _ in range(arch.middle_blocks))
        self.ups = nn.ModuleList(
            nn.Conv2d(arch.channels(L - i), 2 * arch.channels(L - i), 1, bias=False)
            for i in range(L))
        self.decoders = nn.ModuleList(
            nn.ModuleList(NAFBlock(arch.channels(L - 1 - i), L - 1 - i, arch, K)
                          for _ in range(arch.dec_blocks[i]))
            for i in range(L))
        self.ending = nn.Conv2d(arch.width, 3, 3, padding=1)
        self.cls = Classifier(arch)

    def encode(self, inp):
        """inp padded [N,3,Hp,Wp] -> features [f_0 .. f_L] (f_L: middle output)."""
        x = self.intro(inp)
        feats = []
        for blocks, down in zip(self.encoders, self.downs):
            for b in blocks:
                x = b(x)
            feats.append(x)
            x = down(x)
        for b in self.middle:
            x = b(x)
        feats.append(x)
        return feats

    def features(self, x):
        """x [N,3,H,W] -> (g [N, L+1, H], valid counts [L+1])."""
        h, w = x.shape[2], x.shape[3]
        feats = self.encode(pad_input(x, 1 << self.arch.levels))
        counts = [float(-(-h // (1 << l)) * -(-w // (1 << l))) for l in range(self.arch.levels + 1)]
        return self.cls.pooled(feats, h, w), counts

    def classify_image(self, x):
        """Whole-image probabilities [N, K]: up to 3x3 crops of <= 256x256
        placed evenly, g_l weighted by the valid counts."""
        h, w = x.shape[2], x.shape[3]

        def starts(n):
            c = min(MAX_CROPS, -(-n // CROP))
            size = min(CROP, n)
            # i * (n - size) / (c - 1) rounded to nearest, halves up
            return ([0] if c == 1 else
                    [(2 * i * (n - size) + c - 1) // (2 * (c - 1)) for i in range(c)]), size

        ys, ch = starts(h)
        xs, cw = starts(w)
        total, acc = None, None
        for y0 in ys:
            for x0 in xs:
                g, counts = self.features(x[:, :, y0:y0 + ch, x0:x0 + cw])
                cnt = torch.tensor(counts, dtype=g.dtype).view(1, -1, 1)
                acc = g * cnt if acc is None else acc + g * cnt
                total = cnt if total is None else total + cnt
        return self.cls.from_g(acc / total)

    def forward(self, x, probs):
        """x [N,3,H,W], probs [K] -> restored [N,3,H,W]."""
        h, w = x.shape[2], x.shape[3]
        inp = pad_input(x, 1 << self.arch.levels)
        feats = self.encode(inp)
        y = feats[-1]
        for i, (up, blocks) in enumerate(zip(self.ups, self.decoders)):
            y = F.pixel_shuffle(up(y), 2) + feats[self.arch.levels - 1 - i]
            for b in blocks:
                y = b(y, probs)
        return (self.ending(y) + inp)[:, :, :h, :w]


def load_model(path, dtype=torch.float32):
    tensors, meta = read_safetensors(path)
    if meta.get("format") != "maskdcpt":
        raise ValueError(f"{path}: metadata format is {meta.get('format')!r}, not 'maskdcpt'")
    arch = Arch(json.loads(meta["arch"]), json.loads(meta["classes"]))
    net = Net(arch)
    own = net.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        raise ValueError(f"{path}: missing tensors {missing[:5]}, unexpected {extra[:5]}")
    sd = {}
    for k, p in own.items():
        a = tensors[k]
        if tuple(a.shape) != tuple(p.shape):
            raise ValueError(f"{path}: tensor {k}: shape {a.shape}, expected {tuple(p.shape)}")
        sd[k] = torch.from_numpy(np.array(a, dtype=np.float32))
    net.load_state_dict(sd, strict=True)
    return net.to(dtype).eval(), meta


def random_state(arch, seed, residual_scale=0.5):
    """Random parameters like mdc_weights_init_random (not the same values)."""
    g = np.random.default_rng(seed)
    net = Net(arch)
    out = {}
    for k, p in net.state_dict().items():
        shape = tuple(p.shape)
        if k.endswith((".beta", ".gamma")):
            a = g.uniform(-residual_scale, residual_scale, shape)
        elif k == "cls.mix":
            a = g.uniform(-0.5, 0.5, shape)
        elif ".norm" in k and k.endswith(".weight"):
            a = 1 + g.uniform(-0.1, 0.1, shape)
        elif ".norm" in k or k.endswith(".bias"):
            a = g.uniform(-0.1, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            a = g.uniform(-1, 1, shape) * math.sqrt(3.0 / fan_in)
        out[k] = a.astype(np.float32)
    return out


# --------------------------------------------------------- the C library


class MImage(ctypes.Structure):
    _fields_ = [("data", ctypes.POINTER(ctypes.c_float)), ("width", ctypes.c_int),
                ("height", ctypes.c_int), ("channels", ctypes.c_int), ("stride", ctypes.c_size_t)]


class MError(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("message", ctypes.c_char * 512)]


def default_lib():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for cand in ("build/core/libmaskdcpt.so", "builddir/core/libmaskdcpt.so"):
        p = os.path.join(root, cand)
        if os.path.exists(p):
            return p
    return os.path.join(root, "build/core/libmaskdcpt.so")


class CLib:
    """The public API of core/include/maskdcpt.h through ctypes."""

    def __init__(self, path, weights, threads=0, scalar=False, tile=4096):
        L = ctypes.CDLL(path)
        vp, ep = ctypes.c_void_p, ctypes.POINTER(MError)
        ip = ctypes.POINTER(MImage)
        fp = ctypes.POINTER(ctypes.c_float)
        L.maskdcpt_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(vp), ep]
        L.maskdcpt_model_free.argtypes = [vp]
        L.maskdcpt_context_new.argtypes = [vp, ctypes.POINTER(vp), ep]
        L.maskdcpt_context_free.argtypes = [vp]
        L.maskdcpt_context_set_tile_size.argtypes = [vp, ctypes.c_int]
        L.maskdcpt_context_set_threads.argtypes = [vp, ctypes.c_int]
        L.maskdcpt_context_set_scalar.argtypes = [vp, ctypes.c_int]
        L.maskdcpt_context_device_name.argtypes = [vp]
        L.maskdcpt_context_device_name.restype = ctypes.c_char_p
        L.maskdcpt_classify.argtypes = [vp, ip, fp, ep]
        L.maskdcpt_restore.argtypes = [vp, ip, ip, ctypes.c_int, ctypes.c_float, fp, ep]
        for f in ("maskdcpt_model_load", "maskdcpt_context_new", "maskdcpt_classify",
                  "maskdcpt_restore"):
            getattr(L, f).restype = ctypes.c_int
        self.L = L
        self.model, self.ctx = vp(), vp()
        self._check(L.maskdcpt_model_load(weights.encode(), ctypes.byref(self.model), self._err()))
        self._check(L.maskdcpt_context_new(self.model, ctypes.byref(self.ctx), self._err()))
        L.maskdcpt_context_set_tile_size(self.ctx, tile)
        L.maskdcpt_context_set_threads(self.ctx, threads)
        if scalar:
            L.maskdcpt_context_set_scalar(self.ctx, 1)

    def _err(self):
        self.err = MError()
        return ctypes.byref(self.err)

    def _check(self, rc):
        if rc != 0:
            raise RuntimeError(f"libmaskdcpt: status {rc}: {self.err.message.decode(errors='replace')}")

    def device(self):
        return self.L.maskdcpt_context_device_name(self.ctx).decode()

    @staticmethod
    def _image(a):
        h, w, c = a.shape
        return MImage(a.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), w, h, c, w * c)

    def classify(self, rgb, k):
        probs = np.zeros(k, np.float32)
        img = self._image(rgb)
        self._check(self.L.maskdcpt_classify(self.ctx, ctypes.byref(img),
                                             probs.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                             self._err()))
        return probs

    def restore(self, rgb, cls, k, strength=1.0):
        out = np.zeros_like(rgb)
        probs = np.zeros(k, np.float32)
        i, o = self._image(rgb), self._image(out)
        self._check(self.L.maskdcpt_restore(self.ctx, ctypes.byref(i), ctypes.byref(o), cls,
                                            strength,
                                            probs.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                            self._err()))
        return out, probs

    def close(self):
        self.L.maskdcpt_context_free(self.ctx)
        self.L.maskdcpt_model_free(self.model)


# --------------------------------------------------------------- commands


def to_nchw(rgb, dtype):
    return torch.from_numpy(rgb).to(dtype).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_hwc(t):
    return t[0].permute(1, 2, 0).double().numpy()


def torch_run(net, rgb, cls):
    """(restored HWC float64, probs used) for class index or -1 (auto)."""
    dtype = next(net.parameters()).dtype
    x = to_nchw(rgb, dtype)
    with torch.no_grad():
        if cls < 0:
            probs = net.classify_image(x)[0]
        else:
            probs = F.one_hot(torch.tensor(cls), net.arch.num_classes).to(dtype)
        return to_hwc(net(x, probs)), probs.double().numpy()


def parse_size(s):
    if "x" in s:
        h, w = s.lower().split("x")
        return int(h), int(w)
    return int(s), int(s)


def cmd_compare(a):
    h, w = parse_size(a.size)
    rng = np.random.default_rng(a.seed)
    rgb = rng.random((h, w, 3), dtype=np.float32)
    net32, _ = load_model(a.weights, torch.float32)
    net64, _ = load_model(a.weights, torch.float64)
    k = net32.arch.num_classes
    lib = CLib(a.lib, a.weights, threads=a.threads, scalar=a.scalar)
    print(f"weights {a.weights}  size {h}x{w}  lib {a.lib}  device {lib.device()}")
    worst = 0.0

    def report(what, c, t32, t64):
        nonlocal worst
        e32, e64 = np.abs(c - t32), np.abs(c - t64)
        ref = np.abs(t32 - t64).max()
        worst = max(worst, e32.max(), e64.max())
        print(f"  {what:<22} C-torch32 max {e32.max():.3e} mean {e32.mean():.3e}   "
              f"C-torch64 max {e64.max():.3e} mean {e64.mean():.3e}   torch32-torch64 max {ref:.3e}")

    for cls, name in ((a.cls, f"restore class {a.cls}"), (-1, "restore auto")):
        c_out, c_probs = lib.restore(rgb, cls, k)
        t32, p32 = torch_run(net32, rgb, cls)
        t64, p64 = torch_run(net64, rgb, cls)
        report(name, c_out, t32, t64)
        if cls < 0:
            report("  conditioning probs", c_probs, p32, p64)
    with torch.no_grad():
        p32 = net32.classify_image(to_nchw(rgb, torch.float32))[0].double().numpy()
        p64 = net64.classify_image(to_nchw(rgb, torch.float64))[0].numpy()
    c_probs = lib.classify(rgb, k)
    report("classify", c_probs, p32, p64)
    print("  probs (torch64): " + " ".join(f"{v:.4f}" for v in p64))
    lib.close()
    ok = worst <= a.tol
    print(f"{'PASS' if ok else 'FAIL'}: worst max abs error {worst:.3e} (tolerance {a.tol:g})")
    return 0 if ok else 1


def best_of(fn, repeats):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def cmd_bench(a):
    h, w = parse_size(a.size)
    threads = a.threads or os.cpu_count()
    torch.set_num_threads(threads)
    rng = np.random.default_rng(a.seed)
    rgb = rng.random((h, w, 3), dtype=np.float32)
    net, _ = load_model(a.weights, torch.float32)
    x = to_nchw(rgb, torch.float32)
    if not a.nchw:  # channels_last is the faster layout for these convs on CPU
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    probs = F.one_hot(torch.tensor(0), net.arch.num_classes).float()
    mp = h * w / 1e6

    def run_torch():
        with torch.inference_mode():
            net(x, probs)

    t_torch = best_of(run_torch, a.repeats)
    print(f"size {h}x{w}, {threads} threads, class 0 (restoration only), best of {a.repeats}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"  torch {torch.__version__:<12} {t_torch * 1e3:9.1f} ms  {mp / t_torch:8.3f} MP/s")
    try:
        lib = CLib(a.lib, a.weights, threads=threads, scalar=a.scalar)
    except (OSError, RuntimeError) as e:
        print(f"  C library unavailable: {e}")
        return 1
    t_c = best_of(lambda: lib.restore(rgb, 0, net.arch.num_classes), a.repeats)
    print(f"  C {lib.device():<16} {t_c * 1e3:9.1f} ms  {mp / t_c:8.3f} MP/s")
    print(f"  C / torch speed: {t_torch / t_c:.2f}x")
    lib.close()
    return 0


def cmd_random(a):
    classes = [f"class{i}" for i in range(a.classes)]
    enc = [int(v) for v in a.enc.split(",")]
    dec = [int(v) for v in a.dec.split(",")]
    arch = Arch({"width": a.width, "levels": len(enc), "enc_blocks": enc, "middle_blocks": a.middle,
                 "dec_blocks": dec, "cls_hidden": a.hidden, "sca_window": a.window,
                 "norm_eps": a.eps}, classes)
    meta = {"format": "maskdcpt", "format_version": "1", "arch": arch.to_json(),
            "classes": json.dumps(classes),
            "provenance": json.dumps({"kind": "random-init", "seed": a.seed})}
    write_safetensors(a.out, random_state(arch, a.seed), meta)
    print(f"wrote {a.out}")
    return 0


def cmd_selftest(a):
    torch.manual_seed(0)
    fails = 0

    def check(what, err, tol):
        nonlocal fails
        ok = err <= tol
        fails += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {what}: {err:.3e}")

    # reflect padding vs numpy's reflect where the pad fits
    for n, m in ((5, 8), (7, 8), (3, 4), (9, 16)):
        ref = np.pad(np.arange(n), (0, m - n), mode="reflect")
        check(f"reflect n={n} -> {m}", float(np.abs(reflect_index(m, n).numpy() - ref).max()), 0)
    check("reflect n=1", float(reflect_index(8, 1).abs().max()), 0)
    check("reflect periodic n=2 -> 8",
          float(np.abs(reflect_index(8, 2).numpy() - np.array([0, 1, 0, 1, 0, 1, 0, 1])).max()), 0)
    check("reflect periodic n=3 -> 8",
          float(np.abs(reflect_index(8, 3).numpy() - np.array([0, 1, 2, 1, 0, 1, 2, 1])).max()), 0)

    # TLC pooling vs brute-force boxes
    for (hh, ww, window, level) in ((9, 7, 4, 0), (16, 12, 24, 1), (13, 20, 10, 0), (6, 6, 100, 0),
                                    (8, 5, 6, 0), (5, 5, 1, 2)):
        t = torch.rand(1, 3, hh, ww, dtype=torch.float64)
        got = tlc_pool(t, window, level).expand_as(t)
        k = max(window >> level, 1)
        ref = torch.empty_like(t)
        for y in range(hh):
            for x in range(ww):
                y0, ny = (0, hh) if k >= hh else (min(max(y - k // 2, 0), hh - k), k)
                x0, nx = (0, ww) if k >= ww else (min(max(x - k // 2, 0), ww - k), k)
                ref[:, :, y, x] = t[:, :, y0:y0 + ny, x0:x0 + nx].mean((2, 3))
        check(f"tlc {hh}x{ww} window {window} level {level}", float((got - ref).abs().max()), 1e-12)
    t = torch.rand(1, 2, 5, 6, dtype=torch.float64)
    check("tlc window 0 = global", float((tlc_pool(t, 0, 0) - t.mean((2, 3), keepdim=True)).abs().max()), 1e-15)

    # LayerNorm over channels, biased variance, conditioned mixing
    nm = Norm(5, 1e-6, classes=3).double()
    with torch.no_grad():
        nm.weight.uniform_(0.5, 1.5)
        nm.bias.uniform_(-0.5, 0.5)
    t = torch.rand(2, 5, 4, 3, dtype=torch.float64)
    pr = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    mu = t.mean(1, keepdim=True)
    var = ((t - mu) ** 2).mean(1, keepdim=True)
    ref = (t - mu) / torch.sqrt(var + 1e-6) * (pr @ nm.weight).view(1, -1, 1, 1) + \
        (pr @ nm.bias).view(1, -1, 1, 1)
    with torch.no_grad():
        check("conditioned layernorm", float((nm(t, pr) - ref).abs().max()), 1e-12)

    # pixel shuffle channel order
    t = torch.rand(1, 8, 3, 4, dtype=torch.float64)
    ps = F.pixel_shuffle(t, 2)
    ref = torch.empty(1, 2, 6, 8, dtype=torch.float64)
    for c in range(2):
        for y in range(6):
            for x in range(8):
                ref[0, c, y, x] = t[0, 4 * c + 2 * (y % 2) + (x % 2), y // 2, x // 2]
    check("pixel shuffle order", float((ps - ref).abs().max()), 0)

    # fp32 vs fp64 of a random model, and a forced class vs one-hot-like probs
    arch = Arch({"width": 8, "levels": 2, "enc_blocks": [1, 1], "middle_blocks": 1,
                 "dec_blocks": [1, 1], "cls_hidden": 16, "sca_window": 24, "norm_eps": 1e-6},
                ["a", "b", "c", "d"])
    sd = {k: torch.from_numpy(v) for k, v in random_state(arch, 7).items()}
    n32, n64 = Net(arch), Net(arch)
    n32.load_state_dict(sd)
    n64.load_state_dict(sd)
    n64 = n64.double().eval()
    n32.eval()
    rgb = np.random.default_rng(1).random((33, 17, 3), dtype=np.float32)
    for cls in (0, -1):
        o32, _ = torch_run(n32, rgb, cls)
        o64, _ = torch_run(n64, rgb, cls)
        check(f"fp32 vs fp64 restore class {cls}", float(np.abs(o32 - o64).max()), 1e-4)
    print(f"{'PASS' if not fails else 'FAIL'}: {fails} failed")
    return 1 if fails else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare", help="C library vs torch on a random image")
    c.add_argument("weights")
    c.add_argument("--size", default="61x47", help="HxW (default 61x47)")
    c.add_argument("--lib", default=default_lib())
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--cls", type=int, default=0, help="forced class (default 0)")
    c.add_argument("--threads", type=int, default=0)
    c.add_argument("--scalar", action="store_true", help="the C library's scalar kernels")
    c.add_argument("--tol", type=float, default=1e-3)
    b = sub.add_parser("bench", help="megapixels/s, torch vs the C library")
    b.add_argument("weights")
    b.add_argument("--size", default="512")
    b.add_argument("--threads", type=int, default=0, help="0 = all CPUs")
    b.add_argument("--lib", default=default_lib())
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--scalar", action="store_true", help="the C library's scalar kernels")
    b.add_argument("--nchw", action="store_true", help="torch in NCHW (default channels_last)")
    sub.add_parser("selftest", help="torch layers vs brute force, fp32 vs fp64")
    r = sub.add_parser("random", help="write a random weights file")
    r.add_argument("out")
    r.add_argument("--width", type=int, default=8)
    r.add_argument("--enc", default="1,1", help="encoder blocks per level")
    r.add_argument("--middle", type=int, default=1)
    r.add_argument("--dec", default="1,1", help="decoder blocks, deepest first")
    r.add_argument("--classes", type=int, default=4)
    r.add_argument("--hidden", type=int, default=16)
    r.add_argument("--window", type=int, default=0)
    r.add_argument("--eps", type=float, default=1e-6)
    r.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    return {"compare": cmd_compare, "bench": cmd_bench, "selftest": cmd_selftest,
            "random": cmd_random}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
