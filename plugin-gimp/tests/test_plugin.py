# Headless tests of plug-in-maskdcpt-restore, run inside gimp-console-3.0
# by test-gimp-batch.sh (Python-Fu batch interpreter).  Each test makes its
# own image; weights are untrained networks from `maskdcpt init`, which
# change images deterministically (all these tests need) and restore nothing.
#
# Prints "ok - NAME" or "not ok - NAME: why" per check and "DONE n failed"
# at the end; the shell wrapper turns that into the exit status.
#
# $MDG_TEST_SET picks the tests: unset, the main set; "cancel", the cancel
# tests, for a GIMP started with MASKDCPT_TEST_CANCEL_AFTER=1 (the
# plug-in's progress then reports "cancelled" at its second report).

import array
import math
import os
import traceback

import gi
gi.require_version('Gimp', '3.0')
gi.require_version('Gegl', '0.4')
from gi.repository import Gimp, Gegl, Gio, GLib

PROC = 'plug-in-maskdcpt-restore'
WEIGHTS = os.environ['MDG_TEST_WEIGHTS']
WEIGHTS_FEW = os.environ['MDG_TEST_WEIGHTS_FEW']
failures = []


def check(name, cond, why=''):
    if cond:
        print('ok - %s' % name, flush=True)
    else:
        failures.append(name)
        print('not ok - %s: %s' % (name, why), flush=True)


def fmt_of(layer):
    grey = layer.is_gray()
    alpha = layer.has_alpha()
    if grey:
        return ("Y'A float" if alpha else "Y' float"), (2 if alpha else 1)
    return ("R'G'B'A float" if alpha else "R'G'B' float"), (4 if alpha else 3)


def make_image(w, h, base=Gimp.ImageBaseType.RGB, precision=Gimp.Precision.U8_NON_LINEAR,
               alpha=False, seed=1):
    """A photo-like test card: gradients, edges and pseudo-random noise."""
    img = Gimp.Image.new_with_precision(w, h, base, precision)
    img.undo_disable()
    if base == Gimp.ImageBaseType.RGB:
        t = Gimp.ImageType.RGBA_IMAGE if alpha else Gimp.ImageType.RGB_IMAGE
    else:
        t = Gimp.ImageType.GRAYA_IMAGE if alpha else Gimp.ImageType.GRAY_IMAGE
    layer = Gimp.Layer.new(img, 'card', w, h, t, 100, Gimp.LayerMode.NORMAL)
    img.insert_layer(layer, None, 0)
    fmt, nc = fmt_of(layer)
    px = array.array('f', [0.0]) * (w * h * nc)
    state = seed * 2654435761 % 4294967296
    for y in range(h):
        for x in range(w):
            state = (state * 1664525 + 1013904223) % 4294967296
            n = (state / 4294967296.0 - 0.5) * 0.2
            i = (y * w + x) * nc
            edge = 0.3 if (x // 16 + y // 16) % 2 else 0.0
            r = min(1.0, max(0.0, x / w * 0.7 + edge + n))
            g = min(1.0, max(0.0, y / h * 0.7 + 0.1 + n))
            b = min(1.0, max(0.0, 0.5 + 0.4 * math.sin(x * 0.2) * math.cos(y * 0.15) + n))
            if nc >= 3:
                px[i], px[i + 1], px[i + 2] = r, g, b
            else:
                px[i] = (r + g + b) / 3.0
            if alpha:
                px[i + nc - 1] = ((x * 7 + y * 13) % 256) / 255.0
    buf = layer.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, w, h), fmt, px.tobytes())
    buf.flush()
    img.undo_enable()
    return img, layer


def read(layer, fmt=None):
    w, h = layer.get_width(), layer.get_height()
    if fmt is None:
        fmt, _ = fmt_of(layer)
    buf = layer.get_buffer()
    data = buf.get(Gegl.Rectangle.new(0, 0, w, h), 1.0, fmt, Gegl.AbyssPolicy.CLAMP)
    a = array.array('f')
    a.frombytes(bytes(data))
    return a


