"""How Linux's vfat shows a FAT filesystem: owner and mode rules, refusals, short extensions."""

from __future__ import annotations

import pytest

from vm2c_tui.errors import Vm2cError
from vm2c_tui.read.vfat import VfatOptions, short_extension

# options -> modes of: a plain file, an .EXE, a read-only file, a directory, a read-only directory;
# written down from Documentation/filesystems/vfat.rst and fs/fat/inode.c (fat_make_mode)
RULES = [
    ("", 0o755, 0o755, 0o555, 0o755, 0o755),  # the boot umask, 022
    ("umask=0077", 0o700, 0o700, 0o500, 0o700, 0o700),
    ("umask=0", 0o777, 0o777, 0o555, 0o777, 0o777),
    ("fmask=0133,dmask=0022", 0o644, 0o644, 0o444, 0o755, 0o755),
    ("umask=0077,fmask=0022", 0o755, 0o755, 0o555, 0o700, 0o700),  # the last option wins
    ("fmask=0022,umask=0077", 0o700, 0o700, 0o500, 0o700, 0o700),
    ("showexec", 0o644, 0o755, 0o444, 0o755, 0o755),
    ("showexec,umask=0", 0o666, 0o777, 0o444, 0o777, 0o777),
    ("rodir,umask=0", 0o777, 0o777, 0o555, 0o777, 0o555),
    ("defaults,noatime,errors=remount-ro,umask=0077", 0o700, 0o700, 0o500, 0o700, 0o700),
]


@pytest.mark.parametrize("options,plain,exe,ro,d,rod", RULES)
def test_the_kernels_rules(options, plain, exe, ro, d, rod):
    o = VfatOptions.parse(options)
    assert o.mode(False, short_ext="TXT") == plain
    assert o.mode(False, short_ext="EXE") == exe and o.mode(False, short_ext="bat") == exe
    assert o.mode(False, read_only=True, short_ext="TXT") == ro
    assert o.mode(True) == d and o.mode(True, read_only=True) == rod
    assert (o.uid, o.gid) == (0, 0)


def test_owners_and_refusals():
    assert (VfatOptions.parse("uid=1000,gid=100").uid, VfatOptions.parse("uid=1000,gid=100").gid) == (1000, 100)
    for bad in ("umask=zz", "fmask=0999", "dmask=", "uid=-1", "gid=root", "uid=99999999999"):
        with pytest.raises(Vm2cError) as exc:
            VfatOptions.parse(bad, "p1 at /boot/efi")
        assert "\n" not in exc.value.message and "kernel would refuse" in exc.value.message


@pytest.mark.parametrize("name,ext", [("setup.exe", "EXE"), ("a.executable", "EXE"), ("noext", ""),
                                      (".bashrc", ""), ("x.tar.gz", "GZ"), ("RUN.BAT", "BAT"), ("odd.c m", "CM")])
def test_short_extension(name, ext):
    assert short_extension(name) == ext
