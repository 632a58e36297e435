"""Files vm2c writes, as root, into a directory someone else may be able to write to.

A name opened the ordinary way follows a symlink planted there (GNU tar truncates its
--file target), so root would overwrite whatever the link names with guest content. Here:
NAME.partial is created with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600 (img.tar holds the
guest's /etc/shadow and keys), relative to the directory's open descriptor; writers get the
descriptor (tar gets it as its stdout); commit() renames it onto NAME with renameat after
checking it is still the file we made. Something other than a regular file at NAME (a symlink,
a FIFO, a directory) is refused in one line; a regular file there is replaced.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from vm2c_tui.errors import Vm2cError

_ODD = {True: "is a symbolic link; vm2c never writes through one (remove it, or choose another output directory)",
        False: "exists and is not a regular file; remove it or choose another name"}
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class OutputFile:
    def __init__(self, dest: Path | str, mode: int = 0o600):
        self.dest = Path(dest)
        self.name, self.partial = self.dest.name, self.dest.name + ".partial"
        try:
            self.dir_fd = os.open(self.dest.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise Vm2cError(f"{self.dest.parent}: cannot open the output directory ({exc.strerror})") from None
        try:
            self._refuse_odd(self.name, self.dest)
            self._refuse_odd(self.partial, self.dest.with_name(self.partial))
            self._unlink(self.partial)  # a regular leftover of an interrupted run
            self.fd = os.open(self.partial, CREATE, mode, dir_fd=self.dir_fd)
            os.fchmod(self.fd, mode)  # the umask may have taken bits away; never adds any
        except OSError as exc:
            os.close(self.dir_fd)
            raise Vm2cError(f"{self.dest}: cannot create it ({exc.strerror})") from None
        except BaseException:
            os.close(self.dir_fd)
            raise
        st = os.fstat(self.fd)
        self.ident = (st.st_dev, st.st_ino)
        self.done = False

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def commit(self) -> None:
        """NAME.partial -> NAME, if NAME.partial is still ours and NAME is not a link or special."""
        if not self._ours():
            raise Vm2cError(f"{self.dest}: its partial file was replaced while vm2c wrote it; not moved into place")
        self._refuse_odd(self.name, self.dest)
        os.rename(self.partial, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        self.done = True

    def discard(self) -> None:
        if not self.done and self._ours():
            self._unlink(self.partial)

    def close(self) -> None:
        for fd in (self.fd, self.dir_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> OutputFile:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if not self.done:
                self.discard()
        finally:
            self.close()

    def _ours(self) -> bool:
        try:
            st = os.stat(self.partial, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == self.ident

    def _refuse_odd(self, name: str, shown: Path) -> None:
        _refuse_if_odd(lambda: os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False), shown)

    def _unlink(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass


def refuse_odd(dest: Path | str) -> None:
    """Before any work: DEST and DEST.partial are absent or regular files (checked again when written)."""
    dest = Path(dest)
    for p in (dest, dest.with_name(dest.name + ".partial")):
        _refuse_if_odd(lambda p=p: os.lstat(p), p)


def _refuse_if_odd(lstat, shown: Path) -> None:
    """LSTAT() of a name vm2c will write: absent or a regular file, else one line saying what it is."""
    try:
        st = lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise Vm2cError(f"{shown}: {_ODD[stat.S_ISLNK(st.st_mode)]}")


def write_new(dest: Path | str, data: bytes, mode: int = 0o600) -> Path:
    """DEST holding DATA, written the same safe way (the Dockerfile, small files)."""
    with OutputFile(dest, mode) as out:
        view = memoryview(data)
        while view:
            view = view[os.write(out.fd, view):]
        out.commit()
    return Path(dest)
