"""Which init the guest boots with, and what it starts: systemd's `*.wants/` links of the default
target, SysV's rc2.d/rc3.d start links, OpenRC's default runlevel."""

from __future__ import annotations

import re

from vm2c_tui.inspect.guestpath import guest_target, link_text
from vm2c_tui.inspect.services.units import UNIT_PATH

SYSTEMD = ("/lib/systemd/systemd", "/usr/lib/systemd/systemd")


def init_system(guest) -> tuple[str, str]:
    """(systemd | sysvinit | openrc | busybox | none, the init's path)."""
    init = guest_target(guest, "/sbin/init") or guest_target(guest, "/usr/sbin/init")
    name = init.rsplit("/", 1)[-1]
    if name == "systemd" or (not init and any(guest.exists(p) for p in SYSTEMD)):
        return "systemd", init or next(p for p in SYSTEMD if guest.exists(p))
    if name == "openrc-init" or (init and any(guest.exists(p) for p in ("/sbin/openrc", "/usr/sbin/openrc"))):
        return "openrc", init  # Alpine's init is busybox's, and its inittab runs OpenRC
    if name == "busybox":
        return "busybox", init
    return ("sysvinit", init) if init else ("none", "")  # an init that is none of those: SysV's or alike


def systemd_enabled(guest) -> list[str]:
    """Services and sockets the default target pulls in (with multi-user's, which graphical
    includes), in the order found, each once."""
    default = guest_target(guest, "/etc/systemd/system/default.target").rsplit("/", 1)[-1] or "multi-user.target"
    targets = dict.fromkeys([default, "multi-user.target", "sockets.target"])
    found: dict[str, None] = {}
    for t in targets:
        for d in UNIT_PATH:
            for name in guest.listdir(f"{d}/{t}.wants", limit=500):
                if name.endswith((".service", ".socket")) and guest.exists(f"{d}/{t}.wants/{name}"):
                    found.setdefault(name)  # a link to /dev/null (masked) does not resolve as a unit
    return [n for n in found if not _masked(guest, n)]


def _masked(guest, name: str) -> bool:
    return link_text(guest, f"/etc/systemd/system/{name}") == "/dev/null"


def sysv_enabled(guest) -> list[str]:
    names: dict[str, None] = {}
    for level in ("/etc/rc2.d", "/etc/rc3.d"):
        for link in guest.listdir(level, limit=500):
            m = re.fullmatch(r"S\d\d(.+)", link)
            if m:
                names.setdefault(m.group(1))
    return list(names)


def openrc_enabled(guest) -> list[str]:
    return [n for n in guest.listdir("/etc/runlevels/default", limit=500) if not n.endswith("/")]
