"""What the operator chose for a conversion: the same whichever face asked."""

from __future__ import annotations

from dataclasses import dataclass, field

from vm2c_tui.errors import Vm2cError
from vm2c_tui.plan.presets import PRESETS
from vm2c_tui.plan.runplan import parse_mode
from vm2c_tui.source.ssh import SERVICE

RECORD = 1 << 20  # what tar writes at a time (--blocking-factor=2048): the rate limit's step


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
    limit_rate: int = 0  # bytes/s the archive may read at most (a busy host stays responsive); 0: no limit
    sudo: bool = False  # a machine over SSH: run tar there through sudo -n
    snapshot: str | None = None  # a VM's snapshot by name instead of its current state
    sparse: bool = False  # GNU sparse members: a tar to keep, not for Docker (no Dockerfile then)
    compress: str = ""  # a machine over SSH: zstd | gzip on the wire (the remote compresses, vm2c unpacks)
    stop_services: list[str] = field(default_factory=list)  # a machine over SSH: stopped while tar reads it
    run: str = "shell"  # how the image runs: system | service:NAME | shell (plan/runplan.py)

    def __post_init__(self) -> None:
        if self.limit_rate and self.limit_rate < RECORD:
            raise Vm2cError(f"--limit-rate {self.limit_rate}: at least 1M (a MiB a second: tar's record)")
        if self.compress not in ("", "zstd", "gzip"):
            raise Vm2cError(f"--compress {self.compress}: zstd or gzip")
        for name in self.stop_services:
            if not SERVICE.match(name):
                raise Vm2cError(f"--stop-services: {name!r} is not a service name")
        parse_mode(self.run)
        if self.preset not in PRESETS:
            raise Vm2cError(f"unknown preset '{self.preset}' (choose from {', '.join(PRESETS)})")
