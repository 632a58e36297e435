"""The wizard driven by Pilot: the whole flow to a built image, and the UI staying live."""

from __future__ import annotations

import os
import tarfile

import pytest
from conftest import cramped_dockerd, docker_client, load_and_run
from textual.widgets import Input, Switch

from vm2c_tui.convert.dryrun import render_commands
from vm2c_tui.tui import tour
from vm2c_tui.tui.app import Vm2cApp
from vm2c_tui.tui.tour import press_button, wait_until
from vm2c_tui.tui.widgets.commands import CommandsPanel

click = press_button


async def start_slow_archive(pilot, src, out):
    """To the archive step held to 1 MiB/s (the --limit-rate option), started; returns the partial file."""
    await tour.to_archive(pilot, str(src), str(out))
    await click(pilot, "#start")
    partial = out / "img.tar.partial"
    await wait_until(pilot, lambda: partial.exists() or pilot.app.state.archive is not None)
    assert pilot.app.state.archive is None, "the throttled archive finished before it could be interrupted"
    return partial


async def test_whole_flow_to_a_running_image(disks, dockerd, tmp_path, no_leaks):
    src = disks.get("demo", "qcow2")
    app = Vm2cApp(browse_root=str(src.parent))
    async with app.run_test(size=(80, 24)) as pilot:
        await tour.to_archive(pilot, str(src), str(tmp_path / "out"))
        await click(pilot, "#start")
        await wait_until(pilot, lambda: app.state.archive is not None)
        assert (tmp_path / "out" / "img.tar").stat().st_size > 1 << 20
        assert app.state.conversion is None, "nothing stays mounted after the archive"
        await click(pilot, "#next")
        await tour.reach(pilot, "BuildScreen", "#tag")
        app.screen.query_one("#tag", Input).value = "vm2c-test/tui:flow"
        await click(pilot, "#build")
        await wait_until(pilot, lambda: app.state.smoke is not None, timeout=120)
        assert app.state.smoke.ok
        assert "vm2c-test/tui:flow" in app.state.image.tags
        await pilot.press("q")
    assert app.return_code == 0
    img = docker_client().images.get("vm2c-test/tui:flow")
    assert img.labels["org.vm2c.root"] == "demo/root"


async def test_build_step_refuses_an_image_the_daemon_cannot_hold(disks, tmp_path, monkeypatch, no_leaks):
    src = disks.get("demo")
    app = Vm2cApp(browse_root=str(src.parent))
    with cramped_dockerd(tmp_path) as host:
        monkeypatch.setenv("DOCKER_HOST", host)
        async with app.run_test(size=(80, 24)) as pilot:
            await tour.to_build(pilot, str(src), str(tmp_path / "out"), "vm2c-test/tui:cramped")
            await click(pilot, "#build")
            err = app.screen.query_one("#error")
            await wait_until(pilot, lambda: "Docker data root" in str(err.render()), timeout=60)
            assert "MiB free" in str(err.render()) and app.state.image is None
            assert not app.screen.query_one("#build").disabled, "the user can free space and try again"
            await pilot.press("q")


async def test_build_step_without_a_daemon_says_why_and_saves_a_loadable_archive(disks, dockerd, tmp_path,
                                                                                monkeypatch, no_leaks):
    """No daemon at DOCKER_HOST: Build says why in one line and offers the image archive,
    which Save writes without a daemon; the test's own daemon then loads and runs it."""
    src = disks.get("demo")
    app = Vm2cApp(browse_root=str(src.parent))
    with monkeypatch.context() as env:
        env.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
        async with app.run_test(size=(80, 24)) as pilot:
            await tour.to_build(pilot, str(src), str(tmp_path / "out"), "vm2c-test/tui:offline")
            save = app.screen.query_one("#save")
            assert save.disabled
            await click(pilot, "#build")
            err = app.screen.query_one("#error")
            await wait_until(pilot, lambda: "no Docker daemon answers" in str(err.render()), timeout=30)
            assert "(no socket there)" in str(err.render()) and "save an image archive" in str(err.render())
            assert not save.disabled and app.state.image is None
            await click(pilot, "#save")
            result = app.screen.query_one("#build-result")
            await wait_until(pilot, lambda: "load it with: docker load -i" in str(result.render()), timeout=60)
            await pilot.press("q")
    out = load_and_run(tmp_path / "out" / "image-archive.tar", "vm2c-test/tui:offline")
    assert b'PRETTY_NAME="Demo Linux 1.0 (vm2c)"' in out


