#!/usr/bin/env python3
"""torch_bench.py - the PyTorch side of the GPU benchmark.

Times the network of docs/network.md, as implemented by torch_reference.py
(imported, not copied), so that its figures can be set beside the C/CUDA
backend's on the same GPU, weights and input sizes:

  infer WEIGHTS --size N [--tile T] [--reps R] [--dtype fp32|fp16|bf16]
        megapixels/s of a forced-class restore (class 1), H2D and D2H copies
        included, plus the network alone, MACs/pixel and GFLOP/s
  train [--width W] [--crop C] [--batch B] [--steps S] [--compile]
        training steps/s of a freshly initialised network (PSNR + focal
        loss, clip 1.0, AdamW) on random tensors already on the device
  selfcheck
        both commands, tiny, on the CPU; asserts finite results

Every command prints human-readable lines; infer and train also write the
figures as JSON with --json FILE.  Everything runs with --device cpu.
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as tr  # noqa: E402

EPILOG = """\
compare with the C side, on the same GPU in the same run:
  infer  <->  maskdcpt bench --device cuda --size N
  train  <->  maskdcpt-train bench --device cuda --width 32 --crop 256 --batch 16
"""

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
FORCED_CLASS = 1
TILE_BLEND = 32  # MDC_TILE_BLEND of core/tiling.h


# ----------------------------------------------------------------- set-up


def setup(a):
    """Device, TF32, cuDNN and thread settings from the common flags; prints
    and returns them as a dict."""
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_bench: --device cuda but torch.cuda.is_available() is False")
    # TF32 only changes CUDA fp32 matmuls/convolutions; set it explicitly both ways
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    torch.backends.cudnn.benchmark = a.cudnn_benchmark
    if a.threads:
        torch.set_num_threads(a.threads)
    info = {"torch": torch.__version__, "device": str(dev), "python": platform.python_version(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "channels_last": a.channels_last}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        info.update(device_name=p.name, cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), sm_count=p.multi_processor_count,
                    gpu_memory_gib=round(p.total_memory / 2**30, 1))
        torch.cuda.reset_peak_memory_stats(dev)
    else:
        info.update(device_name=platform.processor() or platform.machine(),
                    threads=torch.get_num_threads(), load_average=round(os.getloadavg()[0], 2))
    print(f"torch {info['torch']} on {info['device_name']} ({dev})"
          + (f", CUDA {info['cuda']}, cuDNN {info['cudnn']}" if dev.type == "cuda" else
             f", {info['threads']} threads, load average {info['load_average']}"))
    print(f"  tf32: matmul.allow_tf32={info['tf32_matmul']} cudnn.allow_tf32={info['tf32_cudnn']}"
          f" (CUDA fp32 only)  cudnn.benchmark={info['cudnn_benchmark']}"
          f"  memory format: {'channels_last (NHWC)' if a.channels_last else 'NCHW'}")
    return dev, info


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev, warmup, reps):
    """(warm-up seconds [warmup], timed seconds [reps]) of fn(), the device
    synchronised before and after each call."""
    out = ([], [])
    for i in range(warmup + reps):
        sync(dev)
        t = time.perf_counter()
        fn()
        sync(dev)
        out[i >= warmup].append(time.perf_counter() - t)
    return out


def stats(ts):
    return {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "times_s": ts}


def peak_memory(dev):
    return torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None


def write_json(path, d):
    if path:
        with open(path, "w") as f:
            json.dump(d, f, indent=2)
            f.write("\n")
        print(f"  wrote {path}")


# ------------------------------------------------------------------- MACs


def macs_per_pixel(arch, sca_window=None):
    """Multiply-adds per input pixel of the restoration path, counted as
    core/arch.c's mdc_arch_macs_per_pixel does (convolutions only, classifier
    left out; the sca 1x1 per pixel when the window is non-zero)."""
    w = arch.sca_window if sca_window is None else sca_window

    def block(c):
        return 6.0 * c * c + 18.0 * c + (c * c if w > 0 else 0.0)

    L = arch.levels
    m = 2.0 * 27.0 * arch.width  # intro and ending, 3x3
    for l in range(L):
        c = arch.channels(l)
        m += 4.0 ** -l * (arch.enc_blocks[l] * block(c) + 0.25 * 2.0 * c * c * 4.0)
    m += 4.0 ** -L * arch.middle_blocks * block(arch.channels(L))
    for i in range(L):
        cin = arch.channels(L - i)
        m += 4.0 ** -(L - i) * 2.0 * cin * cin + 4.0 ** -(L - 1 - i) * arch.dec_blocks[i] * block(cin / 2)
    return m


def counted_macs(net, x, probs):
    """Conv MACs of one restore, counted with forward hooks (classifier
    excluded), per input pixel."""
    total = [0]

    def hook(m, inp, out):
        total[0] += out.numel() // out.shape[0] * (m.in_channels // m.groups) * \
            m.kernel_size[0] * m.kernel_size[1]

    hs = [m.register_forward_hook(hook) for n, m in net.named_modules()
          if isinstance(m, nn.Conv2d) and not n.startswith("cls.")]
    with torch.inference_mode():
        net(x, probs)
    for h in hs:
        h.remove()
    return total[0] / (x.shape[2] * x.shape[3])


# ----------------------------------------------------------------- tiling


def simple_tiles(n, t):
    """Non-overlapping tiles along an axis: [(start, size, keep_lo, keep_hi)]."""
    return [(s, min(t, n - s), s, min(s + t, n)) for s in range(0, n, t)]


def c_tiles(n, tile, align, sca_window):
    """The C library's overlapping tile plan along an axis (core/tiling.c:
    margin, minimum tile, alignment, last tile to the edge), each tile kept
    from the middle of one blend ramp to the next (no blending here)."""
    margin = 64 if sca_window <= 0 else min(max((sca_window * 3 // 4 + 15) // 16 * 16, 32), 192)
    tile = max(tile, 2 * margin + 3 * TILE_BLEND)
    tile = -(-tile // align) * align
    step = max((tile - (2 * margin + TILE_BLEND)) // align * align, align)
    count = 1
    while n - (count - 1) * step > tile + align - 1:
        count += 1
    starts = [i * step for i in range(count)]
    sizes = [tile if i < count - 1 else n - i * step for i in range(count)]
    cuts = [0] + [starts[i + 1] + (starts[i] + sizes[i] - starts[i + 1] - TILE_BLEND) // 2
                  + TILE_BLEND // 2 for i in range(count - 1)] + [n]
    return [(starts[i], sizes[i], cuts[i], cuts[i + 1]) for i in range(count)], margin


# ------------------------------------------------------------------ infer


def cmd_infer(a):
    """Megapixels/s of restoring an N x N image with class 1 forced."""
    dev, info = setup(a)
    dtype = DTYPES[a.dtype]
    n = a.size
    t = a.tile if a.tile > 0 else n
    net, _ = tr.load_model(a.weights, dtype)
    arch = net.arch
    align = 1 << arch.levels
    if a.channels_last:
        net = net.to(memory_format=torch.channels_last)
    net = net.to(dev)
    model = torch.compile(net) if a.compile else net
    probs = F.one_hot(torch.tensor(FORCED_CLASS), arch.num_classes).to(dtype).to(dev)

    if a.tiling == "simple":
        axis = simple_tiles(n, t)
        tiling = f"non-overlapping {t}x{t} tiles" + (" (the last ones cut at the edge)" if n > t and n % t else "")
    else:
        axis, margin = c_tiles(n, t, align, arch.sca_window)
        tiling = (f"the C library's overlapping grid (margin {margin}, blend {TILE_BLEND}), "
                  f"pasted without blending")
    tiles = [(ya, xa) for ya in axis for xa in axis]
    c_axis, c_margin = c_tiles(n, t, align, arch.sca_window)
    c_px = sum(ya[1] for ya in c_axis) ** 2
    run_px = sum(ya[1] for ya in axis) ** 2

    # the host image: NHWC float32, as the C API takes it; pageable unless --pinned
    rng = np.random.default_rng(a.seed)
    host_in = torch.from_numpy(rng.random((1, n, n, 3), dtype=np.float32))
    host_out = torch.empty_like(host_in)
    if a.pinned and dev.type != "cuda":
        print("  --pinned ignored: pinned host memory needs CUDA")
        a.pinned = False
    if a.pinned:
        host_in, host_out = host_in.pin_memory(), host_out.pin_memory()
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format

    def to_net(x_nhwc):
        x = x_nhwc.permute(0, 3, 1, 2).to(dtype)  # NHWC memory = channels_last already
        return x.contiguous(memory_format=fmt)

    def network(x):
        out = torch.empty((1, 3, n, n), dtype=dtype, device=dev, memory_format=fmt)
        for (y0, hy, ylo, yhi) in axis:
            for (x0, wx, xlo, xhi) in axis:
                xt = x[:, :, y0:y0 + hy, x0:x0 + wx]
                if a.compile:  # a fresh tensor: no guard on the view's storage offset
                    xt = xt.contiguous(memory_format=fmt)
                o = model(xt, probs)
                out[:, :, ylo:yhi, xlo:xhi] = o[:, :, ylo - y0:yhi - y0, xlo - x0:xhi - x0]
        return out

    def end_to_end():
        x = to_net(host_in.to(dev, non_blocking=a.pinned))
        host_out.copy_(network(x).permute(0, 2, 3, 1).float(), non_blocking=a.pinned)

    print(f"infer {a.weights}: width {arch.width}, sca_window {arch.sca_window}, "
          f"{arch.num_classes} classes, class {FORCED_CLASS} forced, {a.dtype}"
          + (", torch.compile" if a.compile else ""))
    print(f"  image {n}x{n}, tile {t}: {tiling}: {len(axis)}x{len(axis)} = {len(tiles)} tiles, "
          f"{run_px / 1e6:.3g} Mpx through the network ({run_px / n / n:.2f}x the image)")
    print(f"  (the C library with tile {t}: {len(c_axis)}x{len(c_axis)} = {len(c_axis) ** 2} "
          f"overlapping tiles, margin {c_margin}, {c_px / 1e6:.3g} Mpx, {c_px / n / n:.2f}x the image)")
    print("  note: torch_reference pads every tile with an index map built on the host (a small "
          "synchronous copy per tile)"
          + ("; its TLC pooling sums in float64 where the window is smaller than the map"
             if arch.sca_window > 0 else ""))
    with torch.inference_mode():
        warm, e2e = timed(end_to_end, dev, a.warmup, a.reps)
        finite = bool(torch.isfinite(host_out).all())
        x_dev = to_net(host_in.to(dev))
        _, net_only = timed(lambda: network(x_dev), dev, 1, a.reps)
    mac = macs_per_pixel(arch)
    mp = n * n / 1e6
    res = dict(info, command="infer", weights=a.weights, arch=json.loads(arch.to_json()),
               num_classes=arch.num_classes, forced_class=FORCED_CLASS, dtype=a.dtype,
               compile=a.compile, pinned=a.pinned, size=n, tile=t, tiling=a.tiling,
               tiles=len(tiles), megapixels_processed=run_px / 1e6, c_tiles=len(c_axis) ** 2,
               c_margin=c_margin, c_megapixels_processed=c_px / 1e6, warmup=a.warmup,
               reps=a.reps, warmup_s=warm, macs_per_pixel=mac, output_finite=finite)
    print(f"  MACs/pixel {mac / 1e3:.1f} k (conv MACs as core/arch.c counts them; "
          f"GFLOP/s = 2 x MACs x N^2 / time)")
    if a.compile and warm:
        print("  warm-ups (the first includes torch.compile): " + ", ".join(f"{w:.2f} s" for w in warm))
    for key, label, ts, nw in (("end_to_end", "H2D + network + D2H", e2e, a.warmup),
                               ("network_only", "network only (input on device)", net_only, 1)):
        s = stats(ts)
        s["warmup"] = nw
        s.update(mpix_per_s=mp / s["median_s"], gflops=2 * mac * n * n / s["median_s"] / 1e9)
        res[key] = s
        print(f"  {label:<31} median {s['median_s'] * 1e3:9.2f} ms (min {s['min_s'] * 1e3:.2f}, "
              f"max {s['max_s'] * 1e3:.2f}, {a.reps} reps after {nw} warm-up{'s' * (nw != 1)})  "
              f"{s['mpix_per_s']:9.3f} MP/s  {s['gflops']:8.1f} GFLOP/s")
    res["max_memory_bytes"] = peak_memory(dev)
    if dev.type == "cuda":
        print(f"  peak GPU memory allocated {res['max_memory_bytes'] / 2**20:.0f} MiB")
    print(f"  output finite: {finite}")
    write_json(a.json, res)
    return res


# ------------------------------------------------------------------ train


class SampleNorm(tr.Norm):
    """tr.Norm with per-sample conditioning: probs [N, K] (or [K])."""

    def forward(self, x, probs=None):
        if not self.classes:
            return super().forward(x, probs)
        p = probs.to(x.dtype)
        p = p.unsqueeze(0) if p.dim() == 1 else p
        g, b = (p @ self.weight)[:, None, None, :], (p @ self.bias)[:, None, None, :]
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), None, None, self.eps)
        return (y * g + b).permute(0, 3, 1, 2)


class TrainNet(nn.Module):
    """tr.Net's restore and classifier from one encoder pass:
    forward(x [N,3,H,W], probs [N,K]) -> (restored, logits [N,K])."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        for m in net.modules():
            if type(m) is tr.Norm and m.classes:
                m.__class__ = SampleNorm

    def forward(self, x, probs):
        net, L = self.net, self.net.arch.levels
        h, w = x.shape[2], x.shape[3]
        inp = x if h % (1 << L) == 0 and w % (1 << L) == 0 else tr.pad_input(x, 1 << L)
        feats = net.encode(inp)
        y = feats[-1]
        for i, (up, blocks) in enumerate(zip(net.ups, net.decoders)):  # as tr.Net.forward
            y = F.pixel_shuffle(up(y), 2) + feats[L - 1 - i]
            for b in blocks:
                y = b(y, probs)
        out = (net.ending(y) + inp)[:, :, :h, :w]
        c = net.cls  # tr.Classifier.from_g without the final softmax
        g = c.pooled(feats, h, w)
        g = (g * torch.softmax(c.mix.to(g.dtype), 0).view(1, -1, 1)).sum(1)
        return out, c.fc2(F.relu(c.fc1(g)))


