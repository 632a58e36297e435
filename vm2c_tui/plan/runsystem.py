"""`--run system`: the guest's own init as PID 1. For systemd, what a container changes: the
stop signal systemd halts on, `container=docker`, the units that make no sense without the VM's
hardware masked, a machine-id of each container's own, and the SSH host keys sanitising left
out made at first boot (without them ssh.service fails)."""

from __future__ import annotations

import json

from vm2c_tui.inspect.services import KEYGEN, GuestServices
from vm2c_tui.plan.runplan import DEFAULT_PATH, RunFile, RunPlan

UNITS = "/etc/systemd/system"
HOSTKEYS = "vm2c-ssh-hostkeys.service"


def hostkeys_unit(keygen: str) -> str:
    return "\n".join([
        "# vm2c: the image holds no SSH host keys (sanitised); each container makes its own",
        "[Unit]", "Description=SSH host keys for this container", "Before=ssh.service sshd.service",
        "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key",
        "[Service]", "Type=oneshot", f"ExecStart={keygen} -A",
        "[Install]", "WantedBy=multi-user.target", ""])


def _sshd(guest: GuestServices) -> bool:
    return any(s.name.split(".")[0] in ("ssh", "sshd") for s in guest.services)


def plan(guest: GuestServices, sanitized: bool) -> RunPlan:
    config = [f"ENV PATH={DEFAULT_PATH}"]
    if guest.init != "systemd":  # by its name: busybox is init only when called so
        return RunPlan("system", [*config, 'CMD ["/sbin/init"]'], init=guest.init,
                       notes=[f"{guest.init} init as PID 1: the smoke test sees it keep running, not what it "
                              f"starts (systemd's boot is checked unit by unit)"])
    init = guest.init_path or "/sbin/init"
    p = RunPlan("system", [*config, "ENV container=docker", "STOPSIGNAL SIGRTMIN+3", f"CMD {json.dumps([init])}"],
                init="systemd")
    for name in guest.masks:
        where = "/etc/systemd/system-generators" if name.endswith("-generator") else UNITS
        p.files.append(RunFile(f"{where}/{name}", link="/dev/null"))
    if guest.masks:
        p.notes.append(f"masked for a container: {', '.join(guest.masks)}")
    p.files.append(RunFile("/etc/machine-id"))  # empty: systemd gives each container its own
    p.notes.append("/etc/machine-id empty: each container gets its own")
    services = [s for s in guest.services if s.name.endswith(".service")]
    if _sshd(guest) and sanitized:
        p.files += [RunFile(f"{UNITS}/{HOSTKEYS}", hostkeys_unit(guest.keygen or KEYGEN[0])),
                    RunFile(f"{UNITS}/multi-user.target.wants/{HOSTKEYS}", link=f"{UNITS}/{HOSTKEYS}")]
        p.notes.append("SSH host keys made at each container's first boot (left out of the image)")
    p.active = [s.name for s in services if s.type != "oneshot"]  # a oneshot is inactive once done
    p.ports = sorted({port for s in guest.services for port in s.ports})
    p.volumes = [d for d, _, _ in guest.data_dirs]
    return p
