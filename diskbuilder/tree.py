"""A tiny but real Linux tree, and the awkward cases a faithful tar must keep."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BUSYBOX = "/bin/busybox"
APPLETS_BIN = ["sh", "ash", "ls", "cat", "echo", "mkdir", "rm", "cp", "mv", "ln", "ps", "grep",
               "sed", "vi", "id", "true", "false", "sleep", "uname", "mount", "df", "du", "find"]
APPLETS_SBIN = ["init", "ip", "ifconfig", "reboot", "halt"]
FIXED_MTIME = 981_173_106  # 2001-02-03 04:05:06 UTC, so trees are reproducible

OS_RELEASE = """\
PRETTY_NAME="Demo Linux 1.0 (vm2c)"
NAME="Demo Linux"
ID=demolinux
VERSION_ID="1.0"
HOME_URL="https://example.invalid/"
"""


def _write(path: Path, data: str | bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


def _copy_with_libs(binary: str, root: Path) -> None:
    """Copy a dynamic binary and the libraries ldd names, at the same paths."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = [binary]
    for line in out.splitlines():
        parts = line.split()
        for p in parts:
            if p.startswith("/"):
                paths.append(p)
                break
    for p in paths:
        dst = root / p.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(p), dst)


def base_tree(root: Path, *, hostname: str = "demo", fstab: str = "") -> None:
    """busybox userland, os-release, fstab, a user, a setcap'd ping."""
    for d in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "home", "var/log", "var/tmp",
              "var/cache/apt", "var/lib", "usr/share/doc/busybox", "usr/share/man/man1",
              "lib/modules/6.1.0-demo/kernel", "boot", "srv", "mnt", "opt"]:
        (root / d).mkdir(parents=True, exist_ok=True)
    for d, mode in [("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("run", 0o755), ("tmp", 0o1777)]:
        (root / d).mkdir(exist_ok=True)
        os.chmod(root / d, mode)
    os.chmod(root / "root", 0o700)
    os.chmod(root / "var/tmp", 0o1777)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    for a in APPLETS_BIN:
        (root / "bin" / a).symlink_to("busybox")
    for a in APPLETS_SBIN:
        (root / "sbin" / a).symlink_to("../bin/busybox")
    _copy_with_libs("/usr/sbin/getcap", root)
    # A setcap'd ping: busybox answers to its argv[0].
    ping = root / "usr/bin/ping"
    shutil.copy2(BUSYBOX, ping)
    subprocess.run(["setcap", "cap_net_raw+ep", str(ping)], check=True)
    _write(root / "etc/os-release", OS_RELEASE)
    (root / "usr/lib").mkdir(parents=True, exist_ok=True)
    _write(root / "usr/lib/os-release", OS_RELEASE)
    _write(root / "etc/hostname", hostname + "\n")
    _write(root / "etc/fstab", fstab)
    _write(root / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                                "operator:x:1000:1000:Operator:/home/operator:/bin/sh\n")
    _write(root / "etc/group", "root:x:0:\noperator:x:1000:\n")
    _write(root / "etc/shadow", "root:*:19000:0:99999:7:::\noperator:*:19000:0:99999:7:::\n", 0o640)
    home = root / "home/operator"
    home.mkdir(exist_ok=True)
    os.chown(home, 1000, 1000)
    os.chmod(home, 0o750)
    _write(home / ".profile", "export PS1='$ '\n", 0o644, 1000, 1000)
    _write(root / "etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444)
    _write(root / "etc/ssh/ssh_host_ed25519_key", "-----FAKE PRIVATE KEY-----\n", 0o600)
    _write(root / "etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAAfake root@demo\n")
    _write(root / "etc/ssh/sshd_config", "PermitRootLogin no\n")
    _write(root / "var/log/messages", "boot ok\n" * 200, 0o640)
    _write(root / "var/cache/apt/pkgcache.bin", os.urandom(64 * 1024))
    _write(root / "var/tmp/scratch", "temporary\n")
    _write(root / "usr/share/doc/busybox/copyright", "GPL-2\n" * 50)
    _write(root / "usr/share/man/man1/busybox.1", ".TH BUSYBOX 1\n" * 40)
    _write(root / "lib/modules/6.1.0-demo/kernel/demo.ko", os.urandom(32 * 1024))
    _write(root / "srv/hello.txt", "hello from the guest\n")


def torture_tree(root: Path) -> None:
    """Every case the tar must carry: see issue 3, 'The archiver'."""
    srv = root / "srv"
    _write(srv / "setuid", b"#!/bin/sh\n", 0o4755)
    _write(srv / "setgid", b"#!/bin/sh\n", 0o2711, 0, 1000)
    sticky = srv / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    _write(srv / "owned", "odd owner\n", 0o640, 12345, 54321)
    a = _write(srv / "hardlink-a", "same inode\n")
    os.link(a, srv / "hardlink-b")
    (srv / "abs-link").symlink_to("/usr/bin/ping")
    (srv / "rel-link").symlink_to("../etc/os-release")
    (srv / "dangling").symlink_to("/nowhere/at/all")
    os.mknod(srv / "char-null", 0o666 | 0o020000, os.makedev(1, 3))
    os.mknod(srv / "block-loop", 0o660 | 0o060000, os.makedev(7, 99))
    os.mkfifo(srv / "fifo", 0o600)
    x = _write(srv / "xattrs", "has user xattrs\n")
    os.setxattr(x, "user.comment", b"kept by import")
    os.setxattr(x, "user.binary", bytes(range(1, 20)))
    acl = _write(srv / "acl", "has an ACL\n")
    subprocess.run(["setfacl", "-m", "u:1000:r", str(acl)], check=True)
    with open(srv / "sparse.img", "wb") as f:
        f.truncate(64 << 20)
        f.seek(1 << 20)
        f.write(b"island" * 1000)
        f.seek((64 << 20) - 6)
        f.write(b"theend")
    names = [b"caf\xe9-latin1", "sp ace & quote'\"".encode(), b"new\nline", b"back\\slash",
             "ünïcödé-名前".encode(), b"\x1b[31mred"]
    for n in names:
        _write(Path(os.fsdecode(bytes(srv) + b"/" + n)), "odd name\n")
    _write(srv / ".wh.secret", "would become a whiteout\n")
    deep = srv / "deep"
    p = deep
    for i in range(40):
        p = p / f"d{i}"
    _write(p / "bottom", "deep\n")


def freeze_mtimes(root: Path) -> None:
    """Same mtimes on every build, so fixture caches and comparisons are stable."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
    os.utime(root, (FIXED_MTIME, FIXED_MTIME))


def split_off(root: Path, sub: str, dest: Path) -> None:
    """Move ROOT/sub's contents to DEST (its own filesystem), leaving an empty mount point."""
    src = root / sub
    dest.mkdir(parents=True, exist_ok=True)
    st = src.stat()
    os.chmod(dest, st.st_mode & 0o7777)
    os.chown(dest, st.st_uid, st.st_gid)
    for entry in list(src.iterdir()):
        shutil.move(str(entry), str(dest / entry.name))
