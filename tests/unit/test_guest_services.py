"""What a guest runs, read from its tree (issue 24): trees made here, no root needed."""

from __future__ import annotations

import os
from pathlib import Path

from vm2c_tui.inspect.guestpath import GuestRoot
from vm2c_tui.inspect.services import read_services

NGINX_UNIT = """[Unit]
Description=nginx
[Service]
Type=forking
ExecStartPre=/usr/sbin/nginx -t -q -g 'daemon on; master_process on;'
ExecStart=/usr/sbin/nginx -g 'daemon on; master_process on;'
"""
APP_UNIT = """[Service]
User=app
Group=app
WorkingDirectory=/srv/app
Environment=MODE=prod "GREETING=hello world"
EnvironmentFile=-/etc/default/app
ExecStart=/srv/app/run \\
   --port 8080
"""


def _put(root: Path, path: str, text: str = "") -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def _link(root: Path, path: str, target: str) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, p)


def systemd_guest(root: Path) -> Path:
    _put(root, "/lib/systemd/systemd", "elf")
    _link(root, "/sbin/init", "/lib/systemd/systemd")
    units = "/lib/systemd/system"
    _put(root, f"{units}/nginx.service", NGINX_UNIT)
    _put(root, f"{units}/ssh.service", "[Service]\nExecStart=/usr/sbin/sshd -D $SSHD_OPTS\nType=notify\n")
    _put(root, f"{units}/app.service", APP_UNIT)
    _put(root, f"{units}/cups.socket", "[Socket]\nListenStream=/run/cups/cups.sock\nListenStream=0.0.0.0:631\n")
    _put(root, f"{units}/getty@.service", "[Service]\nExecStart=-/sbin/agetty %I\n")
    _put(root, f"{units}/cron.service", "[Service]\nExecStart=/usr/sbin/cron -f\n")
    _put(root, f"{units}/reap.service", "[Service]\nType=oneshot\nExecStart=/sbin/e2scrub_all -A -r\n")
    wants = "/etc/systemd/system/multi-user.target.wants"
    for name in ("nginx.service", "ssh.service", "app.service", "cron.service", "reap.service"):
        _link(root, f"{wants}/{name}", f"{units}/{name}")
    _link(root, "/etc/systemd/system/sockets.target.wants/cups.socket", f"{units}/cups.socket")
    _link(root, "/etc/systemd/system/getty.target.wants/getty@tty1.service", f"{units}/getty@.service")
    _link(root, "/etc/systemd/system/cron.service", "/dev/null")  # masked
    _put(root, "/etc/systemd/system/app.service.d/override.conf", "[Service]\nExecStart=\nExecStart=/srv/app/run2\n")
    _put(root, "/etc/nginx/sites-enabled/default", "server {\n  listen 80 default_server;\n  listen [::]:80;\n"
                                                   "  # listen 81;\n  listen 127.0.0.1:8443 ssl;\n}\n")
    _put(root, "/etc/ssh/sshd_config", "#Port 22\nPort 2222\n")
    _put(root, "/var/www/html/index.html", "x" * 5000)
    _put(root, "/srv/app/run", "#!/bin/sh\n")
    _put(root, "/var/lib/app/state.db", "y" * 100)
    return root


def test_systemd_services_with_what_a_container_needs(tmp_path):
    found = read_services(GuestRoot(str(systemd_guest(tmp_path))), lambda p: 1234)
    assert (found.init, found.init_path) == ("systemd", "/lib/systemd/systemd")
    by = {s.name: s for s in found.services}
    assert set(by) == {"nginx.service", "ssh.service", "app.service", "cups.socket", "reap.service"}  # cron masked
    assert by["nginx.service"].ports == [80, 8443] and by["nginx.service"].type == "forking"
    assert by["nginx.service"].exec_start_pre == ["/usr/sbin/nginx -t -q -g 'daemon on; master_process on;'"]
    assert by["ssh.service"].ports == [2222] and by["ssh.service"].exec_start == ["/usr/sbin/sshd -D $SSHD_OPTS"]
    app = by["app.service"]
    assert app.exec_start == ["/srv/app/run2"]  # the drop-in's reset, then its own line
    assert (app.user, app.group, app.working_directory) == ("app", "app", "/srv/app")
    assert app.environment == ['MODE=prod "GREETING=hello world"'] and app.environment_files == ["-/etc/default/app"]
    assert by["cups.socket"].ports == [631]
    dirs = {p: (b, why) for p, b, why in found.data_dirs}
    assert set(dirs) == {"/srv", "/var/www", "/var/lib/app"} and dirs["/var/www"] == (1234, "nginx's data")
    assert found.run_modes == ["system", "service:app", "service:nginx", "service:ssh", "shell"]  # no oneshot
    doc = found.to_json()
    assert doc["init"] == "systemd" and {s["name"] for s in doc["services"]} == set(by)