def raw_format(layer):
    """The babl name of the layer's own storage format."""
    nick = layer.get_image().get_precision().value_nick     # e.g. u16-non-linear
    comp, trc = nick.split('-', 1)
    comp = {'u8': 'u8', 'u16': 'u16', 'u32': 'u32', 'half': 'half', 'float': 'float',
            'double': 'double'}[comp]
    alpha = layer.has_alpha()
    if layer.is_gray():
        model = 'Y' if trc == 'linear' else "Y'"
        model += 'A' if alpha else ''
    else:
        model = ('RGB' if trc == 'linear' else "R'G'B'") + ('A' if alpha else '')
    return '%s %s' % (model, comp)


def read_raw(layer):
    """The layer's pixels in its own storage format, as bytes."""
    w, h = layer.get_width(), layer.get_height()
    buf = layer.get_buffer()
    return bytes(buf.get(Gegl.Rectangle.new(0, 0, w, h), 1.0, raw_format(layer),
                         Gegl.AbyssPolicy.CLAMP))


def run(img, layer, run_mode=Gimp.RunMode.NONINTERACTIVE, **args):
    proc = Gimp.get_pdb().lookup_procedure(PROC)
    cfg = proc.create_config()
    cfg.set_property('run-mode', run_mode)
    cfg.set_property('image', img)
    cfg.set_core_object_array('drawables', [layer])
    if run_mode == Gimp.RunMode.NONINTERACTIVE:
        args.setdefault('weights', WEIGHTS)
    for k, v in args.items():
        if k == 'weights':
            v = Gio.File.new_for_path(v) if v else None
        cfg.set_property(k, v)
    r = proc.run(cfg)
    status = r.index(0)
    msg = r.index(1) if r.length() > 1 and isinstance(r.index(1), str) else ''
    return status, msg


def max_diff(a, b, nc=None, channels=None):
    m = 0.0
    for i in range(len(a)):
        if channels is not None and (i % nc) not in channels:
            continue
        d = abs(a[i] - b[i])
        if d > m:
            m = d
    return m


OK = Gimp.PDBStatusType.SUCCESS


def test_registration():
    proc = Gimp.get_pdb().lookup_procedure(PROC)
    check('registered', proc is not None, 'procedure not found')
    if proc is None:
        return
    names = [p.name for p in proc.get_arguments()]
    check('arguments', names == ['run-mode', 'image', 'drawables', 'degradation', 'strength',
                                 'weights', 'network', 'device'], repr(names))
    specs = {p.name: p for p in proc.get_arguments()}
    s = specs['strength']
    check('strength range', s.minimum == 0.0 and s.maximum == 1.0 and s.get_default_value() == 1.0,
          '%r %r' % (s.minimum, s.maximum))
    check('degradation default', specs['degradation'].get_default_value() == 'auto')
    check('network default', specs['network'].get_default_value() == 'fast')
    check('menu', '<Image>/Filters/Enhance' in proc.get_menu_paths(), repr(proc.get_menu_paths()))
    check('image types', proc.get_image_types() == 'RGB*, GRAY*', proc.get_image_types())


def test_rgb_changes():
    img, layer = make_image(96, 64)
    before = read(layer)
    st, msg = run(img, layer)
    after = read(layer)
    check('rgb: success', st == OK, '%s %s' % (st, msg))
    check('rgb: layer changed', max_diff(before, after) > 1e-3, 'max diff %g' % max_diff(before, after))
    check('rgb: still 8-bit', img.get_precision() == Gimp.Precision.U8_NON_LINEAR)
    img.delete()


def test_strength_zero():
    img, layer = make_image(80, 48)
    before = read_raw(layer)
    st, msg = run(img, layer, strength=0.0)
    check('strength 0: success', st == OK, msg)
    check('strength 0: unchanged', read_raw(layer) == before)
    img.delete()


