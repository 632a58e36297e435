"""What the operator chose for a conversion: the same whichever face asked."""

from __future__ import annotations

from dataclasses import dataclass, field

from vm2c_tui.errors import Vm2cError
from vm2c_tui.plan.presets import PRESETS


@dataclass
class Options:
    root: str | None = None
    use_fstab: bool = True
    disabled: set[str] = field(default_factory=set)
    preset: str = "container"
    excludes: list[str] = field(default_factory=list)
    sanitize: bool = True
    view: str | None = None
    engine: str | None = None  # auto | kernel | userspace (read/engine.py)
    snapshot: str | None = None  # a VM's snapshot by name instead of its current state
    sparse: bool = False  # GNU sparse members: a tar to keep, not for Docker (no Dockerfile then)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise Vm2cError(f"unknown preset '{self.preset}' (choose from {', '.join(PRESETS)})")
