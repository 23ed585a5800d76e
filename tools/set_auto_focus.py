#!/usr/bin/env python3
"""Set (or remove) the 'auto_focus' metadata of a maskdcpt weights file.

    python3 tools/set_auto_focus.py IN OUT CLASSES

CLASSES is a comma-separated list of class names of the file (e.g.
clean,noise,haze), or "" to remove the key.  The tensors are copied byte
for byte; only the header's JSON changes.  Which classes to list is
measured with build/cli/auto_conditioning (docs/evaluation.md); what the
key does is in docs/network.md.  Standard library only.
"""
import json
import os
import struct
import sys
import tempfile


def fail(msg):
    sys.exit(f"set_auto_focus: {msg}")


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


def main(argv):
    if len(argv) != 4:
        sys.exit('usage: set_auto_focus.py IN OUT CLASSES   (e.g. clean,noise,haze; "" removes)')
    src, dst, spec = argv[1], argv[2], argv[3]
    with open(src, "rb") as f:
        data = f.read()
    header, body = read_header(data, src)
    meta = header["__metadata__"]
    if meta.get("format") != "maskdcpt":
        fail(f"{src}: not a maskdcpt weights file (metadata 'format' is {meta.get('format')!r})")
    classes = json.loads(meta.get("classes", "[]"))
    wanted = [c for c in spec.split(",") if c] if spec else []
    for c in wanted:
        if c not in classes:
            fail(f"'{c}' is not a class of {src} ({', '.join(classes)})")
    if len(set(wanted)) != len(wanted):
        fail("a class is listed twice")
    if wanted:
        meta["auto_focus"] = json.dumps(wanted, separators=(",", ":"))
    else:
        meta.pop("auto_focus", None)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # keep the data section 8-byte aligned
    out_dir = os.path.dirname(os.path.abspath(dst))
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".set_auto_focus-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text + body)
        os.replace(tmp, dst)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"{dst}: auto_focus = {meta.get('auto_focus', '(none)')}")


if __name__ == "__main__":
    main(sys.argv)
