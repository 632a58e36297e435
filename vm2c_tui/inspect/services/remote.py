"""What a machine over SSH runs, read by the same code as a disk's guest: the few files that
reading looks at (unit files, init scripts and runlevels, daemons' configuration) come over in
one tar made there (and a second for the files an ExecStart names, `nginx -c FILE`), and are unpacked into a private directory that GuestRoot reads; binaries
and data directories are only said to exist (an empty stand-in each), their sizes asked of `du`
there. Unpacking resolves every member's directory inside that copy (a guest link such as
lib -> usr/lib is followed there, never out of it) and writes nothing through a link."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from vm2c_tui.errors import Vm2cError
from vm2c_tui.inspect.guestpath import MAX_LINKS, GuestPathError, GuestRoot
from vm2c_tui.inspect.services import GENERATORS, TOOLS, ports, read_services
from vm2c_tui.inspect.services.init import SYSTEMD

TOP = ("bin", "sbin", "lib", "lib64")  # merged /usr: links there, whose targets the copy follows
CONFIG = ("sbin/init", "usr/sbin/init", "etc/systemd/system", "lib/systemd/system", "usr/lib/systemd/system",
          "etc/init.d", "etc/rc2.d", "etc/rc3.d", "etc/runlevels", "etc/inittab", "etc/default",
          "etc/ssh/sshd_config", "etc/ssh/sshd_config.d", "etc/nginx", "etc/apache2/ports.conf",
          "etc/httpd/conf/httpd.conf", "etc/postgresql", "var/lib/pgsql/data/postgresql.conf", "etc/mysql",
          "etc/my.cnf", "etc/redis", "etc/redis.conf")
# what reading asks only the existence of: the inits, the tools a run mode calls, the fstab generator
PRESENT = (*SYSTEMD, "/sbin/openrc", "/usr/sbin/openrc", "/bin/busybox", *TOOLS, *GENERATORS)
MAX_FILE, MAX_TOTAL = 1 << 20, 64 << 20
# "$@": the names above, none of them ours to vary; each printed when it exists there.
SCRIPT = r"""
cd / || exit 1
echo @@present
for p in "$@"; do { [ -e "$p" ] || [ -L "$p" ]; } && echo "$p"; done
echo @@nonempty
for d in /srv /home /var/www /opt /var/lib/*; do
  [ -d "$d" ] && [ ! -L "$d" ] && [ -n "$(ls -A "$d" 2>/dev/null | head -n 1)" ] && echo "$d"
done
echo @@end
"""
# Each entry of the directory "$1": KiB, 1 for a directory, its name (the explorer's and the data
# directories' sizes); names with a newline are not listed.
SIZES = r"""
cd -- "$1" 2>/dev/null || exit 0
for e in * .[!.]* ..?*; do
  { [ -e "$e" ] || [ -L "$e" ]; } || continue
  case "$e" in *"
"*) continue;; esac
  k=$(du -skx -- "$e" 2>/dev/null | cut -f1)
  if [ -d "$e" ] && [ ! -L "$e" ]; then d=1; else d=0; fi
  printf '%s\t%s\t%s\n' "${k:-0}" "$d" "$e"
done
"""


def remote_sizes(remote, path: str) -> list[tuple[str, int, bool]]:
    """(name, bytes, is a directory) of each entry of PATH there, biggest first."""
    out = remote.run(["sh", "-c", SIZES, "sh", path], timeout=600, what="du").decode("utf-8", "surrogateescape")
    found = []
    for line in out.splitlines():
        k, d, name = (line.split("\t", 2) + ["", ""])[:3]
        if k.isdigit() and name:
            found.append((name, int(k) * 1024, d == "1"))
    return sorted(found, key=lambda e: -e[1])


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("@@"):
            current = line[2:]
            out[current] = []
        elif current and line:
            out[current].append(line)
    return out


def _mkdirs(root: GuestRoot, parts: list[str]) -> str:
    """The host directory of guest /PARTS inside the copy, each missing directory made, each
    link followed inside the copy (lib -> usr/lib makes usr/lib)."""
    todo, done, links = list(parts), [], 0
    while todo:
        comp = todo.pop(0)
        if comp in ("", "."):
            continue
        if comp == "..":
            done = done[:-1]
            continue
        host = os.path.join(root.root, *done, comp)
        if os.path.islink(host):
            links += 1
            if links > MAX_LINKS:
                raise GuestPathError(f"/{'/'.join(parts)}: too many levels of symbolic links")
            target = os.readlink(host)
            done = [] if target.startswith("/") else done
            todo = target.split("/") + todo
            continue
        if not os.path.lexists(host):
            os.mkdir(host, 0o700)
        elif not os.path.isdir(host):
            raise GuestPathError(f"/{'/'.join(parts)}: not a directory in the copy")
        done.append(comp)
    return os.path.join(root.root, *done)


def _unpack_one(root: GuestRoot, tar: tarfile.TarFile, m: tarfile.TarInfo, budget: list[int]) -> None:
    parts = [p for p in m.name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return
    try:
        parent = _mkdirs(root, parts[:-1])
    except (GuestPathError, OSError):
        return
    host = os.path.join(parent, parts[-1])
    if os.path.lexists(host):
        return
    if m.isdir():
        os.mkdir(host, 0o700)
    elif m.issym():
        os.symlink(m.linkname, host)  # never followed on the host: GuestRoot reads it as text
    elif m.isreg() and budget[0] > 0:
        data = tar.extractfile(m).read(min(MAX_FILE, budget[0]))
        budget[0] -= len(data)
        fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)


def _stand_in(root: GuestRoot, path: str, name: str = "") -> None:
    """An empty file for something that exists there (a binary; a non-empty data directory)."""
    parts = [p for p in path.split("/") if p] + ([name] if name else [])
    try:
        host = os.path.join(_mkdirs(root, parts[:-1]), parts[-1])
        if not os.path.lexists(host):
            os.close(os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except (GuestPathError, OSError):
        pass


def _fetch(remote, root: GuestRoot, members: list[str], budget: list[int]) -> None:
    """MEMBERS (paths under / there) in one tar, unpacked into the copy at ROOT."""
    blob = remote.run(["tar", "-C", "/", "-cf", "-", "--ignore-failed-read", "--no-wildcards", "--", *members],
                      timeout=300, what="tar of its unit files")
    if len(blob) > MAX_TOTAL * 2:
        raise Vm2cError(f"{remote.url}: its service configuration is {len(blob) >> 20} MiB; not read")
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar:
        for m in tar:
            _unpack_one(root, tar, m, budget)


def fetch_guest(remote, into: Path) -> GuestRoot:
    """The copy of REMOTE's service files under INTO, read as a GuestRoot."""
    found = _sections(remote.run(["sh", "-c", SCRIPT, "sh", *PRESENT, *("/" + c for c in CONFIG)],
                                 what="listing its services' files").decode("utf-8", "surrogateescape"))
    present = set(found.get("present", []))
    names = [c for c in CONFIG if "/" + c in present]
    root, budget = GuestRoot(str(into)), [MAX_TOTAL]
    _fetch(remote, root, ["--no-recursion", *TOP, "--recursion", *names], budget)
    for p in present - {"/" + c for c in CONFIG}:
        _stand_in(root, p)
    for d in found.get("nonempty", []):
        _stand_in(root, d, ".vm2c-not-empty")
    named = {f.lstrip("/") for s in read_services(root).services for f in ports.config_files(s.exec_start)}
    missing = sorted(f for f in named if not root.exists("/" + f))
    if missing:  # `nginx -c /etc/web.conf`: read where the unit files say, a second, small tar
        _fetch(remote, root, missing, budget)

    return root
