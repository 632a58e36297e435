"""The copy of a remote's service files (inspect/services/remote.py): a tar from a machine we
do not trust is unpacked only inside the copy, its links followed there, never on the host."""

from __future__ import annotations

import io
import os
import tarfile

from vm2c_tui.inspect.guestpath import GuestRoot
from vm2c_tui.inspect.services.remote import _unpack_one


def _tar(*members: tuple[str, str, str]) -> bytes:
    """(name, kind, text or link target) as a tar, in that order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            if kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, value
                tar.addfile(info)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value.encode()))
    return buf.getvalue()


def _unpack(blob: bytes, into) -> GuestRoot:
    root = GuestRoot(str(into))
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        for m in tar:
            _unpack_one(root, tar, m, [1 << 20])
    return root


def test_links_are_followed_inside_the_copy(tmp_path):
    outside = tmp_path / "host"
    outside.mkdir()
    copy = tmp_path / "copy"
    copy.mkdir()
    root = _unpack(_tar(("lib", "link", "usr/lib"), ("lib/systemd/system/a.service", "file", "[Service]\n"),
                        ("etc/nginx", "link", str(outside)), ("etc/nginx/evil", "file", "x"),
                        ("etc/up", "link", "../../../.."), ("etc/up/tmp/escape", "file", "x"),
                        ("../dotdot", "file", "x"), ("/abs/file", "file", "ok")), copy)
    assert root.read("/usr/lib/systemd/system/a.service") == b"[Service]\n"  # through lib -> usr/lib
    assert root.read("/lib/systemd/system/a.service") == b"[Service]\n"
    assert os.listdir(outside) == []  # the absolute link led into the copy's own tree
    assert (copy / outside.relative_to("/") / "evil").is_file()
    assert (copy / "tmp" / "escape").is_file()  # .. stops at the copy's root
    assert not (tmp_path / "dotdot").exists() and not (tmp_path.parent / "dotdot").exists()
    assert root.read("/abs/file") == b"ok"


def test_a_second_member_never_writes_through_the_first(tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    target = tmp_path / "victim"
    target.write_text("mine")
    _unpack(_tar(("etc/passwd", "link", str(target)), ("etc/passwd", "file", "owned")), copy)
    assert target.read_text() == "mine" and os.readlink(copy / "etc" / "passwd") == str(target)
