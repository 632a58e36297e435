"""How Linux's vfat presents a FAT filesystem: owner and mode of every entry, from the
mount options, as fs/fat/inode.c computes them (fat_make_mode, fat_fill_inode, fat_read_root).

FAT stores no owners or modes, so both engines (the mtools copy and the user-space reader)
ask this module, and the archive shows what the guest saw with its fstab's options:
- a file starts from rwxrwxrwx (with `showexec`, rw-rw-rw- unless its 8.3 extension is
  EXE, BAT or COM), a directory from rwxrwxrwx;
- the read-only attribute takes the write bits away from a file, and from a directory only
  with `rodir`;
- then `fmask` (files) or `dmask` (directories) is taken away; `umask` sets both; the last
  option given wins, as the kernel parses them in order; without any, the mounting process's
  umask applies: 022 at boot;
- `uid` and `gid` own every entry (default 0: fstab is mounted by root).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vm2c_tui.errors import Vm2cError

EXECUTABLE = ("EXE", "BAT", "COM")
BOOT_UMASK = 0o022


@dataclass(frozen=True)
class VfatOptions:
    uid: int = 0
    gid: int = 0
    fmask: int = BOOT_UMASK
    dmask: int = BOOT_UMASK
    showexec: bool = False
    rodir: bool = False

    @classmethod
    def parse(cls, options: str, where: str = "vfat") -> VfatOptions:
        """From fstab's option field; a value the kernel would refuse is one line."""
        v = {}
        for opt in filter(None, options.split(",")):
            key, _, value = opt.partition("=")
            if key in ("umask", "fmask", "dmask"):
                if not re.fullmatch(r"[0-7]{1,4}", value):
                    raise Vm2cError(f"{where}: fstab option {_shown(opt)} is not an octal mask "
                                    "(the kernel would refuse this mount)")
                for k in (("fmask", "dmask") if key == "umask" else (key,)):
                    v[k] = int(value, 8) & 0o777
            elif key in ("uid", "gid"):
                if not re.fullmatch(r"[0-9]{1,10}", value) or int(value) > 0xFFFFFFFE:
                    raise Vm2cError(f"{where}: fstab option {_shown(opt)} is not a numeric id "
                                    "(the kernel would refuse this mount)")
                v[key] = int(value)
            elif key in ("showexec", "rodir") and not value:
                v[key] = True
        return cls(**v)

    def mode(self, is_dir: bool, read_only: bool = False, short_ext: str = "") -> int:
        """The permission bits the kernel shows (no file type bits)."""
        if is_dir:
            base = 0o777 & ~0o222 if read_only and self.rodir else 0o777
            return base & ~self.dmask
        base = 0o666 if self.showexec and short_ext.upper() not in EXECUTABLE else 0o777
        if read_only:
            base &= ~0o222
        return base & ~self.fmask


def short_extension(long_name: str) -> str:
    """The 8.3 extension Linux and Windows derive from a long name when they make its short
    name: the part after the last dot, its first three characters, upper case (the kernel
    route has only the long names mcopy wrote; the user-space reader has the real short name)."""
    base, dot, ext = long_name.lstrip(".").rpartition(".")
    return re.sub(r"[^0-9A-Z!#$%&'()@^_`{}~-]", "_", ext.replace(" ", "").upper())[:3] if dot and base else ""


def _shown(opt: str) -> str:
    return repr(opt[:60])
