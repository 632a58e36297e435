"""A conversion as shell commands: `vm2c archive --dry-run` and the wizard's commands panel.

Built from the same command builders the services run (losetup_cmd, mount_cmd,
tar_command ...), so what is shown is what runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from vm2c_tui import __version__
from vm2c_tui.archive import gnutar as arc
from vm2c_tui.host.daemon import nbdfuse_cmd
from vm2c_tui.host.run import shell_line
from vm2c_tui.plan.mounts import mount_steps
from vm2c_tui.plan.presets import SANITIZE, live_rules, rules
from vm2c_tui.read.kernel import steps
from vm2c_tui.read.kernel.assemble import mtools_cmd
from vm2c_tui.read.kernel.attach import (
    RawView,
    Views,
    available_methods,
    copy_cmd,
    nbd_cmd,
    qsd_cmd,
)
from vm2c_tui.source.identify import identify

if TYPE_CHECKING:
    from vm2c_tui.convert.conversion import Conversion


WORK = "/tmp/vm2c-work"


def render_commands(conv: Conversion, outdir: str) -> list[str]:
    return _archive_lines(conv, outdir) + run_lines(conv, outdir)


def run_lines(conv: Conversion, outdir: str) -> list[str]:
    """--run system|service:NAME: the image steps and the `docker run` line. Ports, volumes and
    the init come from the guest, which a dry run does not read: the plan made so far, or the
    flags of a systemd guest."""
    from vm2c_tui.image.compose import default_tag
    from vm2c_tui.image.dockerfile import image_commands
    from vm2c_tui.plan.runplan import RunPlan

    mode = conv.options.run
    if mode == "shell":
        return []
    plan = conv.run_plan() if conv.prepared else RunPlan(mode, [], init="systemd" if mode == "system" else "")
    head = [f"# --run {mode}: {outdir}/run holds the run layer read from the guest"
            + ("" if conv.prepared else " (ports and volumes too, shown once the guest is read)")]
    return head + image_commands(outdir, default_tag(conv.source), "import", "/bin/sh", {}, plan)


def _archive_lines(conv: Conversion, outdir: str) -> list[str]:
    if conv.remote is not None:
        from vm2c_tui.convert.remote import render

        return render(conv, outdir)
    if conv.live:
        excl = rules(conv.options.preset, []) + (list(SANITIZE) if conv.options.sanitize else [])
        excl += live_rules(Path(conv.source), Path(outdir), conv.options.sanitize)
        spec = arc.TarSpec(Path(conv.source), excl, list(conv.options.excludes), one_file_system=True,
                           limit_rate=conv.options.limit_rate)
        return [shell_line(arc.tar_command(spec, f"{outdir}/img.tar"))]
    insp = conv.inspect()
    assert insp is not None
    plans = conv.plans or conv.plan()
    infos = [identify(Path(d), conv.machine.disk_snapshot) for d in conv.disks]
    methods = [conv.options.view or available_methods(i)[0][0] for i in infos]
    method = methods[0]
    lines = [f"# vm2c {__version__}: {insp.source} ({insp.display_format}), root {plans[0].fs_id}, raw view: {method}"]
    if conv.engine == "userspace":
        lines.append("# vm2c reads this image in user space (no root, mount or tar process); "
                     "the equivalent with the kernel, as root:")
    lines.append(shell_line(["mkdir", "-m", "0700", "-p", f"{WORK}/root"]))
    undo: list[str] = []
    raws = [_raw_view(i, m, lines, undo, n) for n, (i, m) in enumerate(zip(infos, methods))]
    _mounts(plans, Views.of([RawView(r, m, "") for r, m in zip(raws, methods)], [i.virtual_size for i in infos]),
            lines, undo)
    excl = rules(conv.options.preset, [p.mountpoint for p in plans]) + (list(SANITIZE) if conv.options.sanitize else [])
    if conv.options.sanitize:
        lines.append(f": > {WORK}/machine-id && " + shell_line(["mount", "--bind", f"{WORK}/machine-id",
                                                                 f"{WORK}/root/etc/machine-id"]))
        undo.append(shell_line(["umount", f"{WORK}/root/etc/machine-id"]))
    spec = arc.TarSpec(Path(f"{WORK}/root"), excl, list(conv.options.excludes), limit_rate=conv.options.limit_rate)
    lines.append(shell_line(arc.tar_command(spec, f"{outdir}/img.tar")))
    lines.extend(reversed(undo))
    return lines


def _raw_view(info, method: str, lines: list[str], undo: list[str], n: int = 0) -> str:
    """The lines that give a read-only raw view of INFO's image by METHOD; returns the view's path.
    N: which of a VM's disks (the second and later get numbered names)."""
    source, fmt, tag = str(info.path), info.format, str(n + 1) if n else ""
    if method == "fuse":
        sock, view = f"{WORK}/nbd{tag}.sock", f"{WORK}/view{tag}"
        lines.append(f"# vm2c runs qemu inside bubblewrap, where only {os.path.dirname(os.path.abspath(source))} "
                     "is visible (read-only), with no /dev and no network")
        lines.append(shell_line(qsd_cmd(source, fmt, sock)) + " &")
        lines.append(f"QSD{tag}=$!")
        lines.append(f"until [ -S {shell_line([sock])} ]; do sleep 0.1; done")
        lines.append(shell_line(["mkdir", "-m", "0700", view]))
        lines.append(shell_line(nbdfuse_cmd(f"{view}/raw", sock, f"{WORK}/nbdfuse{tag}.pid")) + " &")
        lines.append(f"until [ -f {shell_line([f'{WORK}/nbdfuse{tag}.pid'])} ]; do sleep 0.1; done")
        undo.append(f'kill "$QSD{tag}"')
        undo.append(shell_line(["fusermount3", "-u", view]))
        return f"{view}/raw"
    if method == "nbd":
        lines.append(shell_line(nbd_cmd(source, fmt, f"/dev/nbd{n}")))
        undo.append(shell_line(["qemu-nbd", "-d", f"/dev/nbd{n}"]))
        return f"/dev/nbd{n}"
    if method in ("copy", "flatten"):
        raw = f"{WORK}/disk{tag}.raw"
        lines.append(shell_line(copy_cmd(source, fmt, raw, info.at_snapshot)) if method == "copy" else
                     f"# vm2c's own VDI reader copies {shell_line([source])} with its parents (a differencing "
                     f"VDI chain, which qemu refuses) to {raw}")
        undo.append(shell_line(["rm", "-f", raw]))
        return raw
    return source


