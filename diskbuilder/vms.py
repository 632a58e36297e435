"""VMs as hypervisors leave them, built from fixture disks: a VirtualBox folder whose current
state is a differencing VDI written here from the VDI spec (VirtualBox's VDICore.h layout),
an OVA, a VMware folder with a delta VMDK, a libvirt domain with two disks.

Not keyed into the raw disks' cache (builder_key): these are cheap, made from raw disks.
"""

from __future__ import annotations

import io
import os
import random
import struct
import tarfile
import uuid as uuidlib
from pathlib import Path

from diskbuilder.build import sh

BLOCK = 1 << 20
FREE, ZERO = 0xFFFFFFFF, 0xFFFFFFFE


def _header_uuids(vdi: Path) -> tuple[bytes, bytes]:
    with open(vdi, "rb") as f:
        head = f.read(512)
    return head[392:408], head[408:424]


def differencing_vdi(parent_vdi: Path, base_raw: Path, after_raw: Path, dest: Path, child: uuidlib.UUID,
                     seed: int = 22) -> dict[str, int]:
    """DEST: the blocks where AFTER_RAW differs from BASE_RAW, over PARENT_VDI (which holds
    BASE_RAW). Unchanged blocks are left unallocated (read from the parent), blocks that became
    zeros are marked zero, the rest written in shuffled order, as a guest writes them."""
    size = os.path.getsize(base_raw)
    count = (size + BLOCK - 1) // BLOCK
    entries, data = [FREE] * count, []
    with open(base_raw, "rb") as a, open(after_raw, "rb") as b:
        for i in range(count):
            old, new = a.read(BLOCK), b.read(BLOCK)
            if old == new:
                continue
            if not new.strip(b"\0"):
                entries[i] = ZERO
            else:
                data.append((i, new.ljust(BLOCK, b"\0")))
    random.Random(seed).shuffle(data)
    off_blocks = 512
    off_data = (off_blocks + 4 * count + BLOCK - 1) // BLOCK * BLOCK
    for slot, (i, _) in enumerate(data):
        entries[i] = slot
    parent_create, parent_modify = _header_uuids(parent_vdi)
    head = bytearray(512)
    head[:40] = b"<<< Oracle VM VirtualBox Disk Image >>>\n"
    struct.pack_into("<IIIII", head, 64, 0xBEDA107F, 0x00010001, 400, 4, 0)
    struct.pack_into("<II", head, 340, off_blocks, off_data)
    struct.pack_into("<IIII", head, 348, 0, 0, 0, 512)
    struct.pack_into("<QIIII", head, 368, size, BLOCK, 0, count, len(data))
    head[392:408] = child.bytes_le
    head[408:424] = uuidlib.uuid5(child, "modify").bytes_le
    head[424:440] = parent_create
    head[440:456] = parent_modify
    with open(dest, "wb") as f:
        f.write(head)
        f.seek(off_blocks)
        f.write(struct.pack(f"<{count}I", *entries))
        for slot, (_, block) in enumerate(data):
            f.seek(off_data + slot * BLOCK)
            f.write(block)
    return {"allocated": len(data), "zero": entries.count(ZERO), "blocks": count}


def vdi_uuid(vdi: Path) -> str:
    return "{" + str(uuidlib.UUID(bytes_le=_header_uuids(vdi)[0])) + "}"


VBOX = """<?xml version="1.0"?>
<VirtualBox xmlns="http://www.virtualbox.org/" version="1.19-linux">
  <Machine uuid="{machine}" name="{name}" OSType="Debian_64" snapshotFolder="Snapshots"
           currentSnapshot="{snap}" lastStateChange="2026-11-30T10:05:00Z">
    <MediaRegistry>
      <HardDisks>
        <HardDisk uuid="{base}" location="{name}.vdi" format="VDI" type="Normal">
          <HardDisk uuid="{child}" location="Snapshots/{child}.vdi" format="VDI"/>
        </HardDisk>
      </HardDisks>
    </MediaRegistry>
    <Snapshot uuid="{snap}" name="before upgrade" timeStamp="2026-11-30T09:00:00Z">
      <Description>clean install</Description>
      <Hardware>
        <StorageControllers>
          <StorageController name="SATA" type="AHCI" PortCount="1">
            <AttachedDevice type="HardDisk" port="0" device="0"><Image uuid="{base}"/></AttachedDevice>
          </StorageController>
        </StorageControllers>
      </Hardware>
    </Snapshot>
    <Hardware>
      <StorageControllers>
        <StorageController name="SATA" type="AHCI" PortCount="1">
          <AttachedDevice type="HardDisk" port="0" device="0"><Image uuid="{child}"/></AttachedDevice>
        </StorageController>
      </StorageControllers>
    </Hardware>
  </Machine>
</VirtualBox>
"""


