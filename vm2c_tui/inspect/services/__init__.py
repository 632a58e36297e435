"""What the guest runs (issue 24), read from its tree through the GuestRoot interface, so the
kernel engine's mounts and the user-space readers give the same answer: the init system, the
services it starts (systemd units with what a container needs of them), the ports their
configuration declares, the data directories that should outlive a container."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vm2c_tui.inspect.services import init, ports, units

DATA_DIRS = ("/srv", "/home", "/var/www", "/opt")
# Units a system container does without: consoles, devices, the VM's disks, the network and the
# clock (Docker gives those), masked in system mode where the guest has them.
CONTAINERLESS = ("getty@.service", "serial-getty@.service", "console-getty.service", "autovt@.service",
                 "systemd-udevd.service", "systemd-udev-trigger.service", "systemd-udev-settle.service",
                 "systemd-remount-fs.service", "systemd-fsck-root.service", "systemd-fsck@.service",
                 "systemd-networkd.service", "systemd-networkd-wait-online.service", "NetworkManager.service",
                 "NetworkManager-wait-online.service", "networking.service", "systemd-resolved.service",
                 "systemd-timesyncd.service", "chrony.service", "ntp.service",
                 "systemd-modules-load.service", "kmod-static-nodes.service")
KEYGEN = ("/usr/bin/ssh-keygen", "/bin/ssh-keygen")  # makes the SSH host keys sanitising left out
SETPRIV = ("/usr/bin/setpriv", "/bin/setpriv")  # util-linux: drops to a unit's User= and execs, as systemd
TOOLS = (*KEYGEN, *SETPRIV)  # what a run mode may call at the start
GENERATORS = ("/lib/systemd/system-generators/systemd-fstab-generator",
              "/usr/lib/systemd/system-generators/systemd-fstab-generator")


@dataclass
class Service:
    name: str  # nginx.service, ssh.socket; a SysV/OpenRC script's name
    manager: str  # systemd | sysv | openrc
    unit: str = ""  # the unit file read
    exec_start: list[str] = field(default_factory=list)
    exec_start_pre: list[str] = field(default_factory=list)
    type: str = ""
    user: str = ""
    group: str = ""
    working_directory: str = ""
    environment: list[str] = field(default_factory=list)
    environment_files: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    ports_from: str = ""  # the configuration that declares them
    runtime_directory: list[str] = field(default_factory=list)  # under /run, made by systemd before the start

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in ("name", "manager", "unit", "exec_start", "exec_start_pre", "type",
                                              "user", "group", "working_directory", "environment",
                                              "environment_files", "ports", "ports_from",
                                              "runtime_directory")}


@dataclass
class GuestServices:
    init: str  # systemd | sysvinit | openrc | busybox | none
    init_path: str
    services: list[Service]
    data_dirs: list[tuple[str, int, str]]  # (path, bytes, why)
    masks: list[str] = field(default_factory=list)  # CONTAINERLESS units (and the fstab generator) it has
    tools: list[str] = field(default_factory=list)  # the TOOLS it holds

    @property
    def keygen(self) -> str:
        """The guest's ssh-keygen ("" when it has none)."""
        return next((k for k in KEYGEN if k in self.tools), "")

    @property
    def setpriv(self) -> str:
        """The guest's setpriv ("" when it has none)."""
        return next((k for k in SETPRIV if k in self.tools), "")

    @property
    def run_modes(self) -> list[str]:
        """system (the guest's init as PID 1), service:NAME (one unit's ExecStart), shell."""
        modes = ["system"] if self.init != "none" else []
        modes += [f"service:{s.name.rsplit('.', 1)[0]}" for s in self.services  # a oneshot ends: no service
                  if s.exec_start and s.type != "oneshot" and s.name.endswith(".service")]
        return [*modes, "shell"]

    def to_json(self) -> dict:
        return {"init": self.init, "init_path": self.init_path or None,
                "services": [s.to_json() for s in self.services],
                "data_dirs": [{"path": p, "bytes": b, "why": w} for p, b, w in self.data_dirs],
                "run_modes": self.run_modes, "masks": self.masks}


def _systemd(guest, name: str) -> Service:
    found = units.find(guest, name)
    path, keys = found if found else ("", {})
    one = lambda k: (keys.get(k) or [""])[-1]  # noqa: E731
    s = Service(name, "systemd", path, keys.get("ExecStart", []), keys.get("ExecStartPre", []), one("Type"),
                one("User"), one("Group"), one("WorkingDirectory"), keys.get("Environment", []),
                keys.get("EnvironmentFile", []))
    s.runtime_directory = " ".join(keys.get("RuntimeDirectory", [])).split()
    s.ports, s.ports_from = ports.declared(guest, name.rsplit(".", 1)[0].split("@")[0], keys.get("ListenStream", []),
                                           s.exec_start)
    return s


def read_services(guest, size_of: Callable[[str], int] = lambda p: 0) -> GuestServices:
    """GUEST: a GuestRoot-like view of the assembled root; SIZE_OF(path): bytes under a guest path."""
    kind, path = init.init_system(guest)
    if kind == "systemd":
        found = [_systemd(guest, n) for n in init.systemd_enabled(guest)]
    else:
        names = init.openrc_enabled(guest) if kind == "openrc" else init.sysv_enabled(guest) if kind == "sysvinit" \
            else []
        found = []
        for n in names:
            s = Service(n, "openrc" if kind == "openrc" else "sysv", f"/etc/init.d/{n}")
            s.ports, s.ports_from = ports.declared(guest, n, [])
            found.append(s)
    masks = [n for n in CONTAINERLESS if units.find(guest, n)] if kind == "systemd" else []
    if kind == "systemd" and any(map(guest.exists, GENERATORS)):
        masks.append("systemd-fstab-generator")  # the VM's disks as .mount/.swap units: absent here
    return GuestServices(kind, path, found, _data_dirs(guest, found, size_of), masks,
                         [t for t in TOOLS if guest.exists(t)])


def _data_dirs(guest, found: list[Service], size_of) -> list[tuple[str, int, str]]:
    want: dict[str, str] = {d: "site data" if d != "/home" else "users' homes" for d in DATA_DIRS}
    for s in found:
        base = s.name.rsplit(".", 1)[0].split("@")[0]
        if base in ports.DATA:
            want[ports.DATA[base]] = f"{base}'s data"
        want.setdefault(f"/var/lib/{base}", f"{base}'s state")
    out = []
    for d, why in want.items():
        if guest.listdir(d):  # present and not empty
            out.append((d, size_of(d), why))
    return out
