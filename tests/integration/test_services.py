"""`vm2c services` on a real Debian guest (issue 24): debootstrap'ed with systemd, nginx and
sshd by the tests (tests/remotehost.py), as an ext4 partition dump; both engines."""

from __future__ import annotations

import json

from conftest import validated, vm2c


def test_services_of_a_debian_guest(debian_dump, no_leaks):
    doc = validated("services", json.loads(vm2c("services", debian_dump, "--json", check=True).stdout))
    assert doc["init"] == "systemd" and doc["init_path"] == "/usr/lib/systemd/systemd"  # merged /usr
    by = {s["name"]: s for s in doc["services"]}
    assert by["nginx.service"]["ports"] == [80] and by["ssh.service"]["ports"] == [22]
    assert by["nginx.service"]["exec_start"][0].startswith("/usr/sbin/nginx")
    assert by["ssh.service"]["exec_start_pre"] == ["/usr/sbin/sshd -t"]
    dirs = {d["path"]: d for d in doc["data_dirs"]}
    assert "/var/www" in dirs and dirs["/var/www"]["bytes"] > 0 and "/home" in dirs
    assert {"system", "service:nginx", "service:ssh", "shell"} <= set(doc["run_modes"])
    user = json.loads(vm2c("services", debian_dump, "--json", "--engine", "userspace", check=True).stdout)
    assert user == doc  # the user-space engine reads the same guest the same way
    text = vm2c("services", debian_dump, check=True).stdout
    assert "Init: systemd" in text and "nginx.service" in text and "/var/www" in text
