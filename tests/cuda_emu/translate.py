#!/usr/bin/env python3
"""translate.py - the CUDA backend's sources as C++ for the CPU emulator (emu.h).

Usage: translate.py OUTDIR FILE...

  X.cu -> OUTDIR/X.cc, every kernel launch
            k<<<grid, block[, smem[, stream]]>>>(args)
          rewritten as
            emu_launch(__FILE__, __LINE__, k, emu_cfg(grid, block[, smem[, stream]]), args)
  X.h  -> OUTDIR/X.h
  X.c  -> OUTDIR/X.cc (host code composing the kernels; built as C++ next
          to the translated headers)
In every file the CUDA, cuBLAS and cuDNN includes (<cuda_runtime.h>,
<cublas_v2.h>, <cudnn.h>, ...) become #include "emu.h".

Line numbers are kept and each output starts with a #line directive naming
its original, so compiler messages, __FILE__ and debuggers point at the
.cu file.  A `<<<` left over (a launch this script does not understand, e.g.
a kernel name with nested template arguments) is an error, not a silent
miscompile.
"""
import os
import re
import sys

# kernel name (optionally with one level of template arguments), <<<config>>>(
LAUNCH = re.compile(
    r"(?P<kernel>[A-Za-z_]\w*(?:\s*<[^<>;{}]*>)?)(?P<ws>\s*)<<<(?P<cfg>.*?)>>>\s*\(",
    re.DOTALL,
)
CUDA_INCLUDE = re.compile(
    r'^[ \t]*#[ \t]*include[ \t]*<(?:cuda|cublas|cudnn|curand|cufft|cusparse)\w*\.h>.*$',
    re.MULTILINE,
)


def translate(text, path):
    def launch(m):
        rest = m.string[m.end():]
        no_args = re.match(r"\s*\)", rest) is not None
        # newlines outside the config move after it, so later lines keep their numbers
        newlines = m.group("kernel").count("\n") + m.group("ws").count("\n")
        return ("emu_launch(__FILE__, __LINE__, %s, emu_cfg(%s)%s%s"
                % (m.group("kernel"), m.group("cfg"), "" if no_args else ", ", "\n" * newlines))

    out = CUDA_INCLUDE.sub('#include "emu.h"', text)
    out = LAUNCH.sub(launch, out)
    left = out.find("<<<")
    if left >= 0:
        line = out.count("\n", 0, left) + 1
        sys.exit("%s:%d: a kernel launch translate.py does not understand" % (path, line))
    assert out.count("\n") == text.count("\n"), "line numbers moved"
    return '#line 1 "%s"\n%s' % (os.path.abspath(path).replace("\\", "/"), out)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    outdir = argv[1]
    for path in argv[2:]:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        name = os.path.basename(path)
        if name.endswith(".cu"):
            name = name[:-3] + ".cc"
        elif name.endswith(".c"):
            name = name[:-2] + ".cc"
        with open(os.path.join(outdir, name), "w", encoding="utf-8") as f:
            f.write(translate(text, path))


if __name__ == "__main__":
    main(sys.argv)
