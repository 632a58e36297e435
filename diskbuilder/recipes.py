"""The demo disk and the test fixtures: one builder, several layouts.

`build(name, dest_dir)` writes DEST/NAME.raw (and the other formats the
recipe asks for) and returns their paths. Trees are made in a temp dir.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from diskbuilder import build as b
from diskbuilder.layout import Disk, Fs, Lv, Part, Vg
from diskbuilder.tree import base_tree, freeze_mtimes, split_off, torture_tree


def _fstab(lines: list[str]) -> str:
    return "# <fs> <mountpoint> <type> <options> <dump> <pass>\n" + "\n".join(lines) + "\n"


def demo(tmp: Path) -> Disk:
    """GPT: EFI vfat, ext4 /boot, LVM PV with VG demo: root (ext4) and swap."""
    root, boot, efi = tmp / "root", tmp / "boot", tmp / "efi"
    fs_root = Fs("ext4", 96, "demo-root", root, "root")
    fs_boot = Fs("ext4", 32, "demo-boot", boot, "boot")
    fs_efi = Fs("vfat", 33, "demo-efi", efi, "EFI")
    fs_swap = Fs("swap", 16, "demo-swap", None, "swap")
    fstab = _fstab([
        f"UUID={fs_root.uuid} / ext4 errors=remount-ro 0 1",
        f"UUID={fs_boot.uuid} /boot ext4 defaults 0 2",
        f"UUID={fs_efi.uuid} /boot/efi vfat umask=0077 0 1",
        f"UUID={fs_swap.uuid} none swap sw 0 0",
        "proc /proc proc defaults 0 0",
    ])
    base_tree(root, fstab=fstab)
    split_off(root, "boot", boot)
    _kernel(boot)
    (boot / "efi").mkdir()
    (efi / "EFI/BOOT").mkdir(parents=True)
    (efi / "EFI/BOOT/BOOTX64.EFI").write_bytes(b"MZ" + bytes(4094))
    for t in (root, boot, efi):
        freeze_mtimes(t)
    return Disk("gpt", [
        Part(33, "efi", fs_efi),
        Part(32, "linux", fs_boot),
        Part(120, "lvm", Vg("demo", [Lv("root", fs_root), Lv("swap", fs_swap)])),
    ])


def full(tmp: Path) -> Disk:
    """Every tar case; /boot on a partition; root, /var, /home and swap as LVs."""
    root, boot, var, home, efi = (tmp / n for n in ("root", "boot", "var", "home", "efi"))
    fs_root = Fs("ext4", 180, "full-root", root, "root")
    fs_var = Fs("ext4", 24, "full-var", var, "var")
    fs_home = Fs("ext4", 16, "full-home", home, "home")
    fs_boot = Fs("ext4", 24, "full-boot", boot, "boot")
    fs_efi = Fs("vfat", 33, "full-efi", efi, "EFI")
    fstab = _fstab([
        f"UUID={fs_root.uuid} / ext4 defaults 0 1",
        f"UUID={fs_boot.uuid} /boot ext4 defaults 0 2",
        "LABEL=EFI /boot/efi vfat umask=0077 0 1",
        "/dev/fullvg/var /var ext4 defaults 0 2",
        "/dev/mapper/fullvg-home /home ext4 defaults 0 2",
        "/dev/fullvg/swap none swap sw 0 0",
        "server:/export /mnt/nfs nfs defaults 0 0",
        "tmpfs /tmp tmpfs defaults 0 0",
    ])
    base_tree(root, hostname="full", fstab=fstab)
    torture_tree(root)
    split_off(root, "boot", boot)
    split_off(root, "var", var)
    split_off(root, "home", home)
    _kernel(boot)
    (boot / "efi").mkdir()
    (efi / "EFI/debian").mkdir(parents=True)
    (efi / "EFI/debian/grubx64.efi").write_bytes(b"MZ" + bytes(1022))
    for t in (root, boot, var, home, efi):
        freeze_mtimes(t)
    return Disk("gpt", [
        Part(33, "efi", fs_efi),
        Part(24, "linux", fs_boot),
        Part(240, "lvm", Vg("fullvg", [Lv("root", fs_root), Lv("var", fs_var), Lv("home", fs_home),
                                       Lv("swap", Fs("swap", 8, "full-swap", None, "swap"))])),
    ])


def mbr(tmp: Path) -> Disk:
    """DOS table with logical partitions: ext4 /boot, xfs root, btrfs /home, swap."""
    root, boot, home = tmp / "root", tmp / "boot", tmp / "home"
    fs_root = Fs("xfs", 300, "mbr-root", root, "mbrroot")
    fs_boot = Fs("ext4", 16, "mbr-boot", boot, "boot")
    fs_home = Fs("btrfs", 120, "mbr-home", home, "home")
    fstab = _fstab([
        "LABEL=mbrroot / xfs defaults 0 1",
        "/dev/sda1 /boot ext4 defaults 0 2",
        f"UUID={fs_home.uuid} /home btrfs defaults 0 2",
        "/dev/sda7 none swap sw 0 0",
    ])
    base_tree(root, hostname="mbr", fstab=fstab)
    split_off(root, "boot", boot)
    split_off(root, "home", home)
    _kernel(boot)
    for t in (root, boot, home):
        freeze_mtimes(t)
    return Disk("dos", [
        Part(16, "linux", fs_boot),
        Part(0, "extended"),
        Part(300, "linux", fs_root, logical=True),
        Part(120, "linux", fs_home, logical=True),
        Part(8, "swap", Fs("swap", 8, "mbr-swap", None), logical=True),
    ])


def bare(tmp: Path) -> Disk:
    """A partition dump: one ext4 filesystem, no table."""
    root = tmp / "root"
    base_tree(root, hostname="bare", fstab=_fstab(["LABEL=bare / ext4 defaults 0 1"]))
    freeze_mtimes(root)
    return Disk("none", [Part(48, "linux", Fs("ext4", 48, "bare-root", root, "bare"))])


def btrfs_subvol(tmp: Path) -> Disk:
    """Ubuntu's btrfs layout: one filesystem, root in subvolume @, /home in @home."""
    root, home = tmp / "root", tmp / "home"
    fs = Fs("btrfs", 160, "subvol-fs", None, "ubuntu", subvols={"@": root, "@home": home})
    base_tree(root, hostname="subvol", fstab=_fstab([
        f"UUID={fs.uuid} / btrfs defaults,subvol=@ 0 1",
        f"UUID={fs.uuid} /home btrfs defaults,subvol=@home 0 2",
    ]))
    split_off(root, "home", home)
    for t in (root, home):
        freeze_mtimes(t)
    return Disk("gpt", [Part(160, "linux", fs)])