async def test_wizard_archives_with_the_userspace_engine(disks, tmp_path, no_leaks):
    """The mount step's switch moves the conversion to the user-space engine (what a
    non-root operator gets by default): the commands panel says so, nothing is mounted."""
    src = disks.get("full", "vdi")
    app = Vm2cApp(browse_root=str(src.parent))
    async with app.run_test(size=(80, 24)) as pilot:
        await tour.to_mount(pilot, str(src), str(tmp_path / "out"))
        assert app.state.conversion.engine == "kernel"  # root: the kernel route by default
        switch = app.screen.query_one("#engine", Switch)
        assert not switch.value
        switch.value = True  # as a click would
        await wait_until(pilot, lambda: app.state.conversion is not None and app.state.conversion.engine ==
                         "userspace" and app.state.conversion.prepared is not None)
        assert "user-space engine" in str(app.screen.query_one("#read-with").render())
        assert any("user space" in line for line in render_commands(app.state.conversion, "OUT"))
        await click(pilot, "#next")
        await tour.reach(pilot, "ArchiveScreen", "#start")
        await click(pilot, "#start")
        await wait_until(pilot, lambda: app.state.archive is not None)
        assert app.state.archive.files > 100 and app.state.archive.prepared.tree.engine == "userspace"
        await pilot.press("q")
    with tarfile.open(tmp_path / "out" / "img.tar") as tf:
        assert tf.getmember("./srv/xattrs").pax_headers["SCHILY.xattr.user.comment"] == "kept by import"


async def test_wizard_reads_an_lv_in_pieces_in_user_space_or_through_a_joined_copy(disks, tmp_path, no_leaks):
    """A root LV grown with lvextend: the wizard reads it in user space by default (in place);
    the switch offers the kernel route, which says it copies the pieces joined first, and works."""
    src = disks.get("extended")
    app = Vm2cApp(browse_root=str(src.parent))
    async with app.run_test(size=(80, 24)) as pilot:
        await tour.to_mount(pilot, str(src), str(tmp_path / "out"))
        await wait_until(pilot, lambda: app.state.conversion is not None and app.state.conversion.prepared is not None)
        assert app.state.conversion.engine == "userspace"
        switch = app.screen.query_one("#engine", Switch)
        assert switch.value and not switch.disabled
        assert "user-space engine" in str(app.screen.query_one("#read-with").render())
        switch.value = False  # as a click would
        await wait_until(pilot, lambda: app.state.conversion is not None and app.state.conversion.engine ==
                         "kernel" and app.state.conversion.prepared is not None)
        line = str(app.screen.query_one("#read-with").render())
        assert "grownvg/root is in 2 pieces: first copied joined into TMPDIR" in line, line
        await click(pilot, "#next")
        await tour.reach(pilot, "ArchiveScreen", "#start")
        await click(pilot, "#start")
        await wait_until(pilot, lambda: app.state.archive is not None)
        assert app.state.archive.prepared.tree.engine == "kernel"
        await pilot.press("q")
    with tarfile.open(tmp_path / "out" / "img.tar") as tf:
        assert tf.getmember("./srv/across.bin").size == 24 << 20


async def test_commands_panel_answers_while_archive_runs_then_cancel(disks, tmp_path, monkeypatch, no_leaks):
    src = disks.get("full")
    app = Vm2cApp(browse_root=str(src.parent))
    app.state.options.limit_rate = 1 << 20
    async with app.run_test(size=(80, 24)) as pilot:
        partial = await start_slow_archive(pilot, src, tmp_path / "out")
        panel = app.screen.query_one(CommandsPanel)
        assert panel.has_class("hidden")
        await pilot.press("c")
        await pilot.pause(0.1)
        assert not panel.has_class("hidden")
        text = str(panel.query_one("#commands-text").render())
        assert "tar --create" in text and "losetup -f --show -r" in text
        assert app.archive_running()
        await click(pilot, "#cancel")
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.archive_running())
        assert not partial.exists()
        assert app.state.conversion is None
        assert "cancelled" in str(app.screen.query_one("#error").render())
        await pilot.press("q")
    assert app.return_code == 0


async def test_guest_text_is_escaped_and_errors_stay_on_screen(tmp_path):
    app = Vm2cApp(browse_root=str(tmp_path))
    bad = tmp_path / "not-a-disk[red].img"
    bad.write_bytes(os.urandom(8192))
    async with app.run_test(size=(80, 24)) as pilot:
        await tour.reach(pilot, "SourceScreen", "#path")
        path = app.screen.query_one("#path", Input)
        path.value = str(bad)
        path.focus()
        await pilot.press("enter")  # a path that identifies goes straight on to the partitions
        await tour.reach(pilot, "PartitionsScreen", "#error")
        err = app.screen.query_one("#error")
        await wait_until(pilot, lambda: not err.has_class("hidden"))
        assert "no partition table and no filesystem" in str(err.render())
        assert "[red]" in str(err.render())  # shown as text, not taken as markup
        await pilot.press("escape")
        assert type(app.screen).__name__ == "SourceScreen"
        await pilot.press("ctrl+q")  # focus is in the path input, where q is a letter
    assert app.return_code == 0