def test_sysvinit_busybox_openrc_and_none(tmp_path):
    sysv = tmp_path / "sysv"
    _put(sysv, "/sbin/init", "elf")
    _put(sysv, "/etc/inittab", "id:2:initdefault:\n")
    _put(sysv, "/etc/init.d/nginx", "#!/bin/sh\n")
    _link(sysv, "/etc/rc2.d/S01nginx", "../init.d/nginx")
    _link(sysv, "/etc/rc2.d/K01gone", "../init.d/gone")
    _put(sysv, "/etc/nginx/nginx.conf", "http { server { listen 8080; } }\n")
    found = read_services(GuestRoot(str(sysv)))
    assert found.init == "sysvinit" and [(s.name, s.manager, s.ports) for s in found.services] == \
        [("nginx", "sysv", [8080])]

    busy = tmp_path / "busybox"
    _put(busy, "/bin/busybox", "elf")
    _link(busy, "/sbin/init", "/bin/busybox")
    assert read_services(GuestRoot(str(busy))).init == "busybox"

    alpine = tmp_path / "alpine"
    _put(alpine, "/bin/busybox", "elf")
    _link(alpine, "/sbin/init", "/bin/busybox")
    _put(alpine, "/sbin/openrc", "elf")
    _link(alpine, "/etc/runlevels/default/sshd", "/etc/init.d/sshd")
    _put(alpine, "/etc/ssh/sshd_config", "PermitRootLogin no\n")  # no Port: sshd's default
    found = read_services(GuestRoot(str(alpine)))
    assert found.init == "openrc" and [(s.name, s.ports) for s in found.services] == [("sshd", [22])]

    bare = tmp_path / "bare"
    _put(bare, "/bin/sh", "elf")
    found = read_services(GuestRoot(str(bare)))
    assert found.init == "none" and found.run_modes == ["shell"]  # no init: only a shell to offer


def test_a_unit_link_out_of_the_guest_stays_inside(tmp_path):
    """A wants link or sshd_config pointing at the host's files is read inside the guest."""
    root = systemd_guest(tmp_path / "g")
    os.unlink(root / "etc/ssh/sshd_config")
    os.symlink(str(tmp_path / "host-sshd"), root / "etc/ssh/sshd_config")
    (tmp_path / "host-sshd").write_text("Port 9999\n")
    by = {s.name: s for s in read_services(GuestRoot(str(root))).services}
    assert by["ssh.service"].ports == []  # the host's file was not read (the guest has no sshd_config)


def test_no_configuration_no_port(tmp_path):
    """A unit named like a database but no configuration of it: no port claimed."""
    root = systemd_guest(tmp_path)
    _put(root, "/lib/systemd/system/postgresql.service", "[Service]\nExecStart=/bin/true\n")
    _link(root, "/etc/systemd/system/multi-user.target.wants/postgresql.service",
          "/lib/systemd/system/postgresql.service")
    by = {s.name: s for s in read_services(GuestRoot(str(root))).services}
    assert by["postgresql.service"].ports == []
    _put(root, "/etc/postgresql/15/main/postgresql.conf", "#port = 1\nport = 5433\t# moved\n")
    by = {s.name: s for s in read_services(GuestRoot(str(root))).services}
    assert by["postgresql.service"].ports == [5433]


def test_ports_of_a_daemon_known_by_its_program_and_its_own_config(tmp_path):
    """A unit not named for its daemon, running nginx -c FILE: FILE's ports, not /etc/nginx's."""
    root = systemd_guest(tmp_path / "g")
    units = "/etc/systemd/system"
    _put(root, f"{units}/web.service", "[Service]\nUser=deploy\nExecStart=/usr/sbin/nginx -c /etc/web.conf\n")
    _put(root, f"{units}/alt-ssh.service", "[Service]\nExecStart=/usr/sbin/sshd -D -f /etc/ssh/alt_config\n")
    for name in ("web.service", "alt-ssh.service"):
        _link(root, f"{units}/multi-user.target.wants/{name}", f"{units}/{name}")
    _put(root, "/etc/web.conf", "events {}\nhttp { server { listen 8080; } }\n")
    _put(root, "/etc/ssh/alt_config", "Port 2200\n")
    by = {s.name: s for s in read_services(GuestRoot(str(root))).services}
    assert (by["web.service"].ports, by["web.service"].ports_from) == ([8080], "/etc/web.conf")
    assert by["alt-ssh.service"].ports == [2200] and by["nginx.service"].ports == [80, 8443]


def test_environment_words_as_systemd_splits_them():
    import pytest

    from vm2c_tui.inspect.services.units import words

    assert words('MODE=prod "GREETING=hello world"') == ["MODE=prod", "GREETING=hello world"]
    assert words(r'A=x\x41\101\u00fc "B=say \"hi\"" C=one\stwo' + " 'D=$HOME'") == \
        ["A=xAAü", 'B=say "hi"', "C=one two", "D=$HOME"]
    assert words("  ") == [] and words('E=""') == ["E="]
    for bad in ('"open', r"F=\q"):
        with pytest.raises(ValueError):
            words(bad)
