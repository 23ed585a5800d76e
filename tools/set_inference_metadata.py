#!/usr/bin/env python3
"""Set (or remove) the inference metadata of a maskdcpt weights file.

    python3 tools/set_inference_metadata.py IN OUT [auto_focus=CLASSES] [passes=CLASS:N,...]

auto_focus=CLASSES   comma-separated class names of the file (e.g.
                     clean,noise,haze): auto mode conditions on a listed
                     class alone once it holds more than half of the
                     probability; "auto_focus=" removes the key.
passes=CLASS:N,...   e.g. noise:2: the network runs N times (1..4), each
                     pass on the last one's output, when that class leads;
                     "passes=" removes the key.

Keys not named are kept as they are.  The tensors are copied byte for byte;
only the header's JSON changes.  Which values to set is measured:
build/cli/auto_conditioning and scripts/measure-passes.sh
(docs/evaluation.md); what the keys do is in docs/network.md.  Standard
library only.
"""
import json
import os
import struct
import sys
import tempfile

MAX_PASSES = 4  # core/arch.h MDC_MAX_PASSES


def fail(msg):
    sys.exit(f"set_inference_metadata: {msg}")


def read_header(data, path):
    if len(data) < 8:
        fail(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        fail(f"{path}: header length {n} runs past the end of the file")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        fail(f"{path}: header is not valid JSON ({e})")
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__"), dict):
        fail(f"{path}: no __metadata__ object in the header")
    return header, data[8 + n:]


def check_class(name, classes, src):
    if name not in classes:
        fail(f"'{name}' is not a class of {src} ({', '.join(classes)})")


def auto_focus_value(spec, classes, src):
    wanted = [c for c in spec.split(",") if c]
    for c in wanted:
        check_class(c, classes, src)
    if len(set(wanted)) != len(wanted):
        fail("auto_focus: a class is listed twice")
    return json.dumps(wanted, separators=(",", ":")) if wanted else None


def passes_value(spec, classes, src):
    passes = {}
    for item in [i for i in spec.split(",") if i]:
        name, sep, count = item.partition(":")
        check_class(name, classes, src)
        if not sep or not count.isdigit() or not 1 <= int(count) <= MAX_PASSES:
            fail(f"passes: '{item}': expected CLASS:N with N from 1 to {MAX_PASSES}")
        if name in passes:
            fail(f"passes: class {name} is given twice")
        passes[name] = int(count)
    return json.dumps(passes, separators=(",", ":")) if passes else None


SETTERS = {"auto_focus": auto_focus_value, "passes": passes_value}


def main(argv):
    if len(argv) < 4:
        sys.exit("usage: set_inference_metadata.py IN OUT [auto_focus=CLASSES] "
                 "[passes=CLASS:N,...]   (an empty value removes the key)")
    src, dst = argv[1], argv[2]
    with open(src, "rb") as f:
        data = f.read()
    header, body = read_header(data, src)
    meta = header["__metadata__"]
    if meta.get("format") != "maskdcpt":
        fail(f"{src}: not a maskdcpt weights file (metadata 'format' is {meta.get('format')!r})")
    classes = json.loads(meta.get("classes", "[]"))
    for arg in argv[3:]:
        key, sep, spec = arg.partition("=")
        if not sep or key not in SETTERS:
            fail(f"'{arg}': expected auto_focus=... or passes=...")
        value = SETTERS[key](spec, classes, src)
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # keep the data section 8-byte aligned
    out_dir = os.path.dirname(os.path.abspath(dst))
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".set_inference_metadata-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text + body)
        os.replace(tmp, dst)
    except BaseException:
        os.unlink(tmp)
        raise
    for key in SETTERS:
        print(f"{dst}: {key} = {meta.get(key, '(none)')}")


if __name__ == "__main__":
    main(sys.argv)
