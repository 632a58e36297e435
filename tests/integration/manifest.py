"""Entry-by-entry manifests of a directory tree and of a tar, to compare them."""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from pathlib import Path


def _hash_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "dir"), (stat.S_ISREG, "file"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISCHR, "char"), (stat.S_ISBLK, "block"), (stat.S_ISFIFO, "fifo")):
        if test(mode):
            return name
    return "other"


def tree_manifest(mounts: dict[str, Path]) -> dict[bytes, dict]:
    """MOUNTS maps guest mount points to the source directories they were built from."""
    out: dict[bytes, dict] = {}
    for mp, top in sorted(mounts.items(), key=lambda kv: kv[0].count("/")):
        prefix = b"." + (os.fsencode(mp) if mp != "/" else b"")
        topb = os.fsencode(str(top))
        for dirpath, dirnames, filenames in os.walk(topb):
            rel = dirpath[len(topb):]
            if dirpath == topb:  # the mount point itself is the filesystem's root
                out[prefix] = _entry(dirpath)
            for n in dirnames + filenames:
                out[prefix + rel + b"/" + n] = _entry(os.path.join(dirpath, n))
    return out


def _entry(path: bytes) -> dict:
    st = os.lstat(path)
    kind = _kind(st.st_mode)
    e = {"type": kind, "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
         "mtime": int(st.st_mtime)}
    if kind == "file":
        e["size"] = st.st_size
        e["sha256"] = _hash_file(path)
        e["ino"] = (st.st_dev, st.st_ino) if st.st_nlink > 1 else None
    elif kind == "symlink":
        e["link"] = os.fsdecode(os.readlink(path))
    elif kind in ("char", "block"):
        e["dev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
    xattrs = {}
    if kind != "symlink":
        for k in os.listxattr(path, follow_symlinks=False):  # ACLs too: Docker keeps them only as xattrs
            xattrs[k] = os.getxattr(path, k, follow_symlinks=False)
    e["xattrs"] = xattrs
    return e


def tar_manifest(path: Path) -> dict[bytes, dict]:
    out: dict[bytes, dict] = {}
    links: list[tuple[bytes, bytes]] = []
    with tarfile.open(path, errors="surrogateescape") as tf:
        for m in tf:
            name = _norm(m.name)
            if m.islnk():
                links.append((name, _norm(m.linkname)))
                continue
            kind = ("dir" if m.isdir() else "file" if m.isfile() else "symlink" if m.issym() else
                    "char" if m.ischr() else "block" if m.isblk() else "fifo" if m.isfifo() else "other")
            e = {"type": kind, "mode": m.mode & 0o7777, "uid": m.uid, "gid": m.gid, "mtime": int(m.mtime)}
            if kind == "file":
                e["size"] = m.size
                e["sha256"] = hashlib.file_digest(tf.extractfile(m), "sha256").hexdigest()
                e["ino"] = None
            elif kind == "symlink":
                e["link"] = m.linkname
            elif kind in ("char", "block"):
                e["dev"] = (m.devmajor, m.devminor)
            e["xattrs"] = {k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape")
                           for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
            e["acl"] = m.pax_headers.get("SCHILY.acl.access", "")
            out[name] = e
    for name, target in links:
        out[name] = dict(out[target])
        out[name]["linked_to"] = target
        out[target]["linked_to"] = target
    return out


def _norm(name: str) -> bytes:
    b = name.encode("utf-8", "surrogateescape")
    b = b.rstrip(b"/")
    if not b.startswith(b"."):
        b = b"./" + b if b else b"."
    return b or b"."


def compare(src: dict[bytes, dict], tar: dict[bytes, dict], ignore=lambda p: False) -> list[str]:
    """Differences, one line each; hard link groups compared as groups."""
    diffs = []
    for p in sorted(set(src) | set(tar)):
        if ignore(p):
            continue
        if p not in tar:
            diffs.append(f"missing in tar: {p!r}")
            continue
        if p not in src:
            diffs.append(f"extra in tar: {p!r}")
            continue
        a, b = src[p], tar[p]
        for k in ("type", "mode", "uid", "gid", "mtime", "size", "sha256", "link", "dev", "xattrs"):
            if a.get(k) != b.get(k):
                diffs.append(f"{p!r}: {k} {a.get(k)!r} != {b.get(k)!r}")
    groups: dict = {}
    for p, e in src.items():
        if e.get("ino") and not ignore(p):
            groups.setdefault(e["ino"], []).append(p)
    for paths in groups.values():
        targets = {tar.get(p, {}).get("linked_to") for p in paths}
        if len(paths) > 1 and (None in targets or len(targets) != 1):
            diffs.append(f"hard links not kept: {paths!r}")
    return diffs
