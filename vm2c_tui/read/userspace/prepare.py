"""Set up a user-space conversion: open the image, a reader per planned
filesystem, the exclude filters; and estimate what presets leave out."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.session import Session
from vm2c_tui.inspect.guestinfo import read_facts
from vm2c_tui.plan.excludes import Filters
from vm2c_tui.plan.presets import PRESETS, SANITIZE, rules
from vm2c_tui.read.userspace.guest import ReaderRoot, node_at
from vm2c_tui.read.userspace.readers import open_reader
from vm2c_tui.read.userspace.tree import Mounted, UserspaceTree
from vm2c_tui.source.diskimage import open_image, volume_disk
from vm2c_tui.source.diskset import as_one
from vm2c_tui.source.identify import identify


def prepare_userspace(session: Session, disks: list[str], plans, options,
                      snapshot: str = "") -> tuple[UserspaceTree, object, list[str]]:
    """DISKS: the image, or a VM's images in order (one address space: source/diskset.py)."""
    from vm2c_tui.read.userspace import require

    require()
    images = []
    for path in disks:
        images.append(open_image(identify(Path(path), snapshot)))
        session.callback(images[-1].close)
    disk = as_one(images)
    notes: list[str] = []
    mounts: list[Mounted] = []
    for p in plans:
        if not p.enabled:
            continue
        try:
            on, at = volume_disk(disk, p.offset, p.extents)
            reader = open_reader(on, p.fstype, at, p.size, p.subvol, p.options)
        except Vm2cError as exc:
            if p.mountpoint == "/":
                raise
            notes.append(f"{p.fs_id} at {p.mountpoint}: {exc.message}; left out")
            continue
        mounts.append(Mounted(p.mountpoint, p.fs_id, reader))
    mounts = _placeable(mounts, notes)
    excl = rules(options.preset, [m.mountpoint for m in mounts])
    if options.sanitize:
        excl += list(SANITIZE)
    tree = UserspaceTree(disk, mounts, Filters.build(excl, list(options.excludes)), options.sanitize,
                         options.sparse, options.limit_rate)
    return tree, read_facts(ReaderRoot(mounts[0].reader)), notes


def _placeable(mounts: list[Mounted], notes: list[str]) -> list[Mounted]:
    """Mounts whose mount point is a real directory of the tree above them, as
    assemble() requires: a guest symlink there could put a mount over the root."""
    kept = mounts[:1]
    for m in mounts[1:]:
        parent, _, name = m.mountpoint.rpartition("/")
        found = _node_at(kept, parent or "/")
        child = None
        if found is not None and found[0].meta(found[1]).kind == "dir":
            child = found[0].lookup(found[1], name.encode("utf-8", "surrogateescape"))
        kind = found[0].meta(child).kind if child is not None else None
        if kind == "dir":
            kept.append(m)
        elif kind == "symlink":
            notes.append(f"{m.fs_id}: mount point {m.mountpoint} is a symlink in the guest; left out")
        else:
            notes.append(f"{m.fs_id}: mount point {m.mountpoint} is missing in the guest; left out")
    return kept


def _node_at(mounts: list[Mounted], path: str):
    """(reader, node) of a guest path, entering mounts, following no symlinks."""
    return node_at({m.mountpoint: m.reader for m in mounts}, [p for p in path.split("/") if p])


def _size(reader, node, seen: set) -> int:
    """Bytes under NODE, each directory counted once (SEEN): a crafted tree whose entries name
    one directory twice per level would otherwise cost 2**depth visits."""
    total, stack = 0, [(node, 0)]
    while stack:
        n, depth = stack.pop()
        meta = reader.meta(n)
        if meta.kind != "dir":
            total += (meta.size + 4095) // 4096 * 4096 if meta.kind == "file" else 4096
            continue
        if (id(reader), meta.ino) in seen:
            continue
        seen.add((id(reader), meta.ino))
        total += 4096
        if depth < 64:
            stack.extend((c, depth + 1) for _, c in reader.children(n))
    return total


def matches(tree: UserspaceTree, pattern: str):
    """(guest path, reader, node) for an anchored rule whose wildcards are in its last part."""
    parent, _, last = pattern.removeprefix(".").rpartition("/")
    found = _node_at(tree.mounts, parent or "/")
    if found is None or found[0].meta(found[1]).kind != "dir":
        return
    reader, node = found
    for name, child in reader.children(node):
        text = name.decode("utf-8", "surrogateescape")
        if fnmatch.fnmatchcase(text, last):
            yield f"{parent}/{text}", reader, child


def savings(tree: UserspaceTree, rule_list) -> int:
    """Never more than the filesystems hold: a crafted i_size cannot make an estimate (and so
    the room check) believe a preset leaves out more than there is."""
    seen: set = set()
    found = sum(_size(reader, node, seen) for r in rule_list for _, reader, node in matches(tree, r.pattern))
    return min(found, sum(m.reader.used_bytes() for m in tree.mounts))


def sanitized(tree: UserspaceTree) -> list[str]:
    """What sanitising changes, as the kernel route reports it."""
    done = [f"{path} left out" for r in SANITIZE for path, _, _ in matches(tree, r.pattern)]
    found = _node_at(tree.mounts, "/etc/machine-id")
    if found is not None:
        meta = found[0].meta(found[1])
        if meta.kind == "file" and meta.size > 0:
            done.append("/etc/machine-id emptied")
    return done


def sizes(tree: UserspaceTree, path: str) -> list[tuple[str, int, bool]]:
    """(name, bytes, is a directory) of each entry of guest PATH, largest first, entering mounts
    (presets.sizes for the kernel route)."""
    found = _node_at(tree.mounts, path)
    if found is None or found[0].meta(found[1]).kind != "dir":
        return []
    seen: set = set()
    out = []
    for name, _ in found[0].children(found[1]):
        text = name.decode("utf-8", "surrogateescape")
        at = _node_at(tree.mounts, path.rstrip("/") + "/" + text)
        if at is not None:
            out.append((text, _size(at[0], at[1], seen), at[0].meta(at[1]).kind == "dir"))
    return sorted(out, key=lambda e: (-e[1], e[0]))


def estimate_all(tree: UserspaceTree, mountpoints: list[str]) -> dict[str, int]:
    return {name: savings(tree, rules(name, mountpoints)) for name in PRESETS}