def virtualbox_folder(dest: Path, base_raw: Path, after_raw: Path, name: str = "vbvm") -> dict[str, Path]:
    """DEST/NAME.vbox, DEST/NAME.vdi (the state at snapshot 'before upgrade'), and
    DEST/Snapshots/{uuid}.vdi (the current state, AFTER_RAW, as a differencing image)."""
    (dest / "Snapshots").mkdir(parents=True, exist_ok=True)
    base = dest / f"{name}.vdi"
    sh("qemu-img", "convert", "-f", "raw", "-O", "vdi", str(base_raw), str(base))
    child = uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"vm2c:{name}:current")
    child_vdi = dest / "Snapshots" / f"{{{child}}}.vdi"
    stats = differencing_vdi(base, base_raw, after_raw, child_vdi, child)
    assert stats["allocated"] and stats["zero"], stats  # both kinds of block are exercised
    ids = {"machine": "{" + str(uuidlib.uuid5(child, "machine")) + "}", "snap": "{" + str(uuidlib.uuid5(child, "snap")) + "}",
           "base": vdi_uuid(base), "child": "{" + str(child) + "}"}
    text = VBOX
    for k, v in {**ids, "name": name}.items():
        text = text.replace("{" + k + "}", v)
    (dest / f"{name}.vbox").write_text(text)
    return {"vbox": dest / f"{name}.vbox", "base": base, "current": child_vdi}


