"""What a finished img.tar holds that decides how it may become an image: the xattrs the
Dockerfile route's ADD would drop, and GNU sparse members (which Docker cannot save)."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

from vm2c_tui.errors import Vm2cError

KEPT_BY_ADD = {"security.capability"}


def members(tar: Path) -> Iterator[tarfile.TarInfo]:
    """TAR's headers in order; a file that is not a readable tar is one clear error."""
    try:
        with tarfile.open(tar, errors="surrogateescape") as tf:
            yield from tf
    except tarfile.ReadError:
        raise Vm2cError(f"{tar}: not a tar file (or a damaged one)") from None
    except (tarfile.TarError, OSError) as exc:
        raise Vm2cError(f"{tar}: not a readable tar ({str(exc).splitlines()[0][:160]})") from None


def dropped_by_add(tar: Path, limit: int = 10000) -> list[tuple[str, list[str]]]:
    out = []
    for m in members(tar):
        names = [k[len("SCHILY.xattr."):] for k in m.pax_headers if k.startswith("SCHILY.xattr.")]
        lost = [n for n in names if n not in KEPT_BY_ADD]
        if lost:
            out.append((m.name.removeprefix("."), lost))
            if len(out) >= limit:
                break
    return out


def has_sparse_members(tar: Path) -> bool:
    return any(m.sparse is not None or "GNU.sparse.major" in m.pax_headers for m in members(tar))
