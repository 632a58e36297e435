"""The wizard's steps, in order: a name and the screen for it. Screens ask the App to go to a
step by name (`app.go("mount")`); none imports another, so the flow is read here alone."""

from __future__ import annotations

from vm2c_tui.tui.screens.archive import ArchiveScreen
from vm2c_tui.tui.screens.build import BuildScreen
from vm2c_tui.tui.screens.mount import MountScreen
from vm2c_tui.tui.screens.partitions import PartitionsScreen
from vm2c_tui.tui.screens.source import SourceScreen

STEPS = {
    "source": SourceScreen,
    "partitions": PartitionsScreen,
    "mount": MountScreen,
    "archive": ArchiveScreen,
    "build": BuildScreen,
}
