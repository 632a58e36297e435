"""The wizard's path to a machine over SSH (issue 23): the address typed on the Source step,
the machine's filesystems shown, archived through ssh."""

from __future__ import annotations

import tarfile

from textual.widgets import Input, Static, Switch

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
        app.screen.query_one("#compress", Switch).value = True  # zstd on the wire: the remote has it
        await pilot.pause()
        assert app.state.options.compress == "zstd"
        assert any("--zstd" in line for line in app.command_lines())
        await _archive_and_quit(pilot, services=True)
    names = _names(app, tmp_path / "out")
    assert "./srv/site/index.html" in names and "./usr/bin/ping" in names


async def _archive_and_quit(pilot, services: bool = False) -> None:
    """From the Mount step: on to the Archive step, archive, quit; SERVICES: what the machine
    runs is in the Archive step's panel (read over SSH)."""
    await press_button(pilot, "#next")
    await tour.reach(pilot, "ArchiveScreen", "#start")
    await press_button(pilot, "#start")
    await wait_until(pilot, lambda: pilot.app.state.archive is not None, timeout=120)
    if services:
        panel = str(pilot.app.screen.query_one("#services", Static).render())
        assert "init systemd" in panel and "nginx.service :80" in panel, panel
    await pilot.press("q")


def _names(app, out) -> set[str]:
    assert app.return_code == 0
    with tarfile.open(out / "img.tar") as tar:
        return set(tar.getnames())


async def test_wizard_ssh_form_asks_about_an_unknown_host_key(remote_host, tmp_path, monkeypatch, no_leaks):
    """"A machine over SSH": host, user, port; an unknown host key is a question with its
    fingerprint, added to known_hosts only on yes; services to stop are asked about too; the
    preset chosen on the Mount step is the one the tar gets."""
    from textual.widgets import RadioButton

    known = tmp_path / "known_hosts"
    cfg = tmp_path / "config"
    cfg.write_text(remote_host.config.read_text().replace(str(remote_host.home / ".ssh/known_hosts"), str(known)))
    monkeypatch.setenv("VM2C_SSH_CONFIG", str(cfg))
    app = Vm2cApp(browse_root=str(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await tour.reach(pilot, "SourceScreen", "#ssh")
        await press_button(pilot, "#ssh")
        await tour.reach(pilot, "SshForm", "#ssh-host")
        for ident, value in (("host", "127.0.0.1"), ("user", "root"), ("port", str(remote_host.port))):
            app.screen.query_one(f"#ssh-{ident}", Input).value = value
        await press_button(pilot, "#connect")
        await tour.reach(pilot, "Confirm", "#yes")
        assert "SHA256:" in str(app.screen.query_one("#dialog > Static", Static).render())
        assert not known.exists()  # nothing written before the answer
        await pilot.press("y")
        await tour.reach(pilot, "MountScreen", "#next")  # composed last: #stop alone raced #outdir's mount (CI)
        assert f"[127.0.0.1]:{remote_host.port} ssh-" in known.read_text()
        app.screen.query_one("#stop", Input).value = "cron"
        app.screen.query_one("#outdir", Input).value = str(tmp_path / "out")
        await press_button(pilot, "#next")
        await tour.reach(pilot, "Confirm", "#no")
        assert "Stop cron on ssh://root@127.0.0.1" in str(app.screen.query_one("#dialog > Static", Static).render())
        await pilot.press("escape")  # no: stays on the Mount step, nothing stopped
        await tour.reach(pilot, "MountScreen", "#stop")
        app.screen.query_one("#stop", Input).value = ""
        minimal = next(b for b in app.screen.query(RadioButton) if b.name == "minimal")
        await wait_until(pilot, lambda: app.state.conversion is not None and app.state.conversion.prepared)
        minimal.value = True  # chosen after the estimate prepared the tree
        await pilot.pause(0.1)
        await _archive_and_quit(pilot)
    names = _names(app, tmp_path / "out")
    assert "./usr/bin/ping" in names and not any(n.startswith("./usr/share/doc/") for n in names)


async def test_wizard_shows_how_far_a_remote_disk_copy_is(remote_host, tmp_path, monkeypatch, no_leaks):
    """A disk image on a machine without qemu-nbd is copied to be read: the Partitions step's
    status line says how far (it said nothing for the copy's whole time), then shows its table."""
    from vm2c_tui.tui.screens.partitions import PartitionsScreen

    monkeypatch.setenv("VM2C_SSH_CONFIG", str(remote_host.config))
    said: list[str] = []
    shown = PartitionsScreen._status
    monkeypatch.setattr(PartitionsScreen, "_status", lambda self, msg: (said.append(msg), shown(self, msg)))
    app = Vm2cApp(browse_root=str(tmp_path))
    with remote_host.replaced("/usr/bin/qemu-nbd", None):
        async with app.run_test(size=(120, 40)) as pilot:
            await tour.reach(pilot, "SourceScreen", "#path")
            path = app.screen.query_one("#path", Input)
            path.value = remote_host.url + "/srv/images/" + remote_host.disk.name
            path.focus()
            await pilot.press("enter")  # checked (a remote image is opened later, like an OVA), then step 2
            await tour.reach(pilot, "PartitionsScreen", "DataTable")
            await wait_until(pilot, lambda: app.state.inspection is not None, timeout=120)
            assert app.state.inspection.root == "fs"
            await pilot.press("q")
    assert any(m.startswith(f"copying {remote_host.disk.name} from 127.0.0.1") and "% (" in m for m in said), said
    assert any(m.startswith(f"copied {remote_host.disk.name}") for m in said), said
