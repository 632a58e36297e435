"""LVM2 on-disk metadata, read in user space.

No `vgchange -ay` (no device-mapper here) and no host LVM tools touching a
guest's VG (whose name may clash with the host's): we read the PV label
and the text metadata ourselves and turn each linear LV into byte ranges
of its PV(s). Every number from the disk is bounds-checked: a disk image
is data, never trusted.
"""

from __future__ import annotations

import itertools
import re
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from vm2c_tui.errors import Vm2cError

SECTOR = 512
MDA_MAGIC = b" LVM2 x[5A%r0N*>"
MAX_METADATA = 4 << 20


@dataclass
class PvLabel:
    uuid: str  # without dashes, as in the label
    mda_text: str


@dataclass
class Segment:
    pv_uuid: str
    offset: int  # bytes from the PV's first byte
    length: int


@dataclass
class LogicalVolume:
    vg: str
    name: str
    size: int
    segments: list[Segment] = field(default_factory=list)
    kind: str = "linear"  # linear | striped | thin | raid | snapshot | ...
    note: str = ""

    @property
    def id(self) -> str:
        return f"{self.vg}/{self.name}"


def read_pv(f: BinaryIO, base: int, size: int) -> PvLabel | None:
    """The PV label in the first 4 sectors of a partition at BASE, or None."""
    for sector in range(4):
        f.seek(base + sector * SECTOR)
        blk = f.read(SECTOR)
        if len(blk) < SECTOR or blk[:8] != b"LABELONE" or blk[24:32] != b"LVM2 001":
            continue
        (off,) = struct.unpack_from("<I", blk, 20)
        if not 32 <= off < SECTOR - 40:
            raise Vm2cError("LVM label is corrupt (header offset out of range)")
        hdr = blk[off:]
        uuid = hdr[:32].decode("ascii", "replace")
        pos = 40
        areas: list[list[tuple[int, int]]] = [[], []]
        for which in (0, 1):  # data areas, then metadata areas
            while True:
                if pos + 16 > len(hdr):
                    raise Vm2cError("LVM label is corrupt (area list overruns the sector)")
                a_off, a_size = struct.unpack_from("<QQ", hdr, pos)
                pos += 16
                if a_off == 0:
                    break
                areas[which].append((a_off, a_size))
        for mda_off, mda_size in areas[1]:
            text = _read_mda(f, base, size, mda_off, mda_size)
            if text:
                return PvLabel(uuid, text)
        return PvLabel(uuid, "")
    return None


def _read_mda(f: BinaryIO, base: int, size: int, off: int, mda_size: int) -> str:
    if off + mda_size > size or mda_size < SECTOR:
        raise Vm2cError("LVM metadata area lies outside its partition")
    f.seek(base + off)
    hdr = f.read(SECTOR)
    if hdr[4:20] != MDA_MAGIC:
        raise Vm2cError("LVM metadata area has a bad magic number")
    loc_off, loc_size = struct.unpack_from("<QQ", hdr, 40)
    if loc_off == 0 or loc_size == 0:
        return ""
    if loc_size > MAX_METADATA or loc_off >= mda_size or loc_size > mda_size:
        raise Vm2cError("LVM metadata location is out of range")
    first = min(loc_size, mda_size - loc_off)
    f.seek(base + off + loc_off)
    data = f.read(first)
    if first < loc_size:  # the metadata buffer is circular, after its 512-byte header
        f.seek(base + off + SECTOR)
        data += f.read(loc_size - first)
    return data.rstrip(b"\0").decode("utf-8", "replace")


# -- the text format -----------------------------------------------------------

_TOKEN = re.compile(r'\s*(?:#[^\n]*\n?\s*)*(?:("(?:[^"\\]|\\.)*")|([A-Za-z0-9_.+\-]+)|(.))', re.S)


