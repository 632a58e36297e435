"""The wizard's path to a machine over SSH (issue 23): the address typed on the Source step,
the machine's filesystems shown, archived through ssh."""

from __future__ import annotations

import tarfile

from textual.widgets import Input, Static

from vm2c_tui.tui import tour
from vm2c_tui.tui.app import Vm2cApp
from vm2c_tui.tui.tour import press_button, wait_until


async def test_wizard_archives_a_machine_over_ssh(remote_host, tmp_path, monkeypatch, no_leaks):
    monkeypatch.setenv("VM2C_SSH_CONFIG", str(remote_host.config))  # what vm2c --ssh-config sets
    app = Vm2cApp(browse_root=str(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await tour.reach(pilot, "SourceScreen", "#path")
        path = app.screen.query_one("#path", Input)
        path.value = remote_host.url
        path.focus()
        await pilot.press("enter")  # checked, then on to the Mount step (no partitions on a live machine)
        await tour.reach(pilot, "MountScreen", "#outdir")
        line = app.screen.query_one("#root-line", Static)
        await wait_until(pilot, lambda: "/srv" in str(line.render()))
        assert "nothing is written" in str(line.render())
        app.screen.query_one("#outdir", Input).value = str(tmp_path / "out")
        await press_button(pilot, "#next")
        await tour.reach(pilot, "ArchiveScreen", "#start")
        await press_button(pilot, "#start")
        await wait_until(pilot, lambda: app.state.archive is not None, timeout=120)
        await pilot.press("q")
    assert app.return_code == 0
    with tarfile.open(tmp_path / "out" / "img.tar") as tar:
        names = set(tar.getnames())
    assert "./srv/site/index.html" in names and "./usr/bin/ping" in names