def _mounts(plans, views: Views, lines: list[str], undo: list[str]) -> None:
    """The mount plan's steps (plan.mounts.mount_steps, which assemble() runs): a loop device per
    filesystem, each mount, and for FAT a copy made with mtools and bound in place."""
    for step in mount_steps(plans):
        p, var = step.plan, step.device
        target = steps.target_of(f"{WORK}/root", step)
        if step.action == "attach" and p.extents:
            pieces = views.pieces(p.extents)
            lines += _joined_lv(var, pieces, p.fs_id)
            loops = " ".join(f'"${var}RAW{j}"' for j in range(len({r for r, _, _ in pieces})))
            undo.append(f'dmsetup remove "${var}" && losetup -d {loops}')
        elif step.action in ("attach", "mount"):  # the records assemble() runs (read/kernel/steps.py)
            cmd = steps.attach(step, *views.locate(p.offset)) if step.action == "attach" else \
                steps.mount(step, f"{WORK}/root")
            lines.append(f"{var}=$({shell_line(cmd.argv)})" if cmd.sets else shell_line(cmd.argv))
            undo.append(shell_line(cmd.undo))
        else:
            lines.extend(_fat_copy(var.removeprefix("FAT"), *views.locate(p.offset), target))
            undo.append(shell_line(["umount", target]))


def _fat_copy(i: int, raw: str, offset: int, target: str) -> list[str]:
    stage = f"{WORK}/fat{i}"
    out = [shell_line(["mkdir", "-p", stage])]
    fat_image = raw
    if "@@" in raw:  # mtools would split the name there (assemble._mtools_copy)
        fat_image = f"{WORK}/fat{i}.image"
        out.append(shell_line(["ln", "-s", raw, fat_image]))
    out.append(shell_line(mtools_cmd(fat_image, offset, stage)))
    out.append(shell_line(["mount", "--bind", stage, target]))
    return out


def _joined_lv(var: str, pieces: list[tuple[str, int, int]], fs_id: str) -> list[str]:
    """An LV in pieces (on one disk or several), joined by device-mapper where the machine has
    it (vm2c's own kernel route, without it, copies the pieces joined: joincopy.py): a linear
    table in 512-byte sectors over a loop device per disk."""
    name = "vm2c-" + fs_id.replace("/", "-")
    raws = list(dict.fromkeys(r for r, _, _ in pieces))
    table, pos = [], 0
    for raw, off, n in pieces:
        table.append(f"{pos // 512} {n // 512} linear ${var}RAW{raws.index(raw)} {off // 512}")
        pos += n
    rows = " ".join('"' + t + '"' for t in table)  # double quotes: $LOOPnRAWj must expand
    where = "on the disk" if len(raws) == 1 else f"on {len(raws)} disks"
    return [f"# {fs_id} is in {len(pieces)} pieces {where}; device-mapper joins them",
            *[f"{var}RAW{j}=$({shell_line(['losetup', '-f', '--show', '-r', raw])})" for j, raw in enumerate(raws)],
            f"printf '%s\\n' {rows} | dmsetup create --readonly {name}",
            f"{var}=/dev/mapper/{name}"]