def extended(tmp: Path) -> Disk:
    """A root LV grown with lvextend after another LV was made: two segments on the PV, with a
    file whose blocks cross from one to the other. Common on VMs whose disks were grown."""
    root = tmp / "root"
    base_tree(root, hostname="extended", fstab=_fstab(["/dev/mapper/grownvg-root / ext4 defaults 0 1"]))
    big = root / "srv" / "across.bin"
    big.parent.mkdir(parents=True, exist_ok=True)
    big.write_bytes(bytes(range(256)) * (96 * 1024))  # 24 MiB: more than the first segment holds
    freeze_mtimes(root)
    fs_root = Fs("ext4", 48, "extended-root", root, "grownroot")
    return Disk("gpt", [Part(80, "lvm", Vg("grownvg", [Lv("root", fs_root, grow_mib=32),
                                                        Lv("data", Fs("ext4", 8, "extended-data", None, "data"))]))])


HOST_SECRET = "/tmp/vm2c-host-secret"  # a host path a hostile guest points its symlinks at


def hostile(tmp: Path) -> Disk:
    """A guest that tries to make vm2c read the host: see issue 6."""
    root = tmp / "root"
    base_tree(root, hostname="hostile", fstab="")
    (root / "etc/os-release").unlink()
    (root / "usr/lib/os-release").unlink()
    (root / "etc/os-release").symlink_to(HOST_SECRET)  # absolute: must resolve inside the guest
    (root / "usr/lib/os-release").symlink_to("../../../../../../.." + HOST_SECRET)
    (root / "etc/fstab").unlink()
    (root / "etc/fstab").symlink_to("fstab.loop")
    (root / "etc/fstab.loop").symlink_to("fstab")
    (root / "data").mkdir()
    shutil.rmtree(root / "var")
    (root / "var").symlink_to("/")  # a mount point that would land on the root
    (root / "\x1b[2Jcleared").write_text("escape sequence in a name\n")
    with open(root / "huge", "wb") as f:
        f.truncate(8 << 30)  # sparse, 8 GiB: previews must not read it whole
    freeze_mtimes(root)
    return Disk("none", [Part(64, "linux", Fs("ext4", 64, "hostile-root", root, "hostile"))])


def hostile_fstab(tmp: Path) -> Disk:
    """Like `hostile`, with a real fstab naming a /var that is a symlink to / and entries off the disk."""
    root, var = tmp / "root", tmp / "var"
    fs_var = Fs("ext4", 16, "hostfs-var", var, "hostvar")
    base_tree(root, hostname="hostile2", fstab=_fstab([
        "LABEL=hroot / ext4 defaults 0 1",
        "UUID=00000000-0000-0000-0000-000000000000 /data ext4 defaults 0 2",
        "LABEL=hostvar /var ext4 defaults 0 2",
        "/dev/sda9 /srv ext4 defaults 0 2",
    ]))
    shutil.rmtree(root / "var")
    (root / "var").symlink_to("/")
    var.mkdir()
    (var / "from-var-fs").write_text("x\n")
    for t in (root, var):
        freeze_mtimes(t)
    return Disk("gpt", [Part(48, "linux", Fs("ext4", 48, "hostfs-root", root, "hroot")),
                        Part(16, "linux", fs_var)])


RECIPES = {"extended": extended, "btrfs_subvol": btrfs_subvol, "demo": demo, "full": full, "mbr": mbr, "bare": bare, "hostile": hostile, "hostile_fstab": hostile_fstab}


def build(name: str, dest: Path, keep_trees: bool = False) -> Path:
    """Build recipe NAME as DEST/NAME.raw; with KEEP_TREES its source trees stay in
    DEST/NAME.trees/ (one directory per filesystem) for comparisons."""
    if keep_trees:
        trees = dest / f"{name}.trees"
        trees.mkdir(parents=True)
        return b.build_raw(RECIPES[name](trees), dest / f"{name}.raw")
    with tempfile.TemporaryDirectory(prefix="vm2c-tree-") as t:
        return b.build_raw(RECIPES[name](Path(t)), dest / f"{name}.raw")


def _kernel(boot: Path) -> None:
    (boot / "vmlinuz-6.1.0-demo").write_bytes(b"\x00kernel" * 4096)
    (boot / "initrd.img-6.1.0-demo").write_bytes(b"\x00initrd" * 4096)
    (boot / "grub").mkdir(exist_ok=True)
    (boot / "grub/grub.cfg").write_text("set timeout=0\n")
