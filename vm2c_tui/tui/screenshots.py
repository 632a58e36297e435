"""python -m vm2c_tui.tui.screenshots DEMO_DISK OUT_DIR: one SVG per wizard step (80x24)."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from vm2c_tui.tui import tour
from vm2c_tui.tui.app import Vm2cApp

STEPS = [
    ("1-source", lambda p, s, o: tour.choose_source(p, s)),
    ("2-partitions", lambda p, s, o: tour.to_partitions(p, s)),
    ("3-mount", lambda p, s, o: tour.to_mount(p, s, o)),
    ("3b-explore", lambda p, s, o: tour.to_explore(p, s, o)),
    ("4-archive", lambda p, s, o: tour.archive_done(p, s, o)),
    ("5-build", lambda p, s, o: tour.build_done(p, s, o, "vm2c/demo:latest")),
]


async def shoot(disk: Path, out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="vm2c-shots-"))
    try:
        stage = work / "disks"
        stage.mkdir()
        src = stage / disk.name
        shutil.copy(disk, src)
        for name, drive in STEPS:
            app = Vm2cApp(browse_root=str(stage))
            async with app.run_test(size=(80, 24)) as pilot:
                await drive(pilot, str(src), str(work / "out"))
                app.save_screenshot(str(out / f"{name}.svg"))
                await pilot.press("ctrl+q")
            shutil.rmtree(work / "out", ignore_errors=True)
            print(out / f"{name}.svg")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(shoot(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()))
