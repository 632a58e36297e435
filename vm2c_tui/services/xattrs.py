"""Which xattrs the Dockerfile route would lose (ADD keeps security.capability only)."""

from __future__ import annotations

import tarfile
from pathlib import Path

KEPT_BY_ADD = {"security.capability"}


def dropped_by_add(tar: Path, limit: int = 10000) -> list[tuple[str, list[str]]]:
    out = []
    with tarfile.open(tar, errors="surrogateescape") as tf:
        for m in tf:
            names = [k[len("SCHILY.xattr."):] for k in m.pax_headers if k.startswith("SCHILY.xattr.")]
            lost = [n for n in names if n not in KEPT_BY_ADD]
            if lost:
                out.append((m.name.removeprefix("."), lost))
                if len(out) >= limit:
                    break
    return out
