"""The ports a service's own configuration declares, for the daemons most VMs run; a service
whose configuration says nothing is listed without ports (never guessed from its name alone)."""

from __future__ import annotations

import re

from vm2c_tui.inspect.services.units import port_of_listen


def _lines(guest, paths: list[str]) -> list[str]:
    out = []
    for p in paths:
        data = guest.read(p)
        if data is not None:
            out += [l.split("#", 1)[0].strip() for l in data.decode("utf-8", "replace").splitlines()]
    return out


def _conf_dir(guest, d: str, suffix: str = "") -> list[str]:
    return [f"{d}/{n}" for n in guest.listdir(d) if not n.endswith("/") and n.endswith(suffix)]


def sshd(guest) -> tuple[list[int], str]:
    if not guest.exists("/etc/ssh/sshd_config"):
        return [], ""
    files = ["/etc/ssh/sshd_config", *_conf_dir(guest, "/etc/ssh/sshd_config.d", ".conf")]
    ports = [int(m.group(1)) for l in _lines(guest, files) if (m := re.fullmatch(r"(?i)port\s+(\d{1,5})", l))]
    return (ports or [22]), "/etc/ssh/sshd_config" + ("" if ports else " (no Port: the default)")


def nginx(guest) -> tuple[list[int], str]:
    files = ["/etc/nginx/nginx.conf", *_conf_dir(guest, "/etc/nginx/conf.d", ".conf"),
             *_conf_dir(guest, "/etc/nginx/sites-enabled")]
    ports = []
    for l in _lines(guest, files):  # a listen directive anywhere on a line: `server { listen 80; }`
        ports += [int(m.group(1)) for m in re.finditer(r"(?:^|[\s{;])listen\s+(?:\[[^\]]*\]:|[\w.*-]+:)?(\d{1,5})\b", l)]
    return ports, "/etc/nginx"


def apache(guest) -> tuple[list[int], str]:
    files = ["/etc/apache2/ports.conf", "/etc/httpd/conf/httpd.conf"]
    ports = [int(m.group(1)) for l in _lines(guest, files) if (m := re.match(r"Listen\s+(?:\S+:)?(\d{1,5})\b", l))]
    return ports, "ports.conf / httpd.conf"


def _key_port(guest, files: list[str], key: str, default: int) -> tuple[list[int], str]:
    """The last KEY = N in FILES; the daemon's DEFAULT only when a configuration is there."""
    files = [f for f in files if guest.exists(f)]
    if not files:
        return [], ""
    found = [l for l in _lines(guest, files) if re.match(rf"{key}\s*=", l)]
    ports = [int(m.group(1)) for l in found if (m := re.search(r"=\s*'?(\d{1,5})", l))]
    return (ports[-1:] or [default]), (files[0] if files else "") + ("" if ports else " (the default)")


def postgres(guest) -> tuple[list[int], str]:
    files = [f"/etc/postgresql/{v.rstrip('/')}/main/postgresql.conf" for v in guest.listdir("/etc/postgresql")]
    return _key_port(guest, files + ["/var/lib/pgsql/data/postgresql.conf"], "port", 5432)


def mysql(guest) -> tuple[list[int], str]:
    files = ["/etc/mysql/my.cnf", *_conf_dir(guest, "/etc/mysql/mariadb.conf.d", ".cnf"),
             *_conf_dir(guest, "/etc/mysql/mysql.conf.d", ".cnf"), "/etc/my.cnf"]
    return _key_port(guest, files, "port", 3306)


def redis(guest) -> tuple[list[int], str]:
    files = [f for f in ("/etc/redis/redis.conf", "/etc/redis.conf") if guest.exists(f)]
    ports = [int(m.group(1)) for l in _lines(guest, files) if (m := re.fullmatch(r"port\s+(\d{1,5})", l))]
    return (ports or [6379] if files else []), (files[0] if files else "")


BY_NAME = [(re.compile(r"^(ssh|sshd|openssh)$"), sshd), (re.compile(r"^nginx"), nginx),
           (re.compile(r"^(apache2|httpd)$"), apache), (re.compile(r"^postgresql"), postgres),
           (re.compile(r"^(mysql|mariadb|mysqld)$"), mysql), (re.compile(r"^redis"), redis)]
DATA = {"postgresql": "/var/lib/postgresql", "mysql": "/var/lib/mysql", "mariadb": "/var/lib/mysql",
        "redis": "/var/lib/redis", "nginx": "/var/www", "apache2": "/var/www", "httpd": "/var/www/html"}


def declared(guest, service: str, listen: list[str]) -> tuple[list[int], str]:
    """The ports SERVICE (a unit's name without .service) declares: a socket unit's ListenStream,
    else its daemon's configuration."""
    if listen:
        return sorted({p for v in listen if (p := port_of_listen(v))}), "ListenStream="
    for pattern, reader in BY_NAME:
        if pattern.match(service):
            ports, where = reader(guest)
            return sorted(set(ports)), where
    return [], ""
