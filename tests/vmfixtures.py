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


def _states(disks, root: Path) -> dict[str, Path]:
    """The demo disk as it was at a snapshot (base.raw, with junk in swap the guest later zeroed)
    and as it is now (after.raw: a file written, one removed), with the current state's trees."""
    out = {"base": root / "base.raw", "after": root / "after.raw", "trees": root / "trees"}
    if (root / ".done").exists():
        return out
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    src = disks.get("demo")
    b.copy_sparse(src, out["base"])
    insp = inspect_image(src, look_inside=False)
    swap = next(v for v in insp.filesystems() if v.fstype == "swap")
    with open(out["base"], "r+b") as f:
        f.seek(swap.offset + (4 << 20))
        f.write(b"\xa5" * (1 << 20))
    b.copy_sparse(out["base"], out["after"])
    with open(out["after"], "r+b") as f:
        f.seek(swap.offset + (4 << 20))
        f.write(bytes(1 << 20))
    b.sh("cp", "-a", str(disks.trees("demo")), str(out["trees"]))  # owners, modes, xattrs kept
    rootfs = next(v for v in insp.filesystems() if v.label == "root")
    _modify_root(out["after"], rootfs.offset, rootfs.size, out["trees"] / "root")
    (root / ".done").touch()
    return out


def _built(root: Path, make) -> Path:
    if not (root / ".done").exists():
        shutil.rmtree(root, ignore_errors=True)
        make(root)
        (root / ".done").touch()
    return root


def virtualbox(disks, cache: Path) -> dict[str, Path]:
    """The demo disk as a VirtualBox VM with one snapshot; 'trees' is the current state's."""
    states = _states(disks, cache / f"vms-{key()}" / "states")
    folder = _built(cache / f"vms-{key()}" / "vbox", lambda d: vms.virtualbox_folder(d, states["base"], states["after"]))
    return {"vbox": folder / "vbvm.vbox", "base": folder / "vbvm.vdi", "current": next((folder / "Snapshots").glob("*.vdi")),
            "trees": states["trees"], "after_raw": states["after"], "base_raw": states["base"]}


def vmware(disks, cache: Path) -> dict[str, Path]:
    """The same VM as VMware keeps it: a delta VMDK over the base, a .vmsd snapshot list."""
    states = _states(disks, cache / f"vms-{key()}" / "states")
    folder = _built(cache / f"vms-{key()}" / "vmware", lambda d: vms.vmware_folder(d, states["base"], states["after"]))
    return {"vmx": folder / "vmwvm.vmx", "base": folder / "vmwvm.vmdk", "current": folder / "vmwvm-000001.vmdk",
            "trees": states["trees"]}


def ova(disks, cache: Path) -> dict[str, Path]:
    """The demo disk exported as an OVA (OVF + streamOptimized VMDK); 'trees' as built."""
    folder = cache / f"vms-{key()}" / "ova"
    raw = disks.get("demo")
    _built(folder, lambda d: (d.mkdir(parents=True), vms.ova(d / "demo.ova", disks.get("demo", "vmdk-stream"),
                                                          os.path.getsize(raw))))
    return {"ova": folder / "demo.ova", "trees": disks.trees("demo")}


def two_disks(disks, cache: Path) -> dict[str, Path]:
    """A libvirt VM: /srv on its second disk, LV data/var linear across PVs on both."""
    folder = cache / f"vms-{key()}" / "twodisk"
    made = {}
    _built(folder, lambda d: made.update(vms.two_disk_vm(d / "vm", d / "trees")))
    return {"xml": folder / "vm" / "twodisk.xml", "trees": folder / "trees", "vda": folder / "vm" / "vda.qcow2",
            "vdb": folder / "vm" / "vdb.qcow2"}
