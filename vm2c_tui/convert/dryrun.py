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
from vm2c_tui.host.pagecache import direct_io_pays
from vm2c_tui.host.run import ShellVar, shell_line
from vm2c_tui.plan.presets import SANITIZE, live_rules, rules
from vm2c_tui.read.kernel.assemble import mtools_cmd
from vm2c_tui.read.kernel.attach import available_methods, copy_cmd, losetup_cmd, nbd_cmd, nbdfuse_cmd, qsd_cmd
from vm2c_tui.read.kernel.mount import mount_cmd
from vm2c_tui.source.identify import identify

if TYPE_CHECKING:
    from vm2c_tui.convert.conversion import Conversion


def render_commands(conv: Conversion, outdir: str) -> list[str]:
    if conv.live:
        excl = rules(conv.options.preset, []) + (list(SANITIZE) if conv.options.sanitize else [])
        excl += live_rules(Path(conv.source), Path(outdir), conv.options.sanitize)
        spec = arc.TarSpec(Path(conv.source), excl, list(conv.options.excludes), one_file_system=True)
        return [shell_line(arc.tar_command(spec, f"{outdir}/img.tar"))]
    insp = conv.inspect()
    assert insp is not None
    plans = conv.plans or conv.plan()
    info_fmt = {"vhd": "vpc"}.get(insp.format, insp.format)
    method = conv.options.view or available_methods(identify(Path(conv.source)))[0][0]
    lines = [f"# vm2c {__version__}: {insp.source} ({insp.display_format}), root {plans[0].fs_id}, raw view: {method}"]
    if conv.engine == "userspace":
        lines.append("# vm2c reads this image in user space (no root, mount or tar process); "
                     "the equivalent with the kernel, as root:")
    work = "/tmp/vm2c-work"
    lines.append(shell_line(["mkdir", "-m", "0700", "-p", f"{work}/root"]))
    undo: list[str] = []
    raw: str = conv.source
    if method == "fuse":
        sock, view = f"{work}/nbd.sock", f"{work}/view"
        raw = f"{view}/raw"
        lines.append(f"# vm2c runs qemu inside bubblewrap, where only {os.path.dirname(os.path.abspath(conv.source))} "
                     "is visible (read-only), with no /dev and no network")
        lines.append(shell_line(qsd_cmd(conv.source, info_fmt, sock)) + " &")
        lines.append("QSD=$!")
        lines.append(f"until [ -S {shell_line([sock])} ]; do sleep 0.1; done")
        lines.append(shell_line(["mkdir", "-m", "0700", view]))
        lines.append(shell_line(nbdfuse_cmd(raw, sock, f"{work}/nbdfuse.pid")) + " &")
        lines.append(f"until [ -f {shell_line([work + '/nbdfuse.pid'])} ]; do sleep 0.1; done")
        undo.append('kill "$QSD"')
        undo.append(shell_line(["fusermount3", "-u", view]))
    elif method == "nbd":
        raw = "/dev/nbd0"
        lines.append(shell_line(nbd_cmd(conv.source, info_fmt, raw)))
        undo.append(shell_line(["qemu-nbd", "-d", raw]))
    elif method == "copy":
        raw = f"{work}/disk.raw"
        lines.append(shell_line(copy_cmd(conv.source, info_fmt, raw)))
        undo.append(shell_line(["rm", "-f", raw]))
    loops: dict[str, str] = {}
    for i, p in enumerate(plans, 1):
        if not p.enabled:
            continue
        target = f"{work}/root" + ("" if p.mountpoint == "/" else p.mountpoint)
        if p.via == "mount":
            if p.fs_id not in loops:  # one loop device per filesystem, as assemble() does
                loops[p.fs_id] = var = f"LOOP{i}"
                if p.extents:
                    lines += _joined_lv(var, raw, p.fs_id, p.extents)
                    undo.append(f'dmsetup remove "${var}" && losetup -d "${var}RAW"')
                else:
                    dio = method == "direct" and direct_io_pays(raw, p.offset, p.size)
                    lines.append(f"{var}=$({shell_line(losetup_cmd(raw, p.offset, p.size, dio))})")
                    undo.append(shell_line(["losetup", "-d", ShellVar(var)]))
            lines.append(shell_line(mount_cmd(ShellVar(loops[p.fs_id]), p.fstype, target, p.subvol)))
        else:
            stage = f"{work}/fat{i}"
            lines.append(shell_line(["mkdir", "-p", stage]))
            fat_image = raw
            if "@@" in raw:  # mtools would split the name there (assemble._mtools_copy)
                fat_image = f"{work}/fat{i}.image"
                lines.append(shell_line(["ln", "-s", raw, fat_image]))
            lines.append(shell_line(mtools_cmd(fat_image, p.offset, stage)))
            lines.append(shell_line(["mount", "--bind", stage, target]))
        undo.append(shell_line(["umount", target]))
    excl = rules(conv.options.preset, [p.mountpoint for p in plans]) + (list(SANITIZE) if conv.options.sanitize else [])
    if conv.options.sanitize:
        lines.append(f": > {work}/machine-id && " + shell_line(["mount", "--bind", f"{work}/machine-id",
                                                                 f"{work}/root/etc/machine-id"]))
        undo.append(shell_line(["umount", f"{work}/root/etc/machine-id"]))
    spec = arc.TarSpec(Path(f"{work}/root"), excl, list(conv.options.excludes))
    lines.append(shell_line(arc.tar_command(spec, f"{outdir}/img.tar")))
    lines.extend(reversed(undo))
    return lines


def _joined_lv(var: str, raw: str, fs_id: str, extents: list[tuple[int, int]]) -> list[str]:
    """An LV in pieces, joined by device-mapper where the machine has it (vm2c's own kernel
    route, without it, copies the pieces joined: joincopy.py): a linear table in 512-byte sectors."""
    name = "vm2c-" + fs_id.replace("/", "-")
    table, pos = [], 0
    for off, n in extents:
        table.append(f"{pos // 512} {n // 512} linear ${var}RAW {off // 512}")
        pos += n
    rows = " ".join('"' + t + '"' for t in table)  # double quotes: $LOOPnRAW must expand
    return [f"# {fs_id} is in {len(extents)} pieces on the disk; device-mapper joins them",
            f"{var}RAW=$({shell_line(['losetup', '-f', '--show', '-r', raw])})",
            f"printf '%s\\n' {rows} | dmsetup create --readonly {name}",
            f"{var}=/dev/mapper/{name}"]
