"""A snapshot per wizard step at 80x24 and at 120x40 (pytest-textual-snapshot), on the demo disk
at a fixed path."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vm2c_tui.tui import tour
from vm2c_tui.tui.app import Vm2cApp

SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
STAGE = Path("/tmp/vm2c-snapshots")  # fixed, so the paths on screen are the same every run


@pytest.fixture(scope="module")
def stage(disks):
    shutil.rmtree(STAGE, ignore_errors=True)
    (STAGE / "disks").mkdir(parents=True)
    shutil.copy(disks.get("demo", "qcow2"), STAGE / "disks" / "demo.qcow2")
    out = STAGE / "out"
    out.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "vm2c-snap", out], check=True)  # stable free space
    yield STAGE
    subprocess.run(["umount", out], check=True)
    shutil.rmtree(STAGE, ignore_errors=True)


def _app(stage) -> Vm2cApp:
    return Vm2cApp(browse_root=str(stage / "disks"))


def _src(stage) -> str:
    return str(stage / "disks" / "demo.qcow2")


@SIZES
def test_step1_source(snap_compare, stage, size):
    async def run_before(pilot):
        await tour.choose_source(pilot, _src(stage))
    assert snap_compare(_app(stage), run_before=run_before, terminal_size=size)


@SIZES
def test_step2_partitions(snap_compare, stage, size):
    async def run_before(pilot):
        await tour.to_partitions(pilot, _src(stage))
    assert snap_compare(_app(stage), run_before=run_before, terminal_size=size)


@SIZES
def test_step3_mount(snap_compare, stage, size):
    async def run_before(pilot):
        await tour.to_mount(pilot, _src(stage), str(stage / "out"))
    assert snap_compare(_app(stage), run_before=run_before, terminal_size=size)


@SIZES
def test_step4_archive_ready(snap_compare, stage, size):
    async def run_before(pilot):
        await tour.to_archive(pilot, _src(stage), str(stage / "out"))
    assert snap_compare(_app(stage), run_before=run_before, terminal_size=size)


@SIZES
def test_step5_build_form(snap_compare, stage, dockerd, size):
    async def run_before(pilot):
        await tour.to_build(pilot, _src(stage), str(stage / "out"), "vm2c/demo:snapshot")
        await pilot.press("c")  # with the commands panel open
        await pilot.pause(0.2)
    assert snap_compare(_app(stage), run_before=run_before, terminal_size=size)
