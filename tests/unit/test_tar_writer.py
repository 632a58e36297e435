"""The PAX tar writer: members read back exactly (hypothesis), and cfdisk's partition type names."""

from __future__ import annotations

import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vm2c_tui.archive import tarwriter
from vm2c_tui.read.userspace.fsbase import Meta

names = st.binary(min_size=1, max_size=300).filter(lambda b: b"\0" not in b and b"/" not in b)


def test_builtin_type_names_are_libfdisks():
    from vm2c_tui.inspect.table import COMMON, type_names

    for label, names in COMMON.items():
        real = type_names(label)
        assert {k: real.get(k) for k in names} == names


@settings(max_examples=200, deadline=None)
@given(name=names, uid=st.integers(0, 2**32 - 1), gid=st.integers(0, 2**32 - 1),
       mtime=st.integers(-(2**40), 2**40), mode=st.integers(0, 0o7777),
       xattrs=st.dictionaries(st.text(alphabet="abcdefgh.", min_size=1, max_size=20).map(lambda s: "user." + s),
                              st.binary(max_size=64), max_size=3),
       kind=st.sampled_from(["file", "dir", "symlink", "char", "fifo"]),
       link=names, dev=st.tuples(st.integers(0, 4095), st.integers(0, 2**20 - 1)))
def test_tar_writer_members_read_back_exactly(name, uid, gid, mtime, mode, xattrs, kind, link, dev):
    import io

    data = b"content" if kind == "file" else b""
    meta = Meta(kind, mode, uid, gid, mtime, len(data), 1, 1, dev if kind == "char" else (0, 0),
                link if kind == "symlink" else b"")
    path = b"./" + name
    blob = tarwriter.member(path + (b"/" if kind == "dir" else b""), meta, xattrs) + data
    blob += tarwriter.padding(len(data)) + tarwriter.END
    with tarfile.open(fileobj=io.BytesIO(blob), errors="surrogateescape") as tf:
        (m,) = tf.getmembers()
        assert m.name.encode("utf-8", "surrogateescape").rstrip(b"/") == path
        assert (m.uid, m.gid, m.mode) == (uid, gid, mode)
        assert round(m.mtime * 1e9) == pytest.approx(mtime, abs=1000)
        got = {k[13:]: v.encode("utf-8", "surrogateescape") for k, v in m.pax_headers.items()
               if k.startswith("SCHILY.xattr.")}
        assert got == xattrs
        if kind == "symlink":
            assert m.linkname.encode("utf-8", "surrogateescape") == link
        if kind == "char":
            assert (m.devmajor, m.devminor) == dev
        if kind == "file":
            assert tf.extractfile(m).read() == data
