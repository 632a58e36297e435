"""The ports a service's own configuration declares, for the daemons most VMs run; a service
whose configuration says nothing is listed without ports (never guessed from its name alone)."""

from __future__ import annotations

import re
import shlex

from vm2c_tui.inspect.services.units import EXEC_PREFIX, port_of_listen


def _lines(guest, paths: list[str]) -> list[str]:
    out = []
    for p in paths:
        data = guest.read(p)
        if data is not None:
            out += [l.split("#", 1)[0].strip() for l in data.decode("utf-8", "replace").splitlines()]
    return out


def _conf_dir(guest, d: str, suffix: str = "") -> list[str]:
    return [f"{d}/{n}" for n in guest.listdir(d) if not n.endswith("/") and n.endswith(suffix)]


def _option(argv: list[str], flag: str) -> str:
    """The value after FLAG in ARGV ("" when it is not there)."""
    return next((argv[i + 1] for i, w in enumerate(argv[:-1]) if w == flag), "")


def sshd(guest, argv: list[str] = ()) -> tuple[list[int], str]:
    conf = _option(list(argv), OWN_CONFIG["sshd"])  # its own configuration file: that one alone
    if not guest.exists(conf or "/etc/ssh/sshd_config"):
        return [], ""
    files = [conf] if conf else ["/etc/ssh/sshd_config", *_conf_dir(guest, "/etc/ssh/sshd_config.d", ".conf")]
    ports = [int(m.group(1)) for l in _lines(guest, files) if (m := re.fullmatch(r"(?i)port\s+(\d{1,5})", l))]
    return (ports or [22]), files[0] + ("" if ports else " (no Port: the default)")


def nginx(guest, argv: list[str] = ()) -> tuple[list[int], str]:
    conf = _option(list(argv), OWN_CONFIG["nginx"])  # `nginx -c FILE`: that file, not the packaged tree
    files = [conf] if conf else ["/etc/nginx/nginx.conf", *_conf_dir(guest, "/etc/nginx/conf.d", ".conf"),
                                 *_conf_dir(guest, "/etc/nginx/sites-enabled")]
    ports = []
    for l in _lines(guest, files):  # a listen directive anywhere on a line: `server { listen 80; }`
        ports += [int(m.group(1)) for m in re.finditer(r"(?:^|[\s{;])listen\s+(?:\[[^\]]*\]:|[\w.*-]+:)?(\d{1,5})\b", l)]
    return ports, conf or "/etc/nginx"


def apache(guest, argv: list[str] = ()) -> tuple[list[int], str]:
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


def postgres(guest, argv: list[str] = ()) -> tuple[list[int], str]:
    files = [f"/etc/postgresql/{v.rstrip('/')}/main/postgresql.conf" for v in guest.listdir("/etc/postgresql")]
    return _key_port(guest, files + ["/var/lib/pgsql/data/postgresql.conf"], "port", 5432)


def mysql(guest, argv: list[str] = ()) -> tuple[list[int], str]:
    files = ["/etc/mysql/my.cnf", *_conf_dir(guest, "/etc/mysql/mariadb.conf.d", ".cnf"),
             *_conf_dir(guest, "/etc/mysql/mysql.conf.d", ".cnf"), "/etc/my.cnf"]
    return _key_port(guest, files, "port", 3306)


def redis(guest, argv: list[str] = ()) -> tuple[list[int], str]:
    files = [f for f in ("/etc/redis/redis.conf", "/etc/redis.conf") if guest.exists(f)]
    ports = [int(m.group(1)) for l in _lines(guest, files) if (m := re.fullmatch(r"port\s+(\d{1,5})", l))]
    return (ports or [6379] if files else []), (files[0] if files else "")


BY_NAME = [(re.compile(r"^(ssh|sshd|openssh)$"), sshd), (re.compile(r"^nginx"), nginx),  # a name or a program
           (re.compile(r"^(apache2|httpd)$"), apache), (re.compile(r"^postgres"), postgres),
           (re.compile(r"^(mysql|mariadb|mysqld|mariadbd)$"), mysql), (re.compile(r"^redis"), redis)]
DATA = {"postgresql": "/var/lib/postgresql", "mysql": "/var/lib/mysql", "mariadb": "/var/lib/mysql",
        "redis": "/var/lib/redis", "nginx": "/var/www", "apache2": "/var/www", "httpd": "/var/www/html"}


def _argv(exec_start: list[str]) -> list[str]:
    line = exec_start[-1][EXEC_PREFIX.match(exec_start[-1]).end():] if exec_start else ""
    try:
        return shlex.split(line)
    except ValueError:
        return []


OWN_CONFIG = {"nginx": "-c", "sshd": "-f"}  # a daemon's flag naming the one configuration it reads


def config_files(exec_start: list[str]) -> list[str]:
    """The configuration file an ExecStart names for its daemon (`nginx -c FILE`), if any."""
    argv = _argv(list(exec_start))
    flag = OWN_CONFIG.get(argv[0].rsplit("/", 1)[-1]) if argv else None
    conf = _option(argv, flag) if flag else ""
    return [conf] if conf.startswith("/") else []


def declared(guest, service: str, listen: list[str], exec_start: list[str] = ()) -> tuple[list[int], str]:
    """The ports SERVICE (a unit's name without .service) declares: a socket unit's ListenStream,
    else its daemon's configuration, the daemon known by the unit's name or by the program its
    ExecStart runs (a `web.service` running nginx -c FILE reads FILE)."""
    if listen:
        return sorted({p for v in listen if (p := port_of_listen(v))}), "ListenStream="
    argv = _argv(list(exec_start))
    program = argv[0].rsplit("/", 1)[-1] if argv else ""
    for pattern, reader in BY_NAME:
        if pattern.match(service) or (program and pattern.match(program)):
            ports, where = reader(guest, argv)
            return sorted(set(ports)), where
    return [], ""
