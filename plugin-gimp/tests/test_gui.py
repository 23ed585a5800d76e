# Tests of plug-in-maskdcpt-restore that need GIMP's GUI, run by
# test-gimp-gui.sh in gimp-3.0 on Xvfb: GIMP 3.0's PDB cannot undo, and
# only an interactive run (the dialog's OK) stores the last values.
# xdotool sends the keys a user would press; the test waits for their
# effect on the pixels, which it reads back through the PDB.
#
# Prints "ok - NAME" or "not ok - NAME: why" per check and "DONE n failed".

import os
import subprocess
import time
import traceback

import gi
gi.require_version('Gimp', '3.0')
gi.require_version('Gegl', '0.4')
from gi.repository import Gimp, Gegl

PROC = 'plug-in-maskdcpt-restore'
OK = Gimp.PDBStatusType.SUCCESS
failures = []


def check(name, cond, why=''):
    if cond:
        print('ok - %s' % name, flush=True)
    else:
        failures.append(name)
        print('not ok - %s: %s' % (name, why), flush=True)


def make_image(w=96, h=64, seed=1):
    """An RGB image with a patterned layer, shown in a window; its
    creation is not on the undo stack."""
    img = Gimp.Image.new(w, h, Gimp.ImageBaseType.RGB)
    img.undo_disable()
    layer = Gimp.Layer.new(img, 'card', w, h, Gimp.ImageType.RGB_IMAGE, 100,
                           Gimp.LayerMode.NORMAL)
    img.insert_layer(layer, None, 0)
    px = bytes((x * 7 + y * 3 + c * 50 + seed * 11 + ((x // 8 + y // 8) % 2) * 60) % 256
               for y in range(h) for x in range(w) for c in range(3))
    layer.get_buffer().set(Gegl.Rectangle.new(0, 0, w, h), "R'G'B' u8", px)
    img.undo_enable()
    return img, layer


def pixels(layer):
    buf = layer.get_buffer()
    return bytes(buf.get(Gegl.Rectangle.new(0, 0, layer.get_width(), layer.get_height()), 1.0,
                         "R'G'B' u8", Gegl.AbyssPolicy.CLAMP))


def run(img, layer, run_mode=Gimp.RunMode.NONINTERACTIVE, **args):
    proc = Gimp.get_pdb().lookup_procedure(PROC)
    cfg = proc.create_config()
    cfg.set_property('run-mode', run_mode)
    cfg.set_property('image', img)
    cfg.set_core_object_array('drawables', [layer])
    for k, v in args.items():
        cfg.set_property(k, v)
    return proc.run(cfg).index(0)


def xdotool(*args):
    return subprocess.run(['xdotool'] + list(args), capture_output=True, text=True).stdout


def image_window():
    """The window of the (only) image display."""
    for _ in range(80):
        ids = xdotool('search', '--onlyvisible', '--name', r'\[Untitled\]').split()
        if ids:
            return ids[-1]
        time.sleep(0.25)
    return None


def close_welcome():
    """GIMP 3.0.4 may open its welcome dialog on a fresh profile despite
    show-welcome-dialog, at some point after start: it takes the keys meant
    for the image window, so Escape closes it."""
    for w in xdotool('search', '--onlyvisible', '--name', '^Welcome to GIMP').split():
        xdotool('windowfocus', '--sync', w)
        time.sleep(0.2)
        xdotool('key', 'Escape')
        for _ in range(20):
            if w not in xdotool('search', '--onlyvisible', '--name', '^Welcome to GIMP').split():
                break
            time.sleep(0.25)


def focused(window):
    """Gives the keyboard focus to the image window (there is no window
    manager: xdotool sets it itself) and says whether X reports it there."""
    close_welcome()
    for _ in range(20):
        xdotool('windowfocus', '--sync', window)
        if xdotool('getwindowfocus').strip() == window:
            return True
        time.sleep(0.25)
    return False


# Edit > Undo and Redo by their shortcuts (GIMP 3.0's defaults).
KEYS = {'undo': 'ctrl+z', 'redo': 'ctrl+y'}
log = []


def press(window, action, layer, old, seconds=20):
    """Presses Undo or Redo in the focused image window and waits until the
    layer's pixels differ from `old`; returns them (== old on timeout).

    GIMP decides whether Undo and Redo can be used when an image is
    flushed: the test calls Gimp.displays_flush() after each change it makes
    through the PDB (GIMP flushes after its own undo and redo), so the
    shortcut acts on the stack as it is.  Without those flushes GIMP kept
    Undo insensitive, or its label at an older step, in some runs."""
    if not focused(window):
        log.append('%s: the image window did not get the focus' % action)
        return old
    xdotool('key', '--clearmodifiers', KEYS[action])
    deadline = time.time() + seconds
    now = pixels(layer)
    while now == old and time.time() < deadline:
        time.sleep(0.1)
        now = pixels(layer)
    if now == old:
        log.append('%s: no change in %d s' % (action, seconds))
    return now


def test_undo():
    img, layer = make_image()
    display = Gimp.Display.new(img)
    Gimp.displays_flush()
    win = image_window()
    check('undo: image window found', win is not None)
    if win is None:
        return
    p0 = pixels(layer)
    layer.invert(False)                   # one undo step of GIMP's own
    Gimp.displays_flush()
    p1 = pixels(layer)
    st = run(img, layer)
    Gimp.displays_flush()
    p2 = pixels(layer)
    check('undo: restore ran', st == OK and p2 != p1, '%s' % st)
    # One Undo takes back the whole restoration and nothing else: the
    # layer is as the invert left it, byte for byte.
    u1 = press(win, 'undo', layer, p2)
    check('undo: one step restores the original', u1 == p1,
          'unchanged' if u1 == p2 else 'the invert was undone too' if u1 == p0 else 'partial')
    u2 = press(win, 'undo', layer, u1)
    check('undo: the step before is the invert', u2 == p0)
    r1 = press(win, 'redo', layer, u2)
    check('redo: the invert comes back', r1 == p1)
    r2 = press(win, 'redo', layer, r1)
    check('redo: one step brings the restoration back', r2 == p2)
    # Strength 0 changes nothing and leaves no undo step: Undo then
    # takes back the restoration before it.
    st = run(img, layer, strength=0.0)
    Gimp.displays_flush()
    check('strength 0: unchanged', st == OK and pixels(layer) == p2)
    u3 = press(win, 'undo', layer, p2)
    check('strength 0: no undo step', u3 == p1)
    for line in log:
        print('# %s' % line, flush=True)
    display.delete()
    img.delete()


# The keys of the dialog (C locale): Alt+D the degradation combo, six
# down from Auto-detect is JPEG artifacts (the default class list); Alt+T
# the strength, typed as 0.6; Alt+O is OK.  If the dialog is still open
# afterwards the keys missed: Escape closes it so the test fails, not hangs.
DIALOG_KEYS = r'''
for i in $(seq 240); do
    w=$(xdotool search --onlyvisible --name 'MaskDCPT' | tail -n1)
    [ -n "$w" ] && break
    sleep 0.25
done
[ -n "$w" ] || { echo "dialog: no window"; exit 1; }
sleep 3
xdotool windowfocus --sync "$w"; sleep 0.3
xdotool key alt+d; sleep 0.3
for i in 1 2 3 4 5 6; do xdotool key Down; sleep 0.2; done
xdotool key alt+t; sleep 0.3
xdotool key ctrl+a; xdotool type 0.6; xdotool key Tab; sleep 0.5
xdotool key alt+o
for i in $(seq 120); do
    xdotool search --onlyvisible --name 'MaskDCPT' >/dev/null || exit 0
    sleep 0.25
done
echo "dialog: still open after OK; closing it"
xdotool key --window "$w" Escape
exit 1
'''


def test_last_values():
    img, layer = make_image(seed=2)
    display = Gimp.Display.new(img)
    Gimp.displays_flush()
    before = pixels(layer)
    keys = subprocess.Popen(['bash', '-c', DIALOG_KEYS])
    st = run(img, layer, Gimp.RunMode.INTERACTIVE)
    keys_ok = keys.wait(timeout=60) == 0
    check('dialog: OK pressed', keys_ok and st == OK, 'status %s' % st)
    check('dialog: the layer changed', pixels(layer) != before)
    # The same settings again, from what GIMP stored, on a fresh copy; they
    # must be the dialog's (JPEG, 0.6), not the defaults (auto, 1).
    img2, layer2 = make_image(seed=2)
    st2 = run(img2, layer2, Gimp.RunMode.WITH_LAST_VALS)
    img3, layer3 = make_image(seed=2)
    run(img3, layer3, degradation='jpeg', strength=0.6)
    img4, layer4 = make_image(seed=2)
    run(img4, layer4)
    check('last values: success', st2 == OK, '%s' % st2)
    check('last values: the dialog\'s result', pixels(layer2) == pixels(layer))
    check('last values: as jpeg at 0.6', pixels(layer2) == pixels(layer3))
    check('last values: not the defaults', pixels(layer2) != pixels(layer4))
    display.delete()
    for i in (img, img2, img3, img4):
        i.delete()


# Messages (the test weights are untrained) to the terminal: a message
# window would take the keys meant for the image window.
Gimp.message_set_handler(Gimp.MessageHandlerType.CONSOLE)
for t in (test_undo, test_last_values):
    t0 = time.time()
    try:
        t()
    except Exception:
        failures.append(t.__name__)
        print('not ok - %s raised:\n%s' % (t.__name__, traceback.format_exc()), flush=True)
    print('# %s: %.1f s' % (t.__name__, time.time() - t0), flush=True)

print('DONE %d failed%s' % (len(failures), (': ' + ', '.join(failures)) if failures else ''),
      flush=True)
