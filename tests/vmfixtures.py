"""VM folders made from the fixture disks (diskbuilder/vms.py), cached by the builder's content."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from diskbuilder import build as b
from diskbuilder import vms
from vm2c_tui.read.kernel.inspect import inspect_image

HERE = Path(__file__)
AFTER_FILE = "etc/after-snapshot"  # in the current state only
GONE_FILE = "etc/ssh/sshd_config"  # in the snapshot only


def key() -> str:
    h = hashlib.sha256(Path(vms.__file__).read_bytes() + HERE.read_bytes())
    return h.hexdigest()[:12]


def _modify_root(raw: Path, offset: int, size: int, tree: Path | None) -> None:
    """What the guest did after its snapshot: a file written, a file removed (directory times kept)."""
    with b.loop(raw, offset, size) as dev:
        mnt = raw.parent / ".mnt"
        mnt.mkdir(exist_ok=True)
        b.sh("mount", dev, str(mnt))
        try:
            for top in (mnt, tree):
                if top is None:
                    continue
                dirs = {d: os.stat(top / d) for d in ("etc", "etc/ssh")}
                (top / AFTER_FILE).write_text("written after the snapshot\n")
                os.utime(top / AFTER_FILE, (1_700_000_000, 1_700_000_000))
                (top / GONE_FILE).unlink()
                for d, st in dirs.items():
                    os.utime(top / d, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            b.sh("umount", str(mnt))


def virtualbox(disks, cache: Path) -> dict[str, Path]:
    """The demo disk as a VirtualBox VM with one snapshot; 'trees' is the current state's."""
    root = cache / f"vms-{key()}" / "vbox"
    done = root / ".done"
    out = {"vbox": root / "vm" / "vbvm.vbox", "trees": root / "trees"}
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        src = disks.get("demo")
        base, after = root / "base.raw", root / "after.raw"
        b.copy_sparse(src, base)
        insp = inspect_image(src, look_inside=False)
        swap = next(v for v in insp.filesystems() if v.fstype == "swap")
        with open(base, "r+b") as f:  # junk in swap that the guest later zeroed: a ZERO block
            f.seek(swap.offset + (4 << 20))
            f.write(b"\xa5" * (1 << 20))
        b.copy_sparse(base, after)
        with open(after, "r+b") as f:
            f.seek(swap.offset + (4 << 20))
            f.write(bytes(1 << 20))
        b.sh("cp", "-a", str(disks.trees("demo")), str(out["trees"]))  # owners, modes, xattrs kept
        rootfs = insp.root_volume or next(v for v in insp.filesystems() if v.label == "root")
        _modify_root(after, rootfs.offset, rootfs.size, out["trees"] / "root")
        vms.virtualbox_folder(root / "vm", base, after)
        base.unlink()
        done.touch()
    folder = root / "vm"
    out["base"] = folder / "vbvm.vdi"
    out["current"] = next((folder / "Snapshots").glob("*.vdi"))
    out["after_raw"] = root / "after.raw"
    return out
