"""Guest text stays inside the guest and on one line: the path resolver, LVM names, the smoke report."""

from __future__ import annotations

import os

import pytest

from vm2c_tui.errors import Vm2cError
from vm2c_tui.inspect import lvm
from vm2c_tui.inspect.guestpath import GuestRoot


def test_guest_root_resolver_unit(tmp_path):
    root = tmp_path / "guest"
    (root / "etc").mkdir(parents=True)
    (tmp_path / "outside").write_text("host file")
    (root / "etc" / "abs").symlink_to(str(tmp_path / "outside"))
    (root / "etc" / "up").symlink_to("../../../../outside")
    (root / "etc" / "loop1").symlink_to("loop2")
    (root / "etc" / "loop2").symlink_to("loop1")
    (root / "etc" / "real").write_text("inside")
    (root / "etc" / "rel").symlink_to("real")
    (root / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(root / "fifo")
    g = GuestRoot(str(root))
    assert g.read("/etc/abs") is None and g.read("/etc/up") is None
    assert g.read("/etc/loop1") is None
    assert g.read("/etc/rel") == b"inside"
    assert g.read("/fifo") is None  # would block a naive reader
    assert g.resolve("/../../etc/real") == str(root / "etc" / "real")
    big = root / "big"
    with open(big, "wb") as f:
        f.truncate(1 << 30)
    assert len(g.read("/big")) == 256 * 1024


def test_lvm_metadata_error_with_a_multiline_name_is_one_line():
    """Found by test_fuzz_lvm_metadata: a quoted name holding a newline, then a stray symbol."""
    with pytest.raises(Vm2cError) as info:
        lvm.parse_text('"vg\ndevice = " /')
    assert "\n" not in info.value.message and "after 'vg\\ndevice = '" in info.value.message


def test_guest_text_in_the_smoke_report_and_lv_names_is_escaped():
    """An os-release, a shell path, a daemon error and an LV name come from the guest (or
    about it): none may reach the terminal as control characters."""
    import io

    from vm2c_tui.cli.image import _print_result
    from vm2c_tui.image.daemon import ImageResult, Smoke
    from vm2c_tui.inspect.model import Inspection, Partition, Volume
    from vm2c_tui.text import rows

    res = ImageResult("sha256:" + "0" * 64, ["a/b:c"], 1, 1, "import")
    bad = "\x1b]0;owned\x07\x1b[2J"
    for smoke in (Smoke(True, f'PRETTY_NAME="x{bad}"\n', f"/bin/sh{bad}"), Smoke(False, "", "/bin/sh", f"err{bad}")):
        out = io.StringIO()
        _print_result(res, smoke, out)
        assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue() and "\\x1b" in out.getvalue()
    part = Partition("p1", 1 << 20, number=1, start=2048, sectors=2048, type="Linux LVM",
                     volumes=[Volume(f"vg/lv{bad}", 1 << 20, fstype="ext4")])
    insp = Inspection("/d.raw", "raw", "", 1 << 20, 1 << 20, "gpt", [part], None, [])
    assert not any("\x1b" in cell for _, cells in rows(insp) for cell in cells)
