"""The wizard with VMs (issue 22): the Source step shows a VM's disks and snapshot tree, a
stale base is flagged in red, and the archive is the VM's current state."""

from __future__ import annotations

import tarfile

import vmfixtures
from conftest import CACHE
from textual.widgets import Static

from diskbuilder import builder_key
from vm2c_tui.tui import tour
from vm2c_tui.tui.app import Vm2cApp
from vm2c_tui.tui.tour import press_button, wait_until


def _text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def test_source_step_shows_the_vm_and_flags_a_stale_base(disks, tmp_path, no_leaks):
    vm = vmfixtures.virtualbox(disks, CACHE / builder_key())
    app = Vm2cApp(browse_root=str(vm["vbox"].parent))
    async with app.run_test(size=(120, 40)) as pilot:
        await tour.choose_source(pilot, str(vm["base"]))
        holder = app.screen.query_one("#holder", Static)
        await wait_until(pilot, lambda: not holder.has_class("hidden"))
        assert "newer images depend on it" in _text(app, "#holder")
        assert "red" in str(holder.render().spans[0].style)  # in red, like a running VM
        app.state.info = None
        await tour.choose_source(pilot, str(vm["vbox"]))
        info = _text(app, "#info")
        assert "vbvm (vbox)" in info and "before upgrade" in info and "current state made from it" in info
        assert vm["current"].name in info
        await wait_until(pilot, lambda: holder.has_class("hidden"))
        await press_button(pilot, "#next")
        await tour.reach(pilot, "PartitionsScreen", "DataTable")
        await pilot.press("q")
    assert app.return_code == 0


async def test_vm_archive_from_the_wizard_is_the_current_state(disks, tmp_path, no_leaks):
    vm = vmfixtures.virtualbox(disks, CACHE / builder_key())
    app = Vm2cApp(browse_root=str(vm["vbox"].parent))
    async with app.run_test(size=(80, 24)) as pilot:
        await tour.archive_done(pilot, str(vm["vbox"].parent), str(tmp_path / "out"))
        await pilot.press("q")
    assert app.return_code == 0
    with tarfile.open(tmp_path / "out" / "img.tar") as tar:
        names = set(tar.getnames())
    assert "./" + vmfixtures.AFTER_FILE in names and "./" + vmfixtures.GONE_FILE not in names


async def test_ova_is_shown_then_unpacked_for_the_partitions(disks, tmp_path, no_leaks):
    ova = vmfixtures.ova(disks, CACHE / builder_key())
    app = Vm2cApp(browse_root=str(ova["ova"].parent))
    async with app.run_test(size=(120, 40)) as pilot:
        await tour.reach(pilot, "SourceScreen", "#path")
        app.screen.check(str(ova["ova"]))
        await wait_until(pilot, lambda: "(ova)" in _text(app, "#info"))
        assert "ovavm-disk1.vmdk" in _text(app, "#info")  # the member, not yet unpacked
        await press_button(pilot, "#next")
        await tour.reach(pilot, "PartitionsScreen", "DataTable")
        await wait_until(pilot, lambda: app.state.inspection is not None)
        assert app.state.inspection.root == "demo/root"
        await pilot.press("q")
    assert app.return_code == 0
