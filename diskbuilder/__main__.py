"""python -m diskbuilder DEST: the demo disk in raw, qcow2, vdi and vmdk (needs root)."""

import sys
from pathlib import Path

from diskbuilder import build as b
from diskbuilder.recipes import build


def main() -> int:
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else "demo")
    dest.mkdir(parents=True, exist_ok=True)
    raw = build("demo", dest)
    for fmt, ext in (("qcow2", "qcow2"), ("vdi", "vdi"), ("vmdk", "vmdk")):
        b.convert(raw, fmt, dest / f"demo.{ext}")
    for p in sorted(dest.glob("demo.*")):
        print(p)
    return 0


sys.exit(main())
