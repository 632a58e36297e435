"""The mount plan and what is left out, from an Inspection made by hand: no disk needed."""

from __future__ import annotations

import pytest

from vm2c_tui.errors import Vm2cError
from vm2c_tui.inspect.guestinfo import parse_fstab
from vm2c_tui.inspect.model import Inspection, Partition, Volume
from vm2c_tui.inspect.resolve import resolve_fstab
from vm2c_tui.plan.excludes import Filters
from vm2c_tui.plan.mounts import plan_mounts
from vm2c_tui.plan.presets import rules

FSTAB = b"""# a guest's fstab
UUID=root-uuid  /          ext4  defaults          0 1
LABEL=boot      /boot      ext4  defaults          0 2
UUID=EF01-0203  /boot/efi  vfat  umask=0077        0 1
UUID=gone-uuid  /home      ext4  defaults          0 2
/dev/mapper/vg-swap none   swap  sw                0 0
proc            /proc      proc  defaults          0 0
"""


def _inspection() -> Inspection:
    efi = Partition("p1", 64 << 20, 1 << 20, "vfat", "", "EF01-0203", number=1, start=2048, sectors=131072)
    boot = Partition("p2", 256 << 20, 65 << 20, "ext4", "boot", "boot-uuid", number=2, start=133120,
                     sectors=524288)
    root = Volume("vg/root", 2 << 30, 400 << 20, "ext4", "", "root-uuid", fstab=parse_fstab(FSTAB), score=9)
    pv = Partition("p3", 3 << 30, 330 << 20, "LVM2_member", number=3, start=657408, sectors=6291456,
                   volumes=[root, Volume("vg/swap", 256 << 20, 3 << 30, "swap")])
    insp = Inspection("disk.qcow2", "qcow2", "", 4 << 30, 1 << 30, "gpt", [efi, boot, pv], "vg/root", [])
    root.root = True
    resolve_fstab(insp)
    return insp


def test_the_root_comes_first_then_fstab_in_mount_order_and_fat_through_mtools():
    plans, notes = plan_mounts(_inspection())
    assert [(p.fs_id, p.mountpoint, p.via) for p in plans] == [
        ("vg/root", "/", "mount"), ("p2", "/boot", "mount"), ("p1", "/boot/efi", "mtools")]
    assert plans[2].options == "umask=0077"  # mtools honours the guest's umask
    assert notes == ["fstab UUID=gone-uuid /home: not on this disk, left out"]


def test_disabled_mounts_stay_in_the_plan_switched_off_and_no_fstab_means_the_root_alone():
    plans, _ = plan_mounts(_inspection(), disabled={"p2"})
    assert [p.enabled for p in plans] == [True, False, True]
    plans, notes = plan_mounts(_inspection(), use_fstab=False)
    assert [p.fs_id for p in plans] == ["vg/root"] and notes == []


@pytest.mark.parametrize("root, says", [("p9", "no filesystem with id 'p9'"),
                                        ("vg/swap", "vg/swap holds no readable filesystem (swap)"),
                                        ("p3", "p3 holds no readable filesystem (LVM2_member)")])
def test_a_root_that_cannot_be_one_is_a_one_line_error(root, says):
    with pytest.raises(Vm2cError) as err:
        plan_mounts(_inspection(), root)
    assert says in err.value.message and "\n" not in err.value.message


def test_no_detected_root_asks_for_one_and_names_the_ids():
    insp = _inspection()
    insp.root = None
    with pytest.raises(Vm2cError, match=r"choose one with --root ID \(ids: p1, p2, p3, vg/root, vg/swap\)"):
        plan_mounts(insp)


def test_excludes_follow_gnu_tar_anchored_unanchored_and_whole_directories():
    f = Filters.build(rules("container", ["/", "/boot"]), ["*.log", "cache"])
    assert f.skips(b"boot/vmlinuz") and f.skips(b"var/cache/apt/archives/bash.deb") and f.skips(b"tmp/x")
    assert not f.skips(b"usr/share/doc/bash/README")  # docs go only with the minimal preset
    assert Filters.build(rules("minimal", ["/"]), []).skips(b"usr/share/doc/bash/README")
    assert f.skips(b"var/log/syslog.log") and f.skips(b"home/a/cache/x")  # unanchored: any trailing part
    assert not f.skips(b"usr/bin/bash") and not f.skips(b"etc/logrotate.conf")
    assert f.skips(b"srv/.wh.secret") and f.whiteouts == ["/srv/.wh.secret"]  # Docker would read a whiteout


def test_steps_attach_each_filesystem_once_and_skip_what_is_switched_off():
    from vm2c_tui.plan.mounts import MountPlan, mount_steps

    plans = [MountPlan("p3", "/", "btrfs", 1 << 20, 1 << 30, "mount", subvol="@"),
             MountPlan("p3", "/home", "btrfs", 1 << 20, 1 << 30, "mount", subvol="@home"),
             MountPlan("p1", "/boot/efi", "vfat", 0, 1 << 20, "mtools"),
             MountPlan("p2", "/srv", "ext4", 2 << 30, 1 << 30, "mount", enabled=False)]
    steps = [(s.action, s.plan.mountpoint, s.device) for s in mount_steps(plans)]
    # one loop device for both subvolumes: btrfs refuses a second device of the same filesystem
    assert steps == [("attach", "/", "LOOP1"), ("mount", "/", "LOOP1"), ("mount", "/home", "LOOP1"),
                     ("fat", "/boot/efi", "FAT3")]


def test_device_names_pick_the_guests_disk():
    """/dev/vdb1 is partition 1 of the VM's second disk; on a lone image (the guest's first
    disk) it is on no disk read; an LV is found whatever disk prefix its id carries."""
    from vm2c_tui.inspect.resolve import resolve_spec

    d1 = Partition("d1/p1", 1 << 20, 1 << 20, "ext4", number=1, disk=0)
    d2 = Partition("d2/p1", 1 << 20, 9 << 20, "ext4", number=1, disk=1,
                   volumes=[Volume("d2/data/var", 1 << 20, 20 << 20, "ext4", disk=1)])
    two = Inspection("vda", "raw", "", 30 << 20, 0, "gpt", [d1, d2], None, [])
    assert resolve_spec("/dev/vdb1", two) is d2 and resolve_spec("/dev/sda1", two) is d1
    assert resolve_spec("/dev/nvme1n1p1", two) is d2
    assert resolve_spec("/dev/mapper/data-var", two).id == "d2/data/var"
    assert resolve_spec("/dev/data/var", two).id == "d2/data/var"
    one = Inspection("vda", "raw", "", 30 << 20, 0, "gpt", [Partition("p1", 1 << 20, 1 << 20, number=1)], None, [])
    assert resolve_spec("/dev/vdb1", one) is None and resolve_spec("/dev/vda1", one).id == "p1"