def train_arch(a):
    return tr.Arch({"width": a.width, "levels": 4, "enc_blocks": [1, 1, 1, 2], "middle_blocks": 2,
                    "dec_blocks": [1, 1, 1, 1], "cls_hidden": 64, "sca_window": a.window,
                    "norm_eps": 1e-6}, [f"c{i}" for i in range(a.classes)])


def losses(out, clean, logits, labels, gamma=2.0):
    """(total, psnr loss, focal loss): 10 log10(MSE + 1e-8) per crop and the
    focal loss, both averaged over the batch, weight 1 each."""
    mse = (out - clean).pow(2).mean((1, 2, 3))
    psnr = (10 * torch.log10(mse + 1e-8)).mean()
    logpt = F.log_softmax(logits.float(), -1).gather(1, labels[:, None])[:, 0]
    focal = (-(1 - logpt.exp()).pow(gamma) * logpt).mean()
    return psnr + focal, psnr, focal


def cmd_train(a):
    """Training steps/s of a random network on random device tensors."""
    dev, info = setup(a)
    arch = train_arch(a)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    g = torch.Generator().manual_seed(a.seed)
    B, C, K = a.batch, a.crop, arch.num_classes
    x = torch.rand(B, 3, C, C, generator=g).to(dev).contiguous(memory_format=fmt)
    clean = torch.rand(B, 3, C, C, generator=g).to(dev).contiguous(memory_format=fmt)
    labels = torch.randint(0, K, (B,), generator=g).to(dev)
    onehot = F.one_hot(labels, K).float()
    global_pool = a.window == 0 or all(max(a.window >> l, 1) >= C >> l for l in range(5))
    mac = macs_per_pixel(arch, 0 if global_pool else None)
    print(f"train: width {a.width}, enc 1,1,1,2, middle 2, dec 1,1,1,1, cls_hidden 64, {K} classes, "
          f"sca_window {a.window} ({'global mean' if global_pool else 'windowed'} at crop {C})")
    print(f"  batch {B} x {C}x{C} random crops on the device, one-hot conditioning; loss = PSNR loss "
          f"+ focal (gamma 2); clip 1.0; AdamW lr 1e-3 betas (0.9, 0.9) eps 1e-8 wd 0"
          f"{' fused' if a.fused else ''}" + (f"; EMA {a.ema}" if a.ema else "; no EMA")
          + "; fp32")

    def build():
        torch.manual_seed(a.seed)
        net = tr.Net(arch)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in tr.random_state(arch, a.seed).items()})
        model = TrainNet(net).to(dev).to(memory_format=fmt).train()
        params = [p for p in model.parameters()]
        opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.9), eps=1e-8, weight_decay=0.0,
                                fused=True if a.fused else None)
        ema = [p.detach().clone() for p in params] if a.ema else None
        return model, params, opt, ema

    def make_step(model, params, opt, ema):
        last = {}

        def step():
            opt.zero_grad(set_to_none=True)
            out, logits = model(x, onehot)
            loss, psnr, focal = losses(out, clean, logits, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if ema is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(ema, [p.detach() for p in params], 1.0 - a.ema)
            last.update(loss=loss.detach(), psnr=psnr.detach(), focal=focal.detach())
        return step, last

    n_params = sum(p.numel() for p in tr.Net(arch).parameters())
    res = dict(info, command="train", arch=json.loads(arch.to_json()), num_classes=K,
               params=n_params, batch=B, crop=C, steps=a.steps, warmup=a.warmup, fused=a.fused,
               ema=a.ema, global_pool=global_pool, forward_macs_per_pixel=mac)
    print(f"  {n_params} parameters, forward {mac / 1e3:.1f} k MACs/pixel "
          f"(GFLOP/s below: 3 x forward, an estimate)")
    variants = [("eager", False)] + ([("compiled", True)] if a.compile else [])
    for name, comp in variants:
        model, params, opt, ema = build()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        entry = {}
        if comp:
            model = torch.compile(model)
            step, last = make_step(model, params, opt, ema)
            try:
                (first,), _ = timed(step, dev, 1, 0)
            except Exception as e:  # keep the eager figures
                print(f"  compiled: torch.compile failed: {type(e).__name__}: {e}")
                res[name] = {"error": f"{type(e).__name__}: {e}"}
                continue
            entry["compile_s"] = first
            print(f"  compiled: first step (torch.compile, mode default) {first:.2f} s")
        else:
            step, last = make_step(model, params, opt, ema)
        warm, ts = timed(step, dev, a.warmup, a.steps)
        s = stats(ts)
        med = s["median_s"]
        finite = all(math.isfinite(float(v)) for v in last.values()) and \
            all(bool(torch.isfinite(p).all()) for p in params)
        entry.update(s, warmup_s=warm, steps_per_s=1 / med, crops_per_s=B / med,
                     mpix_per_s=B * C * C / med / 1e6,
                     gflops_estimate=3 * 2 * mac * B * C * C / med / 1e9,
                     loss=float(last["loss"]), psnr_loss=float(last["psnr"]),
                     focal_loss=float(last["focal"]), finite=finite,
                     max_memory_bytes=peak_memory(dev))
        res[name] = entry
        print(f"  {name:<8} median step {med * 1e3:9.2f} ms (min {s['min_s'] * 1e3:.2f}, max "
              f"{s['max_s'] * 1e3:.2f}, {a.steps} steps after {a.warmup} warm-ups)  "
              f"{1 / med:8.3f} steps/s  {B / med:8.2f} crops/s  ~{entry['gflops_estimate']:.1f} GFLOP/s")
        print(f"           last loss {entry['loss']:.4f} (PSNR loss {entry['psnr_loss']:.4f}, focal "
              f"{entry['focal_loss']:.4f}), finite {finite}"
              + (f", peak GPU memory {entry['max_memory_bytes'] / 2**20:.0f} MiB"
                 if dev.type == "cuda" else ""))
    if "compiled" in res and "median_s" in res["compiled"]:
        print(f"  compiled / eager speed: {res['eager']['median_s'] / res['compiled']['median_s']:.2f}x")
    write_json(a.json, res)
    return res


# -------------------------------------------------------------- selfcheck


def cmd_selfcheck(a):
    """Both commands tiny on the CPU (1 thread: a shared machine's spare core
    is enough), plus the MAC count, the tilings and the per-sample
    conditioning against torch_reference; asserts finite figures."""
    p = build_parser()
    fails = []

    def check(what, ok, detail=""):
        print(f"selfcheck {'ok  ' if ok else 'FAIL'} {what} {detail}")
        if not ok:
            fails.append(what)

    arch = tr.Arch({"width": 8, "levels": 4, "enc_blocks": [1, 1, 1, 2], "middle_blocks": 2,
                    "dec_blocks": [1, 1, 1, 1], "cls_hidden": 16, "sca_window": 8,
                    "norm_eps": 1e-6}, [f"c{i}" for i in range(12)])
    net = tr.Net(arch)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in tr.random_state(arch, 3).items()})
    net.eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    onehot = F.one_hot(torch.tensor(FORCED_CLASS), 12).float()
    # window 8 keeps every sca per pixel, so hooks and the formula must agree
    counted, formula = counted_macs(net, x[:1], onehot), macs_per_pixel(arch)
    check("MACs/pixel: hooks vs formula", abs(counted - formula) < 1e-6 * formula,
          f"({counted:.1f} vs {formula:.1f})")
    with torch.no_grad():
        ref = net(x, onehot)
        probs_ref = net.cls.from_g(net.features(x)[0])
        out, logits = TrainNet(net)(x, onehot.expand(2, 12))
    err = float((out - ref).abs().max())
    check("TrainNet restore vs tr.Net", err < 1e-5, f"(max abs {err:.2e})")
    err = float((torch.softmax(logits, -1) - probs_ref).abs().max())
    check("TrainNet logits vs tr.Classifier", err < 1e-6, f"(max abs {err:.2e})")

    # both tilings keep every pixel exactly once
    for n, t, win in ((64, 32, 8), (100, 32, 8), (4096, 1024, 192), (1000, 300, 0), (5000, 2048, 384)):
        for name, ax in (("simple", simple_tiles(n, t)), ("cgrid", c_tiles(n, t, 16, win)[0])):
            ok = ax[0][2] == 0 and ax[-1][3] == n and ax[-1][0] + ax[-1][1] == n and all(
                s <= lo < hi <= s + z and (i == 0 or lo == ax[i - 1][3])
                for i, (s, z, lo, hi) in enumerate(ax))
            check(f"{name} tiles n={n} T={t} window={win}: {len(ax)} per axis", ok)

    with tempfile.TemporaryDirectory() as d:
        w = os.path.join(d, "w.safetensors")
        tr.write_safetensors(w, tr.random_state(arch, 5),
                             {"format": "maskdcpt", "format_version": "1", "arch": arch.to_json(),
                              "classes": json.dumps(arch.classes)})
        for extra in (["--tile", "32"], ["--tile", "0"], ["--size", "336", "--tile", "160", "--tiling",
                      "cgrid"], ["--dtype", "bf16", "--no-channels-last"]):
            args = ["infer", w, "--size", "64", "--reps", "2", "--device", "cpu", "--threads", "1"] + extra
            print("selfcheck: " + " ".join(args))
            r = cmd_infer(p.parse_args(args))
            ok = r["output_finite"] and all(math.isfinite(r[k][f]) and r[k][f] > 0
                                            for k in ("end_to_end", "network_only")
                                            for f in ("median_s", "mpix_per_s", "gflops"))
            check("infer " + " ".join(extra), ok)
    args = ["train", "--width", "8", "--crop", "32", "--batch", "2", "--steps", "2",
            "--device", "cpu", "--threads", "1", "--ema", "0.999"]
    print("selfcheck: " + " ".join(args))
    r = cmd_train(p.parse_args(args))["eager"]
    check("train", r["finite"] and all(math.isfinite(r[k]) and r[k] > 0
                                       for k in ("median_s", "steps_per_s", "crops_per_s")))
    print(f"selfcheck: {'PASS' if not fails else 'FAIL: ' + ', '.join(fails)}")
    assert not fails, fails
    return 0