def test_strength_half():
    # float, so that nothing is clipped between the two
    img, layer = make_image(64, 48, precision=Gimp.Precision.FLOAT_NON_LINEAR)
    img2, layer2 = make_image(64, 48, precision=Gimp.Precision.FLOAT_NON_LINEAR)
    before = read(layer)
    st1, _ = run(img, layer, strength=1.0, degradation='noise')
    st2, _ = run(img2, layer2, strength=0.5, degradation='noise')
    full, half = read(layer), read(layer2)
    worst = max(abs(half[i] - (before[i] + 0.5 * (full[i] - before[i]))) for i in range(len(before)))
    check('strength 0.5: half way', st1 == OK and st2 == OK and worst <= 2.5 / 255, 'worst %g' % worst)
    img.delete()
    img2.delete()


def test_selection():
    w, h = 96, 80
    img, layer = make_image(w, h)
    before = read(layer)
    img.select_rectangle(Gimp.ChannelOps.REPLACE, 24, 20, 40, 30)
    st, msg = run(img, layer)
    after = read(layer)
    outside = inside = 0.0
    for y in range(h):
        for x in range(w):
            for c in range(3):
                i = (y * w + x) * 3 + c
                d = abs(after[i] - before[i])
                if 24 <= x < 64 and 20 <= y < 50:
                    inside = max(inside, d)
                else:
                    outside = max(outside, d)
    check('selection: success', st == OK, msg)
    check('selection: outside unchanged', outside == 0.0, 'outside diff %g' % outside)
    check('selection: inside changed', inside > 1e-3, 'inside diff %g' % inside)
    img.delete()


def test_feather():
    w, h = 96, 80
    img, layer = make_image(w, h)
    ref_img, ref_layer = make_image(w, h)
    before = read(layer)
    # The same rectangle, hard and feathered: the feathered result is a blend
    # of the original and the hard one (the context read is the same).
    img.select_rectangle(Gimp.ChannelOps.REPLACE, 24, 20, 48, 40)
    Gimp.Selection.feather(img, 12.0)
    ref_img.select_rectangle(Gimp.ChannelOps.REPLACE, 0, 0, w, h)
    st, msg = run(img, layer)
    after = read(layer)
    # mask value at each pixel
    sel = img.get_selection()
    m = array.array('f')
    m.frombytes(bytes(sel.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, 'Y float',
                                           Gegl.AbyssPolicy.CLAMP)))
    partial = [i for i in range(w * h) if 0.1 < m[i] < 0.9]
    centre = (40 * w + 48) * 3
    moved_partial = any(abs(after[i * 3] - before[i * 3]) > 0 for i in partial)
    outside_ok = all(after[i * 3 + c] == before[i * 3 + c] for i in range(w * h) if m[i] == 0.0
                     for c in range(3))
    check('feather: success', st == OK, msg)
    check('feather: partly selected pixels change', len(partial) > 0 and moved_partial)
    check('feather: unselected pixels unchanged', outside_ok)
    # partly selected pixels move less than fully selected ones would, on average
    img.delete()
    ref_img.delete()


def test_alpha():
    img, layer = make_image(72, 56, alpha=True)
    before = read(layer)
    raw_before = read_raw(layer)
    st, msg = run(img, layer)
    after = read(layer)
    alpha_same = all(before[i] == after[i] for i in range(3, len(before), 4))
    check('rgba: success', st == OK, msg)
    check('rgba: colour changed', max_diff(before, after, 4, (0, 1, 2)) > 1e-3)
    check('rgba: alpha untouched', alpha_same)
    # bit-exact in the layer's own format too
    raw_after = read_raw(layer)
    check('rgba: alpha bytes identical', all(raw_before[i] == raw_after[i]
                                              for i in range(3, len(raw_before), 4)))
    img.delete()


def test_grey():
    for alpha in (False, True):
        name = 'grey%s' % ('+alpha' if alpha else '')
        img, layer = make_image(64, 64, base=Gimp.ImageBaseType.GRAY, alpha=alpha)
        before = read(layer)
        st, msg = run(img, layer)
        after = read(layer)
        nc = 2 if alpha else 1
        check('%s: success' % name, st == OK, msg)
        check('%s: changed' % name, max_diff(before, after, nc, (0,)) > 1e-3)
        check('%s: still grey' % name, layer.is_gray())
        if alpha:
            check('%s: alpha untouched' % name,
                  all(before[i] == after[i] for i in range(1, len(before), 2)))
        img.delete()


