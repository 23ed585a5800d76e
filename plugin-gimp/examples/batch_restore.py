# Restores every PNG/JPEG/WebP in a folder with plug-in-maskdcpt-restore,
# inside a headless GIMP 3 (docs/gimp.md):
#
#   MDG_IN=photos MDG_OUT=restored MDG_WEIGHTS=my.safetensors \
#   gimp-console-3.0 -i --quit --batch-interpreter=python-fu-eval \
#       -b "exec(open('plugin-gimp/examples/batch_restore.py').read())"
#
# Optional: MDG_DEGRADATION (default auto), MDG_STRENGTH (default 1.0),
# MDG_DEVICE (auto, cpu, cuda).  Each output keeps its input's name.
import os

import gi
gi.require_version('Gimp', '3.0')
from gi.repository import Gimp, Gio

src, dst = os.environ['MDG_IN'], os.environ['MDG_OUT']
os.makedirs(dst, exist_ok=True)
pdb = Gimp.get_pdb()
proc = pdb.lookup_procedure('plug-in-maskdcpt-restore')

for name in sorted(os.listdir(src)):
    if not name.lower().endswith(('.png', '.jpg', '.jpeg', '.webp')):
        continue
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE,
                           Gio.File.new_for_path(os.path.join(src, name)))
    layer = image.get_layers()[0]
    config = proc.create_config()
    config.set_property('run-mode', Gimp.RunMode.NONINTERACTIVE)
    config.set_property('image', image)
    config.set_core_object_array('drawables', [layer])
    config.set_property('degradation', os.environ.get('MDG_DEGRADATION', 'auto'))
    config.set_property('strength', float(os.environ.get('MDG_STRENGTH', '1.0')))
    config.set_property('device', os.environ.get('MDG_DEVICE', 'auto'))
    if os.environ.get('MDG_WEIGHTS'):
        config.set_property('weights', Gio.File.new_for_path(os.environ['MDG_WEIGHTS']))
    result = proc.run(config)
    if result.index(0) != Gimp.PDBStatusType.SUCCESS:
        print('%s: %s' % (name, result.index(1)), flush=True)
    else:
        Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image,
                       Gio.File.new_for_path(os.path.join(dst, name)), None)
        print('%s: restored' % name, flush=True)
    image.delete()
