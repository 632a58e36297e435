"""Drive the wizard step by step (screenshots, snapshot tests, trainers' demos)."""

from __future__ import annotations

import asyncio

from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input


async def wait_until(pilot: Pilot, cond, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise TimeoutError(f"the wizard did not reach {cond}{_shown_error(pilot)}")
        await pilot.pause(0.05)


def _shown_error(pilot: Pilot) -> str:
    """What the screen says went wrong, for a timeout's message."""
    errors = [w for w in pilot.app.screen.query("#error") if not w.has_class("hidden")]
    return f" (on {type(pilot.app.screen).__name__}{': ' + str(errors[0].render()) if errors else ''})"


async def press_button(pilot: Pilot, selector: str) -> None:
    button = pilot.app.screen.query_one(selector, Button)
    await wait_until(pilot, lambda: not button.disabled)
    button.press()
    await pilot.pause(0.05)


def on(pilot: Pilot, name: str):
    return lambda: type(pilot.app.screen).__name__ == name


async def reach(pilot: Pilot, name: str, selector: str) -> None:
    """Wait for screen NAME to be active and composed (SELECTOR is in it), then for the app to go
    idle: the widgets composed after SELECTOR may still be mounting when it appears."""
    await wait_until(pilot, lambda: on(pilot, name)() and bool(pilot.app.screen.query(selector)))
    await pilot.pause()


async def choose_source(pilot: Pilot, source: str) -> None:
    app = pilot.app
    await reach(pilot, "SourceScreen", "#path")
    path = app.screen.query_one("#path", Input)
    path.value = source
    app.screen.check(source)  # as the file tree's pick does; Enter in the field would go on to step 2
    await wait_until(pilot, lambda: app.state.info is not None)
    await pilot.pause(0.2)


async def to_partitions(pilot: Pilot, source: str) -> None:
    await choose_source(pilot, source)
    await press_button(pilot, "#next")
    await reach(pilot, "PartitionsScreen", "DataTable")
    table = pilot.app.screen.query_one(DataTable)
    await wait_until(pilot, lambda: table.row_count > 0)
    await pilot.pause(0.2)


async def to_mount(pilot: Pilot, source: str, outdir: str) -> None:
    await to_partitions(pilot, source)
    await press_button(pilot, "#next")
    await reach(pilot, "MountScreen", "#outdir")
    pilot.app.screen.query_one("#outdir", Input).value = outdir
    state = pilot.app.state
    await wait_until(pilot, lambda: state.conversion is not None and state.conversion.prepared is not None)
    await pilot.pause(0.3)


async def to_explore(pilot: Pilot, source: str, outdir: str) -> None:
    """The Mount step's disk-usage explorer, sized."""
    await to_mount(pilot, source, outdir)
    await pilot.press("e")
    await reach(pilot, "ExploreScreen", "#sizes")
    table = pilot.app.screen.query_one("#sizes", DataTable)
    await wait_until(pilot, lambda: table.row_count > 0)
    await pilot.pause(0.2)


async def to_archive(pilot: Pilot, source: str, outdir: str) -> None:
    await to_mount(pilot, source, outdir)
    await press_button(pilot, "#next")
    await reach(pilot, "ArchiveScreen", "#start")
    await pilot.pause(0.2)


async def archive_done(pilot: Pilot, source: str, outdir: str) -> None:
    await to_archive(pilot, source, outdir)
    await press_button(pilot, "#start")
    nxt = pilot.app.screen.query_one("#next", Button)
    await wait_until(pilot, lambda: not nxt.disabled)
    await pilot.pause(0.3)


async def to_build(pilot: Pilot, source: str, outdir: str, tag: str) -> None:
    await archive_done(pilot, source, outdir)
    await press_button(pilot, "#next")
    await reach(pilot, "BuildScreen", "#tag")
    pilot.app.screen.query_one("#tag", Input).value = tag
    await pilot.pause(0.2)


async def build_done(pilot: Pilot, source: str, outdir: str, tag: str) -> None:
    await to_build(pilot, source, outdir, tag)
    await press_button(pilot, "#build")
    build = pilot.app.screen.query_one("#build", Button)
    await wait_until(pilot, lambda: pilot.app.state.smoke is not None and not build.disabled, timeout=180)
    await pilot.pause(0.3)