# A VG of 1,000 LVs is about 40,000 tokens; a crafted 4 MiB area of one-digit list items is
# 3,000,000, which took 1.6 s to parse: past this many, the metadata is refused instead
MAX_TOKENS = 1_000_000


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) per token, at most MAX_TOKENS (finditer stops there; findall would not)."""
    out = []
    append = out.append
    for m in itertools.islice(_TOKEN.finditer(text), MAX_TOKENS + 1):
        s, word, ch = m.groups()
        if s is not None:
            body = s[1:-1]
            append(("str", re.sub(r"\\(.)", r"\1", body) if "\\" in body else body))
        elif word is not None:
            append(("word", word))
        elif ch and ch.strip():
            append(("sym", ch))
    if len(out) > MAX_TOKENS:
        raise Vm2cError(f"LVM metadata is unreadable (more than {MAX_TOKENS} tokens: corrupt or crafted)")
    return out


CLOSE, COMMA = ("sym", "]"), ("sym", ",")


def parse_text(text: str) -> dict:
    """LVM's config syntax: sections in braces, key = value, lists in brackets."""
    tokens = _tokens(text)
    pos = 0

    def value():
        nonlocal pos
        kind, v = tokens[pos]
        pos += 1
        if kind == "str":
            return v
        if kind == "word":
            return int(v) if (v[1:] if v[:1] == "-" else v).isdigit() else v
        if v == "[":
            out = []
            while (t := tokens[pos]) != CLOSE:
                if t == COMMA:
                    pos += 1
                    continue
                out.append(value())
            pos += 1
            return out
        raise ValueError(f"unexpected {v!r}")

    def section(depth: int) -> dict:
        nonlocal pos
        if depth > 16:
            raise ValueError("nesting too deep")
        out: dict = {}
        while pos < len(tokens) and tokens[pos] != ("sym", "}"):
            kind, name = tokens[pos]
            if kind not in ("word", "str"):
                raise ValueError(f"unexpected {name!r}")
            nxt = tokens[pos + 1]
            pos += 2
            if nxt == ("sym", "{"):
                out[name] = section(depth + 1)
                pos += 1
            elif nxt == ("sym", "="):
                out[name] = value()
            else:
                raise ValueError(f"unexpected {nxt[1]!r} after {name!r}")  # a quoted name may hold newlines
        return out

    try:
        return section(0)
    except (IndexError, ValueError, RecursionError) as exc:
        raise Vm2cError(f"LVM metadata is unreadable ({str(exc).replace(chr(10), ' ')})") from None


def logical_volumes(text: str) -> list[LogicalVolume]:
    """The LVs of the VG described by one PV's metadata text."""
    doc = parse_text(text)
    vgs = [(k, v) for k, v in doc.items() if isinstance(v, dict)]
    if not vgs:
        return []
    vg_name, vg = vgs[0]
    try:
        extent = _bounded(vg, "extent_size", 1, MAX_EXTENT_SECTORS, vg_name) * SECTOR
        pvs = {name: (str(pv["id"]).replace("-", ""), _bounded(pv, "pe_start", 0, MAX_SECTORS, vg_name) * SECTOR)
               for name, pv in vg.get("physical_volumes", {}).items()}
        out = []
        for name, lv in vg.get("logical_volumes", {}).items():
            out.append(_lv(vg_name, name, lv, extent, pvs))
    except (KeyError, TypeError, ValueError) as exc:
        raise Vm2cError(f"LVM metadata of VG {vg_name!r} is incomplete ({exc})") from None
    return out


# bounds for numbers read from metadata an image supplies: a real VG fits in 2^48 sectors (128 PiB)
MAX_SECTORS = 1 << 48
MAX_EXTENT_SECTORS = 1 << 32


def _bounded(d: dict, key: str, low: int, high: int, vg: str) -> int:
    value = int(d[key])
    if not low <= value <= high:
        raise Vm2cError(f"LVM metadata of VG {vg!r}: {key} {value} is out of range ({low}..{high}); "
                        "the metadata is corrupt or crafted")
    return value


def _lv(vg: str, name: str, lv: dict, extent: int, pvs: dict) -> LogicalVolume:
    status = lv.get("status", [])
    result = LogicalVolume(vg, name, 0)
    if "VISIBLE" not in status:
        result.kind = "hidden"
    for key in sorted((k for k in lv if k.startswith("segment") and isinstance(lv[k], dict)),
                      key=lambda k: int(k[7:] or 0)):
        seg = lv[key]
        count = _bounded(seg, "extent_count", 1, MAX_SECTORS // (extent // SECTOR), vg)
        result.size += count * extent
        stype = seg.get("type", "striped")
        stripes = seg.get("stripes", [])
        if stype != "striped" or int(seg.get("stripe_count", 1)) != 1 or len(stripes) != 2:
            result.kind = stype if stype != "striped" else "striped"
            result.note = f"{stype} segment: needs device-mapper"
            continue
        pv_uuid, pe_start = pvs[stripes[0]]
        first = int(stripes[1])
        if not 0 <= first <= MAX_SECTORS // (extent // SECTOR):
            raise Vm2cError(f"LVM metadata of VG {vg!r}: a segment starts at extent {first}, out of range")
        result.segments.append(Segment(pv_uuid, pe_start + first * extent, count * extent))
    return result