async def test_quit_during_archive_releases_everything(disks, tmp_path, monkeypatch, no_leaks):
    src = disks.get("demo", "vdi")
    app = Vm2cApp(browse_root=str(src.parent))
    app.state.options.limit_rate = 1 << 20
    async with app.run_test(size=(80, 24)) as pilot:
        partial = await start_slow_archive(pilot, src, tmp_path / "out")
        await pilot.press("q")
        await pilot.pause(0.5)
    assert app.return_code == 0
    assert not partial.exists() and app.state.conversion is None


async def test_the_build_steps_quit_button_quits(disks, tmp_path, no_leaks):
    """The button itself, not q: it once created the quit coroutine without awaiting it."""
    src = disks.get("demo")
    app = Vm2cApp(browse_root=str(src.parent))
    async with app.run_test(size=(80, 24)) as pilot:
        await tour.to_build(pilot, str(src), str(tmp_path / "out"), "vm2c-test/tui:quit")
        await press_button(pilot, "#quit")
        await wait_until(pilot, lambda: app.return_code is not None, timeout=30)
    assert app.return_code == 0


HELP_STEPS = [
    ("SourceScreen", "1 Source", lambda p, s, o: tour.choose_source(p, s)),
    ("PartitionsScreen", "2 Partitions", lambda p, s, o: tour.to_partitions(p, s)),
    ("MountScreen", "3 Mount", lambda p, s, o: tour.to_mount(p, s, o)),
    ("ArchiveScreen", "4 Archive", lambda p, s, o: tour.archive_done(p, s, o)),
    ("BuildScreen", "5 Build", lambda p, s, o: tour.to_build(p, s, o, "vm2c-test/tui:help")),
]


@pytest.mark.parametrize("screen,title,drive", HELP_STEPS, ids=[s[0] for s in HELP_STEPS])
async def test_help_on_every_step(disks, tmp_path, screen, title, drive, no_leaks):
    """F1 (and ? where no text field has focus) opens the step's own help, with what vm2c does
    behind it and the keys; esc returns to the same step with nothing changed."""
    from vm2c_tui.tui.screens.help import HelpScreen

    src = disks.get("demo")
    app = Vm2cApp(browse_root=str(src.parent))
    async with app.run_test(size=(80, 24)) as pilot:
        await drive(pilot, str(src), str(tmp_path / "out"))
        assert type(app.screen).__name__ == screen
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        box = app.screen.query_one("#help")
        body = str(app.screen.query_one("#help-body").render())
        assert box.border_title.startswith(title)
        assert "What vm2c does behind it" in body and "Keys everywhere" in body and "? or F1" in body
        await pilot.press("escape")
        await wait_until(pilot, lambda: type(app.screen).__name__ == screen)
        if screen != "SourceScreen":  # there the path field has focus and takes '?' as text
            await pilot.press("question_mark")
            await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
            await pilot.press("escape")
            await wait_until(pilot, lambda: type(app.screen).__name__ == screen)
        await pilot.press("ctrl+q")