OVF = """<?xml version="1.0" encoding="UTF-8"?>
<Envelope ovf:version="1.0" xmlns="http://schemas.dmtf.org/ovf/envelope/1"
          xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
          xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References>
    <File ovf:id="file1" ovf:href="{disk}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="{capacity}" ovf:diskId="vmdisk1" ovf:fileRef="file1"
          ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <Name>{name}</Name>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>20</rasd:ResourceType>
            <rasd:ElementName>sataController0</rasd:ElementName></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>disk0</rasd:ElementName>
            <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID>
            <rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def ova(dest: Path, stream_vmdk: Path, capacity: int, name: str = "ovavm", extra: list[tarfile.TarInfo] = ()) -> Path:
    """DEST: an OVA as VMware and VirtualBox export it (the OVF first, then the stream VMDK);
    EXTRA members (hostile names, links) go after the OVF."""
    disk = f"{name}-disk1.vmdk"
    ovf = OVF.replace("{disk}", disk).replace("{capacity}", str(capacity)).replace("{name}", name).encode()
    with tarfile.open(dest, "w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(f"{name}.ovf")
        info.size = len(ovf)
        tar.addfile(info, io.BytesIO(ovf))
        for m in extra:
            tar.addfile(m, io.BytesIO(b"x" * m.size) if m.isfile() else None)
        tar.add(stream_vmdk, arcname=disk)
    return dest


VMX = """.encoding = "UTF-8"
config.version = "8"
virtualHW.version = "19"
displayName = "{name}"
guestOS = "debian11-64"
scsi0.present = "TRUE"
scsi0.virtualDev = "pvscsi"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "{disk}"
sata0.present = "TRUE"
sata0:1.present = "TRUE"
sata0:1.deviceType = "cdrom-image"
sata0:1.fileName = "/isos/debian.iso"
"""

VMSD = """.encoding = "UTF-8"
snapshot.lastUID = "1"
snapshot.current = "1"
snapshot.numSnapshots = "1"
snapshot0.uid = "1"
snapshot0.filename = "{name}-Snapshot1.vmsn"
snapshot0.displayName = "before upgrade"
snapshot0.numDisks = "1"
snapshot0.disk0.fileName = "{name}.vmdk"
snapshot0.disk0.node = "scsi0:0"
"""


def vmware_folder(dest: Path, base_raw: Path, after_raw: Path, name: str = "vmwvm") -> dict[str, Path]:
    """DEST/NAME.vmx attaching NAME-000001.vmdk, a delta (AFTER_RAW's changes) over NAME.vmdk
    (BASE_RAW), with a .vmsd naming the snapshot the delta was started at."""
    dest.mkdir(parents=True, exist_ok=True)
    base, delta = dest / f"{name}.vmdk", dest / f"{name}-000001.vmdk"
    sh("qemu-img", "convert", "-f", "raw", "-O", "vmdk", str(base_raw), str(base))
    # -B: only what differs from the base lands in the delta, which names it as its parent
    sh("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-B", base.name, "-F", "vmdk", str(after_raw), str(delta))
    (dest / f"{name}.vmx").write_text(VMX.replace("{name}", name).replace("{disk}", delta.name))
    (dest / f"{name}.vmsd").write_text(VMSD.replace("{name}", name))
    return {"vmx": dest / f"{name}.vmx", "base": base, "current": delta}


LIBVIRT = """<domain type='kvm'>
  <name>{name}</name>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/><source file='{d1}'/><target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/><source file='{d2}'/><target dev='vdb' bus='virtio'/>
    </disk>
  </devices>
</domain>
"""


def two_disk_vm(dest: Path, trees: Path, name: str = "twodisk") -> dict[str, Path]:
    """A libvirt VM with two qcow2 disks: vda holds the root and the first PV of VG 'data', vdb
    holds /srv and the second PV; LV data/var is linear across both PVs (it outgrew the first).
    TREES gets root/, srv/, var/: what the guest's filesystems hold."""
    from diskbuilder import build as b
    from diskbuilder.layout import Disk, Fs, Part
    from diskbuilder.tree import base_tree, freeze_mtimes, split_off

    root, srv, var = trees / "root", trees / "srv", trees / "var"
    fs_root, fs_srv = Fs("ext4", 64, f"{name}-root", root, "root"), Fs("ext4", 24, f"{name}-srv", srv, "srv")
    fs_var = Fs("ext4", 40, f"{name}-var", var, "var")
    fstab = ("# two disks\n" f"UUID={fs_root.uuid} / ext4 defaults 0 1\n" "/dev/vdb1 /srv ext4 defaults 0 2\n"
             "/dev/mapper/data-var /var ext4 defaults 0 2\n")
    base_tree(root, hostname=name, fstab=fstab)
    (root / "srv/site").mkdir()
    (root / "srv/site/index.html").write_text("<h1>on the second disk</h1>\n")
    (root / "var/log/syslog").write_text("var spans both disks\n" * 2000)
    (root / "var/lib/big").write_bytes(os.urandom(20 << 20))  # more than the first PV holds of var
    split_off(root, "srv", srv)
    split_off(root, "var", var)
    for t in (root, srv, var):
        freeze_mtimes(t)
    dest.mkdir(parents=True, exist_ok=True)
    raws = [dest / "vda.raw", dest / "vdb.raw"]
    layouts = [Disk("gpt", [Part(64, "linux", fs_root), Part(24, "lvm")]),
               Disk("gpt", [Part(24, "linux", fs_srv), Part(32, "lvm")])]
    pvs = []
    for layout, raw in zip(layouts, raws):
        with open(raw, "wb") as f:
            f.truncate(layout.total_mib() << 20)
        entries = b._partition(layout, raw)
        fs_entry, pv_entry = entries
        img = dest / "part.img"
        b.make_fs(layout.parts[0].content, img)
        b._dd(img, raw, fs_entry["start"] * 512)
        img.unlink()
        pvs.append((raw, pv_entry["start"] * 512, pv_entry["size"] * 512))
    _spanning_lv(dest, pvs, fs_var)
    out = {"xml": dest / f"{name}.xml", "trees": trees}
    for raw in raws:
        qcow = raw.with_suffix(".qcow2")
        b.convert(raw, "qcow2", qcow)
        raw.unlink()
        out[raw.stem] = qcow
    (dest / f"{name}.xml").write_text(LIBVIRT.replace("{name}", name).replace("{d1}", str(out["vda"]))
                                      .replace("{d2}", str(out["vdb"])))
    return out


def _spanning_lv(work: Path, pvs: list[tuple[Path, int, int]], fs) -> None:
    """VG 'data' over the PV partitions PVS, LV 'var' as large as FS, linear across them."""
    from contextlib import ExitStack

    from diskbuilder import build as b

    with ExitStack() as stack:
        devs = [stack.enter_context(b.loop(raw, off, size)) for raw, off, size in pvs]
        conf = work / "lvm.conf"
        accept = ", ".join(f'"a|^{d}$|"' for d in devs)
        conf.write_text(f'devices {{ filter = [ {accept}, "r|.*|" ] use_devicesfile = 0 obtain_device_list_from_udev = 0 }}\n'
                        "backup { backup = 0 archive = 0 }\nactivation { udev_sync = 0 udev_rules = 0 monitoring = 0 }\n"
                        "global { use_lvmpolld = 0 }\n")
        env = {**os.environ, "LVM_SYSTEM_DIR": str(work), "LVM_SUPPRESS_FD_WARNINGS": "1"}
        for d in devs:
            sh("lvm", "pvcreate", "-q", "-y", d, env=env)
        sh("lvm", "vgcreate", "-q", "-s", "4M", "data", *devs, env=env)
        sh("lvm", "lvcreate", "-q", "--driverloaded", "n", "--activate", "n", "--zero", "n", "-W", "n",
           "-n", "var", "-L", f"{fs.size_mib}M", "data", *devs, env=env)
        extent = int(sh("lvm", "vgs", "--noheadings", "--units", "b", "--nosuffix", "-o", "vg_extent_size", "data",
                        env=env))
        starts = {d: int(sh("lvm", "pvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "pe_start", d, env=env))
                  for d in devs}
        rows = sh("lvm", "lvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "seg_start,seg_pe_ranges",
                  "data/var", env=env)
        conf.unlink()
    pieces = []
    for row in sorted((r.split() for r in rows.splitlines() if r.strip()), key=lambda r: int(r[0])):
        dev, rng = row[1].rsplit(":", 1)
        first, last = (int(x) for x in rng.split("-"))
        raw, off, _ = pvs[devs.index(dev)]
        pieces.append((raw, off + starts[dev] + first * extent, (last - first + 1) * extent))
    assert len({p[0] for p in pieces}) == 2, pieces  # it really spans both disks
    img = work / "var.img"
    b.make_fs(fs, img)
    pos = 0
    for raw, off, length in pieces:
        b._dd(img, raw, off, pos, length)
        pos += length
    img.unlink()
