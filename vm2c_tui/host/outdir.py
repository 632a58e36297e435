"""The output directory: made before any work, so a bad one is the first error, not the last."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.outfile import refuse_odd


def make(path: Path) -> list[Path]:
    """PATH and its missing parents; returns the directories made here, deepest first."""
    made: list[Path] = []
    target = p = Path(path).absolute()
    while not p.exists() and not p.is_symlink() and p != p.parent:
        made.append(p)
        p = p.parent
    if not p.is_dir():
        what = "the output directory" if p == target else f"a parent of {path}"
        raise Vm2cError(f"{p}: exists and is not a directory, so it cannot be {what}")
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Vm2cError(f"{path}: cannot create the output directory ({exc.strerror})") from None
    return made


ARCHIVE_NAMES = ("img.tar", "Dockerfile")


@contextmanager
def made_first(path: Path, names: tuple[str, ...] = ARCHIVE_NAMES) -> Iterator[Path]:
    """make(PATH) before the block, and refuse a symlink or special file planted at one of the
    NAMES vm2c will write there; if the block fails, the directories made here go again
    (those still empty: a kept partial result is not removed)."""
    made = make(path)
    for name in names:
        refuse_odd(Path(path) / name)
    try:
        yield Path(path)
    except BaseException:
        for d in made:
            try:
                d.rmdir()
            except OSError:
                break
        raise


def require_file_target(path: Path, what: str) -> None:
    """PATH can be written as a new file (its directory exists): checked before any work."""
    p = Path(path)
    if p.is_dir():
        raise Vm2cError(f"{what} {p}: is a directory; give a file name in it")
    if why := _not_a_dir(p.parent):
        raise Vm2cError(f"{what} {p}: its directory {p.parent} {why}")
    refuse_odd(p)  # a planted symlink: refused now, not after the work


def require_dir(path: Path, what: str) -> None:
    """PATH is an existing directory (a place for temporary files): checked before any work."""
    p = Path(path)
    if why := _not_a_dir(p):
        raise Vm2cError(f"{what} {p}: {why}")


def _not_a_dir(p: Path) -> str | None:
    """Why P is not a directory, in the words of the errors above; None when it is one."""
    if p.is_dir():
        return None
    return "is not a directory" if p.exists() else "does not exist"