def _forward_shown(app) -> bool:
    """The footer's forward key: ctrl+n, described as Next, on this step."""
    return any(b.binding.key == "ctrl+n" and b.binding.description == "Next" for b in app.screen.active_bindings.values())


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_source_to_build_with_keys_only(disks, dockerd, tmp_path, size, no_leaks):
    """#21: typed path and Enter, then ctrl+n on every step; no clicks, no focusing by id."""
    from textual.widgets import Checkbox, DataTable

    src = str(disks.get("demo", "qcow2"))
    app = Vm2cApp(browse_root=str(tmp_path))
    app.state.output_dir = tmp_path / "out"
    app.state.tag = f"vm2c-test/keys:{size[0]}"
    async with app.run_test(size=size) as pilot:
        await tour.reach(pilot, "SourceScreen", "#path")
        assert _forward_shown(app)
        await pilot.press(*src, "enter")  # focus starts in the path field
        await tour.reach(pilot, "PartitionsScreen", "DataTable")
        await wait_until(pilot, lambda: app.screen.query_one(DataTable).row_count > 0)
        assert isinstance(app.focused, DataTable) and _forward_shown(app)
        labels = [str(c.label).strip() for c in app.screen.query_one(DataTable).columns.values()]
        assert labels[-2:] == ["Label", "OS"] and ("Start" in labels) == (size[0] >= 110)
        await pilot.press("ctrl+n")
        await tour.reach(pilot, "MountScreen", "#outdir")
        await wait_until(pilot, lambda: app.state.conversion is not None and app.state.conversion.prepared)
        assert isinstance(app.focused, Checkbox) and _forward_shown(app)  # focus on the first choice
        kept = set(app.state.options.disabled)
        await pilot.press("ctrl+n")
        assert app.state.options.disabled == kept  # going on changed no choice
        await tour.reach(pilot, "ArchiveScreen", "#start")
        assert _forward_shown(app)
        await pilot.press("ctrl+n")  # starts the archive
        await wait_until(pilot, lambda: app.state.archive is not None, timeout=180)
        bar, whole = app.screen.query_one("#progress Bar"), app.screen.query_one("#progress")
        assert bar.region.y == whole.region.y and bar.region.width > size[0] // 2  # the bar is in sight
        await pilot.press("ctrl+n")
        await tour.reach(pilot, "BuildScreen", "#tag")
        assert _forward_shown(app)
        await pilot.press("ctrl+n")  # builds the image
        await wait_until(pilot, lambda: app.state.smoke is not None, timeout=180)
        assert app.state.smoke.ok, app.state.smoke.error
        await pilot.press("ctrl+q")
    assert app.return_code == 0


async def test_the_palette_offers_each_steps_actions_and_themes_still(disks, tmp_path):
    src = disks.get("demo", "qcow2")
    app = Vm2cApp(browse_root=str(src.parent))
    async with app.run_test(size=(80, 24)) as pilot:
        await tour.to_partitions(pilot, str(src))
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Next step", "Back", "Commands panel", "Help for this step", "Use as root"} <= titles
        assert any("theme" in t.lower() for t in titles)  # Textual's own stay
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Next step")
        command.callback()
        await tour.reach(pilot, "MountScreen", "#outdir")
        await wait_until(pilot, lambda: app.state.conversion is not None and app.state.conversion.prepared)
        await pilot.press("ctrl+q")
    assert app.return_code == 0


@pytest.mark.parametrize("engine", ["kernel", "userspace"])
async def test_the_explorer_leaves_a_directory_out_of_the_archive(disks, tmp_path, engine, no_leaks):
    """#21 item 5: on the Mount step, e sizes the assembled tree; x on a directory adds an
    --exclude rule that the commands panel shows and the archive honours."""
    from textual.widgets import DataTable

    src = disks.get("demo", "qcow2")
    app = Vm2cApp(browse_root=str(src.parent), engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await tour.to_mount(pilot, str(src), str(tmp_path / "out"))
        assert app.state.conversion.prepared.tree.engine == engine
        await pilot.press("e")
        await tour.reach(pilot, "ExploreScreen", "#sizes")
        table = app.screen.query_one("#sizes", DataTable)
        await wait_until(pilot, lambda: table.row_count > 3)
        sizes = [e[1] for e in app.screen.entries]
        assert sizes == sorted(sizes, reverse=True)  # biggest first
        names = [e[0] for e in app.screen.entries]
        while names[table.cursor_row] != "usr":
            await pilot.press("down")
        await pilot.press("enter")  # into /usr
        await wait_until(pilot, lambda: app.screen.path == "/usr")
        await pilot.press("backspace")
        await wait_until(pilot, lambda: app.screen.path == "/")
        names = [e[0] for e in app.screen.entries]
        while names[table.cursor_row] != "srv":
            await pilot.press("down")
        await pilot.press("x")
        assert app.state.options.excludes == ["./srv"]
        await pilot.press("escape")
        await tour.reach(pilot, "MountScreen", "#outdir")
        await pilot.press("c")
        await pilot.pause(0.2)
        assert "--exclude=./srv" in str(app.screen.query_one(CommandsPanel).query_one("#commands-text").render())
        await wait_until(pilot, lambda: app.state.conversion is not None and app.state.conversion.prepared
                         and app.state.prepared_for == app.state.options_key())
        await pilot.press("ctrl+n")
        await tour.reach(pilot, "ArchiveScreen", "#start")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: app.state.archive is not None, timeout=120)
        await pilot.press("ctrl+q")
    with tarfile.open(tmp_path / "out" / "img.tar") as tf:
        names = tf.getnames()
    assert "./usr/bin" in names or any(n.startswith("./usr/") for n in names)
    assert not any(n == "./srv" or n.startswith("./srv/") for n in names)