def test_precisions():
    for prec, label in ((Gimp.Precision.U16_NON_LINEAR, '16-bit'),
                        (Gimp.Precision.U16_LINEAR, '16-bit linear'),
                        (Gimp.Precision.U32_NON_LINEAR, '32-bit integer'),
                        (Gimp.Precision.HALF_NON_LINEAR, 'half float'),
                        (Gimp.Precision.FLOAT_LINEAR, '32-bit float')):
        img, layer = make_image(64, 48, precision=prec, alpha=True)
        before = read(layer)
        st, msg = run(img, layer)
        after = read(layer)
        check('%s: success' % label, st == OK, msg)
        check('%s: changed' % label, max_diff(before, after, 4, (0, 1, 2)) > 1e-3)
        check('%s: precision kept' % label, img.get_precision() == prec)
        check('%s: alpha untouched' % label,
              all(before[i] == after[i] for i in range(3, len(before), 4)))
        if prec == Gimp.Precision.U16_NON_LINEAR:
            u16 = array.array('H')
            u16.frombytes(read_raw(layer))
            fine = sum(1 for i in range(len(u16)) if i % 4 != 3 and u16[i] % 257 != 0)
            check('16-bit: keeps 16-bit detail', fine > len(u16) // 8, '%d fine values' % fine)
        img.delete()


def test_forced_and_unknown():
    img, layer = make_image(64, 48)
    img2, layer2 = make_image(64, 48)
    run(img, layer, degradation='noise')
    run(img2, layer2, degradation='haze')
    check('forced classes differ', max_diff(read(layer), read(layer2)) > 1e-4)
    img3, layer3 = make_image(64, 48)
    before = read_raw(layer3)
    st, msg = run(img3, layer3, degradation='no-such-damage')
    check('unknown class: calling error', st == Gimp.PDBStatusType.CALLING_ERROR, '%s' % st)
    check('unknown class: message lists classes', 'noise' in msg and 'no-such-damage' in msg, msg)
    check('unknown class: unchanged', read_raw(layer3) == before)
    # a weights file with its own, shorter class list
    img4, layer4 = make_image(64, 48)
    st, msg = run(img4, layer4, degradation='haze', weights=WEIGHTS_FEW)
    check('class missing from file: error', st == Gimp.PDBStatusType.CALLING_ERROR, msg)
    st, msg = run(img4, layer4, degradation='noise', weights=WEIGHTS_FEW)
    check('class of a custom file: success', st == OK, msg)
    for i in (img, img2, img3, img4):
        i.delete()


def test_missing_weights():
    img, layer = make_image(48, 48)
    before = read_raw(layer)
    # GIMP itself refuses a file argument that does not exist
    st, msg = run(img, layer, weights='/nonexistent/weights.safetensors')
    check('missing weights file: error', st != OK, '%s' % st)
    check('missing weights file: unchanged', read_raw(layer) == before)
    # no argument, no $MASKDCPT_WEIGHTS, no installed default
    st, msg = run(img, layer, weights='')
    check('no weights at all: execution error', st == Gimp.PDBStatusType.EXECUTION_ERROR, '%s' % st)
    check('no weights at all: says how to fix', 'No weights file' in msg and 'MASKDCPT_WEIGHTS' in msg, msg)
    check('no weights at all: unchanged', read_raw(layer) == before)
    st, msg = run(img, layer, weights='', network='quality')
    check('no weights, quality network: error names its file',
          st == Gimp.PDBStatusType.EXECUTION_ERROR and 'quality.safetensors' in msg, msg)
    # a broken file
    broken = os.path.join(os.environ['MDG_TEST_TMP'], 'broken.safetensors')
    with open(broken, 'wb') as f:
        f.write(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a":1}')
    st, msg = run(img, layer, weights=broken)
    check('broken weights: execution error', st == Gimp.PDBStatusType.EXECUTION_ERROR, msg)
    check('broken weights: unchanged', read_raw(layer) == before)
    img.delete()


def test_too_small():
    img, layer = make_image(12, 40)
    before = read_raw(layer)
    st, msg = run(img, layer)
    check('too small: execution error', st == Gimp.PDBStatusType.EXECUTION_ERROR, '%s' % st)
    check('too small: message', 'too small' in msg, msg)
    check('too small: unchanged', read_raw(layer) == before)
    img.delete()


def test_devices():
    img, layer = make_image(48, 48)
    img2, layer2 = make_image(48, 48)
    st1, m1 = run(img, layer, device='cpu')
    st2, m2 = run(img2, layer2, device='cuda')   # the GPU, or the CPU with a message
    check('device cpu', st1 == OK, m1)
    check('device cuda (or CPU fallback)', st2 == OK, m2)
    check('devices agree', max_diff(read(layer), read(layer2)) <= 2.0 / 255)
    img.delete()
    img2.delete()


def test_cancel():
    # MASKDCPT_TEST_CANCEL_AFTER=1: auto mode on one tile reports twice
    # (classification, then the tile), so it is cancelled once the whole
    # result exists: none of it may reach the layer.
    CANCEL = Gimp.PDBStatusType.CANCEL
    img, layer = make_image(96, 64)
    before = read_raw(layer)
    st, msg = run(img, layer)
    check('cancel: status CANCEL', st == CANCEL, '%s %s' % (st, msg))
    check('cancel: layer byte-identical', read_raw(layer) == before)
    img.delete()
    # a selection, alpha and 16 bits: nothing anywhere changes
    img, layer = make_image(80, 72, precision=Gimp.Precision.U16_NON_LINEAR, alpha=True)
    before = read_raw(layer)
    img.select_rectangle(Gimp.ChannelOps.REPLACE, 10, 12, 40, 30)
    st, msg = run(img, layer)
    check('cancel with a selection: status CANCEL', st == CANCEL, '%s %s' % (st, msg))
    check('cancel with a selection: layer byte-identical', read_raw(layer) == before)
    img.delete()
    # A forced class reports once (no classification): let through, so
    # the cancels above came from the count, not from every run failing.
    img, layer = make_image(96, 64)
    before = read_raw(layer)
    st, msg = run(img, layer, degradation='noise')
    check('cancel hook counts reports: one report runs', st == OK, '%s %s' % (st, msg))
    check('cancel hook counts reports: layer changed', read_raw(layer) != before)
    img.delete()


def test_offset_layer():
    # a layer smaller than the image and moved: coordinates are the layer's
    img, base = make_image(96, 96)
    layer = Gimp.Layer.new(img, 'small', 40, 32, Gimp.ImageType.RGB_IMAGE, 100,
                           Gimp.LayerMode.NORMAL)
    img.insert_layer(layer, None, 0)
    layer.set_offsets(30, 50)
    small_img, small = make_image(40, 32, seed=3)
    layer.get_buffer().set(Gegl.Rectangle.new(0, 0, 40, 32), "R'G'B' float",
                           bytes(read(small).tobytes()))
    small_img.delete()
    base_before = read_raw(base)
    before = read(layer)
    st, msg = run(img, layer)
    check('offset layer: success', st == OK, msg)
    check('offset layer: changed', max_diff(before, read(layer)) > 1e-3)
    check('offset layer: other layer untouched', read_raw(base) == base_before)
    img.delete()


if os.environ.get('MDG_TEST_SET') == 'cancel':
    tests = (test_cancel,)
else:
    tests = (test_registration, test_rgb_changes, test_strength_zero, test_strength_half,
             test_selection, test_feather, test_alpha, test_grey, test_precisions,
             test_forced_and_unknown, test_missing_weights, test_too_small, test_devices,
             test_offset_layer)
for t in tests:
    try:
        t()
    except Exception:
        failures.append(t.__name__)
        print('not ok - %s raised:\n%s' % (t.__name__, traceback.format_exc()), flush=True)

print('DONE %d failed%s' % (len(failures), (': ' + ', '.join(failures)) if failures else ''),
      flush=True)