# -------------------------------------------------------------------- CLI


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cuda or cpu (default: cuda when available)")
    common.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=False,
                        help="allow TF32 in CUDA fp32 matmuls and convolutions (default: off)")
    common.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="NHWC memory format (default: on; the channel LayerNorms then "
                             "work on contiguous rows)")
    common.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=True,
                        help="cudnn.benchmark autotuning (default: on; tuned in the warm-ups)")
    common.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    common.add_argument("--seed", type=int, default=1)
    common.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("infer", parents=[common], help="megapixels/s of a forced-class restore",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    i.add_argument("weights")
    i.add_argument("--size", type=int, required=True, help="image edge N (N x N)")
    i.add_argument("--tile", type=int, default=1024, help="tile edge T (default 1024; 0: one tile)")
    i.add_argument("--tiling", choices=("simple", "cgrid"), default="simple",
                   help="simple: non-overlapping T x T tiles (default); cgrid: the C library's "
                        "overlapping tile grid, pasted without blending")
    i.add_argument("--reps", type=int, default=10, help="timed runs (median; default 10)")
    i.add_argument("--warmup", type=int, default=2)
    i.add_argument("--dtype", choices=tuple(DTYPES), default="fp32")
    i.add_argument("--pinned", action="store_true",
                   help="pinned host buffers, non-blocking copies (CUDA only; default: "
                        "pageable, like a C caller's buffer)")
    i.add_argument("--compile", action="store_true", help="torch.compile the network "
                   "(compile time is the first warm-up)")
    t = sub.add_parser("train", parents=[common], help="training steps/s",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--width", type=int, default=32)
    t.add_argument("--crop", type=int, default=256)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--steps", type=int, default=20, help="timed steps (median; default 20)")
    t.add_argument("--warmup", type=int, default=3)
    t.add_argument("--window", type=int, default=384, help="sca_window (default 384)")
    t.add_argument("--classes", type=int, default=12)
    t.add_argument("--compile", action="store_true", help="also time torch.compile(model)")
    t.add_argument("--fused", action="store_true", help="fused AdamW (default: torch's choice)")
    t.add_argument("--ema", type=float, default=0.0,
                   help="also update an EMA of the weights with this decay (default: none)")
    sub.add_parser("selfcheck", help="both commands tiny on the CPU; asserts finite results")
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    if a.cmd == "selfcheck":
        return cmd_selfcheck(a)
    {"infer": cmd_infer, "train": cmd_train}[a.cmd](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
