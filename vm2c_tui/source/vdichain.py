"""A VirtualBox disk's family: the parents a differencing VDI is read with, and the newer
images that make a base stale.

VirtualBox links a differencing image to its parent by uuid (the header's uuidLinkage), never
by name. The parent is found in the VM's media registry (a .vbox, given by the caller) or among
the VDIs of the VM's folder (the image's directory, or the one above `Snapshots/`, and that
folder's `Snapshots/`); nothing outside that folder (and --trust-dir) is opened.
"""

from __future__ import annotations

import os
from pathlib import Path

from vm2c_tui.errors import DamagedImage, Vm2cError
from vm2c_tui.host.confine import trusted_dirs, within
from vm2c_tui.source.magic import ImageInfo
from vm2c_tui.source.vdi import VdiDisk, VdiHeader, read_header

MAX_CHAIN = 64
MAX_IMAGES = 512
STALE = "newer images depend on it"  # the base-with-children warning, found by the faces


def vm_folder(path: Path) -> Path:
    d = Path(os.path.abspath(path)).parent
    return d.parent if d.name == "Snapshots" else d


def folder_images(folder: Path) -> dict[str, tuple[Path, VdiHeader]]:
    """Every VDI of FOLDER and FOLDER/Snapshots by creation uuid (by content, not name)."""
    out: dict[str, tuple[Path, VdiHeader]] = {}
    seen = 0
    for d in (folder, folder / "Snapshots"):
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for name in names:
            p = d / name
            if seen >= MAX_IMAGES or name.startswith(".") or not p.is_file() or p.is_symlink():
                continue
            seen += 1
            hdr = read_header(str(p))
            if hdr is not None and hdr.uuid:
                out.setdefault(hdr.uuid, (p, hdr))
    return out


def _inside(path: Path, folder: Path) -> bool:
    real = os.path.realpath(path)
    return within(real, [os.path.realpath(folder), *trusted_dirs()])


def parents(path: Path, registry: dict[str, Path] | None = None) -> list[str]:
    """PATH's parents, nearest first, down to the base; a missing one is a one-line error."""
    hdr = read_header(str(path))
    if hdr is None:
        raise Vm2cError(f"{path}: not a VDI image")
    folder = vm_folder(path)
    images: dict | None = None
    out: list[str] = []
    seen = {hdr.uuid}
    while hdr.differencing:
        if len(out) >= MAX_CHAIN:
            raise DamagedImage(f"{path}: a chain of differencing VDIs more than {MAX_CHAIN} deep")
        found = (registry or {}).get(hdr.parent)
        if found is None:
            images = images if images is not None else folder_images(folder)
            found = images.get(hdr.parent, (None, None))[0]
        if found is None:
            raise Vm2cError(f"{path}: a differencing VDI (a snapshot's changes) whose parent {hdr.parent} is not "
                            f"in {folder}; it is never read without it (copy the VM's whole folder)")
        if not _inside(found, folder):
            raise Vm2cError(f"{path}: its parent {found} lies outside the VM's folder {folder}; refusing to read it "
                            f"(name the directory with --trust-dir DIR if you trust it)")
        up = read_header(str(found))
        if up is None or up.uuid != hdr.parent or up.uuid in seen:
            raise DamagedImage(f"{path}: the VDI chain is broken at {found} (not the parent {hdr.parent} it names)")
        seen.add(up.uuid)
        out.append(str(found))
        hdr = up
    return out


def newest(path: Path) -> list[Path]:
    """The images that depend on PATH and have no children themselves: where the VM's
    current state (or a branch of its snapshot tree) lives."""
    hdr = read_header(str(path))
    if hdr is None:
        return []
    images = folder_images(vm_folder(path))
    kids: dict[str, list[str]] = {}
    for uid, (_p, h) in images.items():
        if h.differencing:
            kids.setdefault(h.parent, []).append(uid)
    out, todo = [], list(kids.get(hdr.uuid, []))
    while todo and len(out) < MAX_IMAGES:
        uid = todo.pop()
        if kids.get(uid):
            todo.extend(kids[uid])
        else:
            out.append(images[uid][0])
    return sorted(out, key=lambda p: os.stat(p).st_mtime, reverse=True)


def stale_warning(path: Path, how: str = "") -> str | None:
    leaves = newest(path)
    if not leaves:
        return None
    names = ", ".join(os.path.relpath(p, vm_folder(path)) for p in leaves[:3])
    how = how or f"convert the VM's definition (.vbox) or {leaves[0]} instead"
    return (f"{path} is a base image and {STALE}: the VM's current state is in {names}; "
            f"this image holds the machine as it was when its first snapshot was taken ({how})")


def identify_child(path: Path, registry: dict[str, Path] | None = None) -> ImageInfo:
    """A differencing VDI as an ImageInfo: its parents as the backing chain, each image's
    block map checked against its file's size (qemu cannot open it to check it)."""
    from vm2c_tui.source.identify import identify

    chain = parents(path, registry)
    base = identify(Path(chain[-1]))  # qemu checks the base, a plain VDI
    hdr = read_header(str(path))
    assert hdr is not None
    for layer in (str(path), *chain[:-1]):
        _check_blocks(layer)
    size = sum(os.stat(p).st_blocks * 512 for p in (str(path), *chain))
    info = ImageInfo(path=Path(os.path.abspath(path)), format="vdi", virtual_size=hdr.size, disk_size=size,
                     backing_chain=chain, subformat="differencing")
    info.warnings = [w for w in base.warnings if STALE not in w]
    return info


def _check_blocks(path: str) -> None:
    d = VdiDisk(path, map_only=True)
    try:
        end, have = d.data_end(), os.fstat(d.fd).st_size
    finally:
        d.close()
    if end > have:
        raise DamagedImage(f"{path}: truncated vdi image (data up to byte {end}, file has {have})")
