"""Partition tables through sfdisk, type names as cfdisk shows them."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.confine import Sandbox
from vm2c_tui.host.run import run, which

EXTENDED = {"5", "f", "85"}


@dataclass
class RawPartition:
    number: int
    start: int  # sectors
    sectors: int
    type_code: str
    partuuid: str
    name: str


# libfdisk's names for the common types, for machines without sfdisk (the user-space engine)
COMMON = {
    "gpt": {"c12a7328-f81f-11d2-ba4b-00a0c93ec93b": "EFI System", "21686148-6449-6e6f-744e-656564454649": "BIOS boot",
            "0fc63daf-8483-4772-8e79-3d69d8477de4": "Linux filesystem", "e6d6d379-f507-44c2-a23c-238f2a3df928":
            "Linux LVM", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": "Linux swap",
            "4f68bce3-e8cd-4db1-96e7-fbcaf984b709": "Linux root (x86-64)",
            "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7": "Microsoft basic data",
            "a19d880f-05fc-4d3b-a006-743f0f84911e": "Linux RAID"},
    "dos": {"5": "Extended", "7": "HPFS/NTFS/exFAT", "b": "W95 FAT32", "c": "W95 FAT32 (LBA)", "f": "W95 Ext'd (LBA)",
            "82": "Linux swap / Solaris", "83": "Linux", "85": "Linux extended", "8e": "Linux LVM", "ee": "GPT",
            "ef": "EFI (FAT-12/16/32)", "fd": "Linux raid autodetect"},
}


@functools.cache
def type_names(label: str) -> dict[str, str]:
    """libfdisk's own names (the ones cfdisk shows), from `sfdisk -T`."""
    if not which("sfdisk"):
        return COMMON.get(label, {})
    out = run(["sfdisk", "--label", label, "-T"], check=False).stdout.decode(errors="replace")
    names = {}
    for line in out.splitlines()[2:]:
        m = re.match(r"\s*([0-9A-Fa-f-]+)\s+(.+)", line)
        if m:
            names[m.group(1).lower()] = m.group(2).strip()
    return names


def type_name(label: str, code: str) -> str:
    return type_names(label).get(code.lower(), f"unknown ({code})")


def read_table(raw: str, disk_size: int, warnings: list[str] | None = None) -> tuple[str, list[RawPartition]]:
    """('gpt'|'dos'|'none', partitions); a corrupt table raises Vm2cError."""
    proc = run(["sfdisk", "--json", raw], check=False, timeout=30, sandbox=Sandbox.for_file(raw))
    err = proc.stderr.decode(errors="replace").strip()
    if proc.returncode != 0:
        if "does not contain a recognized partition table" in err or not err:
            return "none", []
        raise Vm2cError(f"partition table is unreadable ({err.splitlines()[-1]})")
    try:
        table = json.loads(proc.stdout)["partitiontable"]
    except (ValueError, KeyError):
        raise Vm2cError("partition table is unreadable (sfdisk gave no table)") from None
    label = table.get("label", "none")
    if "primary GPT table is corrupt" in err and warnings is not None:
        warnings.append("the primary GPT is corrupt; its backup copy at the end of the disk was used")
    pts = table.get("partitions", [])
    if label == "dos" and pts and all(str(p.get("type", "")).lower() == "ee" for p in pts):
        raise Vm2cError("partition table is corrupt: a GPT protective MBR, but neither the primary "
                        "nor the backup GPT is valid")
    if label not in ("gpt", "dos"):
        raise Vm2cError(f"unsupported partition table type '{label}'")
    disk_id = str(table.get("id", "")).lower().removeprefix("0x")
    parts = []
    sectors = disk_size // 512
    for p in table.get("partitions", []):
        m = re.search(r"(\d+)$", p.get("node", ""))
        number = int(m.group(1)) if m else len(parts) + 1
        start, size = int(p["start"]), int(p["size"])
        if start <= 0 or size <= 0 or start + size > sectors:
            raise Vm2cError(f"partition table is corrupt: partition {number} "
                            f"(sectors {start}-{start + size - 1}) lies outside the {sectors}-sector disk")
        partuuid = p.get("uuid", "").lower() or (f"{disk_id}-{number:02x}" if disk_id else "")
        parts.append(RawPartition(number, start, size, str(p.get("type", "")), partuuid, p.get("name", "")))
    return label, parts
