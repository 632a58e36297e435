"""A running machine over SSH as a conversion's third engine: GNU tar with the same flags,
presets, sanitising and .wh.* handling as locally, run on the remote, its stream read back
through ssh. One walk from the root: the contents of every mount that is not archived (kernel
pseudo filesystems, tmpfs, network shares, bind mounts) are excluded by name, so each archived
filesystem is in the tar once. (--one-file-system with a member per mount would put each mount
point's directory in twice, which Docker refuses: "duplicates of file paths".)"""

from __future__ import annotations

from pathlib import Path

from vm2c_tui.archive import gnutar
from vm2c_tui.archive.trees import RemoteTree
from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.run import which
from vm2c_tui.inspect.guestinfo import GuestFacts
from vm2c_tui.inspect.remote import RemoteInspection, used_bytes
from vm2c_tui.plan.mounts import MountPlan
from vm2c_tui.plan.presets import SANITIZE, Rule, live_rules, rules

NOTE = ("a running machine: its archived filesystems are read as they are now; files that change while tar "
        "runs may be inconsistent: stop the services that write first")


def plans(insp: RemoteInspection) -> list[MountPlan]:
    """The archived mounts as the conversion's plan, the root first."""
    found = sorted(insp.archived, key=lambda m: (m.mountpoint != "/", m.mountpoint))
    return [MountPlan(m.device, m.mountpoint, m.fstype, 0, m.size, "ssh") for m in found]


def spec_for(insp: RemoteInspection, options) -> gnutar.TarSpec:
    mps = [m.mountpoint for m in insp.archived]
    excl = rules(options.preset, mps) + (list(SANITIZE) if options.sanitize else [])
    excl += live_rules(Path("/"), None, options.sanitize)  # machine-id left out, as on a live system
    excl += [Rule(f".{_glob_escape(m.mountpoint)}/*", f"{m.mountpoint}: {m.why}") for m in insp.mounts
             if not m.archived and m.mountpoint != "/"]
    if options.compress and options.compress not in insp.compressors:
        raise Vm2cError(f"{insp.source}: --compress {options.compress}: the remote has no {options.compress} "
                        f"(it has {', '.join(insp.compressors) or 'neither zstd nor gzip'})")
    if options.compress and not which(options.compress):
        raise Vm2cError(f"--compress {options.compress}: {options.compress} is not installed here to unpack the "
                        f"stream (apt-get install {options.compress})")
    return gnutar.TarSpec(Path("/"), excl, list(options.excludes), limit_rate=options.limit_rate,
                          compress=options.compress)


def _glob_escape(path: str) -> str:
    """A mount point as a literal in a GNU tar wildcard."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in path)


class RemoteEngine:
    def prepare(self, req):
        from vm2c_tui.convert.engines import Assembled

        insp: RemoteInspection = req.remote_inspection
        tree = RemoteTree(spec_for(insp, req.options), req.remote, req.session, stop=list(req.options.stop_services))
        sanitized = ["/etc/ssh/ssh_host_* left out", "/etc/machine-id left out"] if req.options.sanitize else []
        facts = GuestFacts(insp.os, [], False, False, [], insp.shells)
        stop = req.options.stop_services
        notes = [f"{', '.join(stop)} stopped while tar reads, started again after"] if stop else [NOTE]
        return Assembled(tree, plans(insp), used_bytes(insp), 0, sanitized, [*insp.warnings, *notes], facts)


def render(conv, outdir: str) -> list[str]:
    """The dry-run: the exact ssh line, its remote tar quoted word by word."""
    from vm2c_tui.host.run import shell_line

    insp = conv.inspect()
    spec = spec_for(insp, conv.options)
    cmd = gnutar.tar_command(spec, "-")
    ssh = conv.remote.argv([cmd[0], "--verbose", *cmd[1:]])
    stop = conv.options.stop_services  # one by one, as RemoteTree.quiesced stops them; started again the last first
    before = [shell_line(conv.remote.argv(conv.remote.services_command("stop", [n]))) for n in stop]
    after = [shell_line(conv.remote.argv(conv.remote.services_command("start", stop[::-1])))] if stop else []
    return [f"# vm2c: {insp.source} ({insp.os.pretty_name if insp.os else 'unknown OS'}), archiving "
            + ", ".join(m.mountpoint for m in insp.archived) + "; nothing is written on the remote",
            *before, shell_line(ssh) + (f" | {spec.compress} -dc" if spec.compress else "") + " > "
            + shell_line([f"{outdir}/img.tar"]), *after]
