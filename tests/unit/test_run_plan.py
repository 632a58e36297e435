"""How a converted guest runs (issue 24, --run): plans made from trees built here; the start
script is checked by a real sh, compose/k8s text by reading it back. No root, no daemon."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from test_guest_services import _link, _put, systemd_guest

from vm2c_tui.errors import Vm2cError
from vm2c_tui.image.compose import compose_text, k8s_text
from vm2c_tui.image.dockerfile import dockerfile_text, run_commands
from vm2c_tui.image.runlayer import layer_bytes
from vm2c_tui.inspect.guestpath import GuestRoot
from vm2c_tui.inspect.services import read_services
from vm2c_tui.plan.runplan import parse_mode, plan_run
from vm2c_tui.plan.runservice import sh_word


def _guest(tmp_path):
    root = systemd_guest(tmp_path / "g")
    _put(root, "/usr/bin/ssh-keygen", "elf")
    return read_services(GuestRoot(str(root)))


def test_system_mode_for_systemd(tmp_path):
    plan = plan_run("system", _guest(tmp_path), "/bin/bash")
    assert {"ENV container=docker", "STOPSIGNAL SIGRTMIN+3", 'CMD ["/lib/systemd/systemd"]'} <= set(plan.config)
    files = {f.path: f for f in plan.files}
    assert files["/etc/systemd/system/getty@.service"].link == "/dev/null"  # the guest has it: masked
    assert "/etc/systemd/system/systemd-udevd.service" not in files  # it has no udev: nothing to mask
    assert files["/etc/machine-id"].text == "" and not files["/etc/machine-id"].link
    unit = files["/etc/systemd/system/vm2c-ssh-hostkeys.service"].text
    assert "ExecStart=/usr/bin/ssh-keygen -A" in unit and "Before=ssh.service" in unit
    assert files["/etc/systemd/system/multi-user.target.wants/vm2c-ssh-hostkeys.service"].link.endswith(
        "vm2c-ssh-hostkeys.service")
    assert sorted(plan.active) == ["app.service", "nginx.service", "ssh.service"]  # the oneshot is inactive once done
    assert plan.ports == [80, 631, 2222, 8443] and "/var/www" in plan.volumes
    v1 = plan.run_args("1")
    assert "/sys/fs/cgroup:/sys/fs/cgroup:ro" in v1 and v1.count("--tmpfs") == 3
    assert "--cgroupns=host" in plan.run_args("2") and "/sys/fs/cgroup:/sys/fs/cgroup:rw" in plan.run_args("2")
    kept = plan_run("system", _guest(tmp_path / "k"), "/bin/sh", sanitized=False)
    assert not any("hostkeys" in f.path for f in kept.files)  # keys kept in the image: nothing to make


def test_the_run_layer_tar_has_no_directories(tmp_path):
    import io
    import tarfile

    plan = plan_run("system", _guest(tmp_path), "/bin/sh")
    with tarfile.open(fileobj=io.BytesIO(layer_bytes(plan))) as tar:
        members = tar.getmembers()
    assert members and not any(m.isdir() for m in members)  # the guest's /etc keeps its owner and mode
    assert all(m.uid == 0 and m.gid == 0 and not m.name.startswith("/") for m in members)
    text = dockerfile_text("/bin/sh", {"a": "b"}, run=plan)
    assert text.splitlines()[:3] == ["FROM scratch", "ADD img.tar /", "ADD run/run.tar /"]
    assert text.rstrip().endswith('CMD ["/lib/systemd/systemd"]')


def test_service_mode_folds_the_unit_into_a_start_script(tmp_path):
    guest = _guest(tmp_path)
    plan = plan_run("service:app", guest, "/bin/sh")
    assert "USER app:app" in plan.config and "WORKDIR /srv/app" in plan.config
    assert 'ENV MODE="prod"' in plan.config and 'ENV GREETING="hello world"' in plan.config
    assert 'VOLUME ["/var/lib/app"]' in plan.config
    assert plan.config[-2:] == ['ENTRYPOINT ["/bin/sh", "/usr/local/sbin/vm2c-start"]', "CMD []"]
    script = plan.files[0].text
    assert "if [ -r /etc/default/app ]; then envfile /etc/default/app; fi" in script
    assert script.rstrip().endswith("exec /srv/app/run2")
    subprocess.run(["sh", "-n", "-c", script], check=True)  # a real shell parses it

    nginx = plan_run("service:nginx", guest, "/bin/sh")
    lines = nginx.files[0].text.splitlines()
    assert lines[-2] == "/usr/sbin/nginx -t -q -g 'daemon on; master_process on;'"  # the config check first
    assert lines[-1] == "exec /usr/sbin/nginx -g 'daemon off; master_process on;'"  # forking: the foreground form
    assert "EXPOSE 80" in nginx.config and "EXPOSE 8443" in nginx.config

    ssh = plan_run("service:ssh", guest, "/bin/sh").files[0].text
    assert "/usr/bin/ssh-keygen -A" in ssh and ssh.rstrip().endswith("exec /usr/sbin/sshd -D $SSHD_OPTS")


def test_an_environment_file_is_read_not_run(tmp_path):
    from vm2c_tui.plan.runservice import ENVFILE

    env = tmp_path / "app.env"
    env.write_text('# comment\nA=one two\nB="quoted value"\nC=$(touch ' + str(tmp_path / "ran") + ')\n'
                   "bad-key=x\n;other\nD='single'")  # no final newline
    out = subprocess.run(["sh", "-c", ENVFILE + '\nenvfile "$1"; printf "[%s]" "$A" "$B" "$C" "$D"', "sh", env],
                         capture_output=True, text=True, check=True).stdout
    assert out == f"[one two][quoted value][$(touch {tmp_path / 'ran'})][single]"
    assert not (tmp_path / "ran").exists()


def test_systemd_words_keep_their_expansions():
    assert sh_word("$SSHD_OPTS") == "$SSHD_OPTS"  # split into words, as systemd does
    assert sh_word("--dir=${DATA}") == '--dir="${DATA}"'  # one word
    assert sh_word("it's") == "'it'\"'\"'s'"
    words = " ".join(sh_word(w) for w in ("$A", "--d=${DATA}", "$(touch /tmp/vm2c-pwned)", "`id`", "*", "a$DATA/b"))
    out = subprocess.run(["sh", "-c", f"A='x y'; DATA=/d; printf '[%s]' {words}"],
                         capture_output=True, text=True, check=True).stdout
    assert out == "[x][y][--d=/d][$(touch /tmp/vm2c-pwned)][`id`][*][a/d/b]"  # only systemd's expansions
    assert not os.path.exists("/tmp/vm2c-pwned")


@pytest.mark.parametrize(("unit", "why"), [
    ("[Service]\nType=forking\nExecStart=/usr/sbin/mydaemon\n", "Type=forking"),
    ("[Service]\nExecStart=@/usr/bin/thing thing-name\n", r"argv\[0\]"),
    ("[Service]\nExecStart=/usr/bin/thing --home %h\n", "specifier"),  # a passwd lookup: not resolved
    ("[Service]\nExecStart=/usr/bin/thing 'unclosed\n", "cannot read"),
    ("[Service]\nUser=a b\nExecStart=/usr/bin/thing\n", "not a user or group name"),
    ("[Service]\nWorkingDirectory=/srv/x\\y\nExecStart=/usr/bin/thing\n", "not a plain absolute path"),
])
def test_service_mode_refuses_what_it_cannot_fold(tmp_path, unit, why):
    root = systemd_guest(tmp_path / "g")
    _put(root, "/lib/systemd/system/odd.service", unit)
    _link(root, "/etc/systemd/system/multi-user.target.wants/odd.service", "/lib/systemd/system/odd.service")
    with pytest.raises(Vm2cError, match=why):
        plan_run("service:odd", read_services(GuestRoot(str(root))), "/bin/sh")


def test_modes_the_guest_does_not_offer(tmp_path):
    guest = _guest(tmp_path)
    with pytest.raises(Vm2cError, match="no service 'cron'.*offers: system, service:app"):
        plan_run("service:cron", guest, "/bin/sh")  # masked in the guest
    bare = tmp_path / "bare"
    _put(bare, "/bin/sh", "elf")
    with pytest.raises(Vm2cError, match="the guest has no init"):
        plan_run("system", read_services(GuestRoot(str(bare))), "/bin/sh")
    assert plan_run("shell", None, "/bin/sh").config[-1] == 'CMD ["/bin/sh"]'
    with pytest.raises(Vm2cError, match="one of system"):
        parse_mode("services")
    sysv = tmp_path / "sysv"
    _put(sysv, "/sbin/init", "elf")
    plan = plan_run("system", read_services(GuestRoot(str(sysv))), "/bin/sh")
    assert plan.config[-1] == 'CMD ["/sbin/init"]' and plan.files == [] and "keep running" in plan.notes[0]


def test_compose_and_kubernetes_say_the_same(tmp_path):
    plan = plan_run("system", _guest(tmp_path), "/bin/sh")
    compose = compose_text("registry.example/vm2c/web:1", plan)
    assert '    image: "registry.example/vm2c/web:1"' in compose and '      - "80:80"' in compose
    assert '      - "/sys/fs/cgroup:/sys/fs/cgroup:ro"' in compose and '  web-var-www: {}' in compose
    k8s = k8s_text("registry.example/vm2c/web:1", plan)
    assert "kind: StatefulSet" in k8s and "kind: Service" in k8s and "containerPort: 80" in k8s
    run = run_commands("registry.example/vm2c/web:1", plan, "/bin/sh")[0]
    assert "--tmpfs /run/lock" in run and "-v web-var-www:/var/www" in run and "-p 80:80" in run
    assert json.loads(compose.splitlines()[3].split(": ", 1)[1]) == "registry.example/vm2c/web:1"


def test_the_daemonless_image_config_says_what_the_dockerfile_says():
    """--save without a daemon turns the plan's instructions into the config a build would make."""
    from vm2c_tui.image.loadable import image_config

    lines = ['ENV PATH=/usr/bin:/bin', 'ENV GREETING="a b \\"c\\""', "USER www-data:www-data", "WORKDIR /srv",
             "EXPOSE 80", "EXPOSE 443", 'VOLUME ["/var/www", "/srv"]', 'ENTRYPOINT ["/bin/sh", "/s"]', "CMD []",
             "STOPSIGNAL SIGRTMIN+3"]
    cfg = image_config(lines, {"a": "b"})
    assert cfg["Env"] == ["PATH=/usr/bin:/bin", 'GREETING=a b "c"'] and cfg["User"] == "www-data:www-data"
    assert cfg["WorkingDir"] == "/srv" and cfg["ExposedPorts"] == {"80/tcp": {}, "443/tcp": {}}
    assert cfg["Volumes"] == {"/var/www": {}, "/srv": {}} and cfg["Entrypoint"] == ["/bin/sh", "/s"]
    assert cfg["Cmd"] is None and cfg["StopSignal"] == "SIGRTMIN+3" and cfg["Labels"] == {"a": "b"}
    with pytest.raises(ValueError, match="not an instruction"):
        image_config(["RUN rm -rf /"], {})


def test_a_port_this_machine_listens_on_is_published_elsewhere():
    """The guest's sshd wants 22 where the host's own sshd listens: compose.yaml and the run line
    move the host side (a real listening socket stands for the host's service)."""
    import socket

    from vm2c_tui.host.system import publish

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        free = next(p for p in range(40000, 40100) if p not in {port} and p + 10000 != port)
        moved = publish([port, free])
        assert moved[1] == (free, free) and moved[0][1] == port and moved[0][0] not in (port, free)
    assert publish([port]) == [(port, port)]  # nothing listens there any more


def test_an_environment_value_reaches_the_image_as_written(tmp_path):
    """Non-ASCII stays itself (Docker reads no \\u escapes); a control character is refused, never
    written into a Dockerfile line."""
    from vm2c_tui.image.loadable import image_config

    root = systemd_guest(tmp_path / "g")
    unit = root / "lib/systemd/system/app.service"
    unit.write_text(unit.read_text().replace('"GREETING=hello world"', '"GREETING=grüß dich \\"du\\""'))
    plan = plan_run("service:app", read_services(GuestRoot(str(root))), "/bin/sh")
    assert 'ENV GREETING="grüß dich \\"du\\""' in plan.config
    assert 'GREETING=grüß dich "du"' in image_config(plan.config, {})["Env"]
    unit.write_text(unit.read_text().replace('"GREETING=grüß dich \\"du\\""', '"GREETING=a\tb"'))  # a real tab
    with pytest.raises(Vm2cError, match="Environment GREETING holds a control character"):
        plan_run("service:app", read_services(GuestRoot(str(root))), "/bin/sh")


def test_an_image_config_survives_its_instructions():
    """`vm2c export` re-creates an image's config from instructions: each value comes back as it
    was ($ not expanded, quotes, backslashes and non-ASCII kept)."""
    from vm2c_tui.image.loadable import image_config
    from vm2c_tui.plan.runplan import config_lines, dq, undq

    cfg = {"Env": ["PATH=/usr/bin:/bin", 'MOTD=grüß "$USER" \\o/'], "Labels": {"org.vm2c.os": "Débian $(id)"},
           "User": "www-data", "WorkingDir": "/srv", "StopSignal": "SIGRTMIN+3",
           "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/var/www": {}}, "Entrypoint": ["/bin/sh", "/s"],
           "Cmd": ["-x"]}
    lines = config_lines(cfg)
    assert 'ENV MOTD="grüß \\"\\$USER\\" \\\\o/"' in lines and "EXPOSE 80/tcp" in lines
    labels = {k: undq(v) for k, _, v in (line[6:].partition("=") for line in lines if line.startswith("LABEL "))}
    back = image_config([line for line in lines if not line.startswith("LABEL ")], labels)
    assert back == cfg
    assert dq("a\nb") == '"a b"'  # no line break ever reaches a Dockerfile line


def test_a_users_service_starts_as_root_and_runs_as_the_user(tmp_path):
    """With setpriv in the guest: no USER in the image; the runtime directory is made and given
    to the user as root, ExecStartPre and ExecStart run as the user, a '+' step as root."""
    root = systemd_guest(tmp_path / "g")
    _put(root, "/usr/bin/setpriv", "elf")
    unit = root / "lib/systemd/system/app.service"
    unit.write_text(unit.read_text() + "RuntimeDirectory=app\nExecStartPre=/srv/app/check\n"
                    "ExecStartPre=+/srv/app/prepare-as-root\n")
    plan = plan_run("service:app", read_services(GuestRoot(str(root))), "/bin/sh")
    assert not any(c.startswith("USER ") for c in plan.config) and "WORKDIR /srv/app" in plan.config
    lines = plan.files[0].text.splitlines()
    drop = '/usr/bin/setpriv --reuid=app --regid="$vm2c_group" --init-groups --'
    assert "vm2c_group=app" in lines and 'mkdir -p /run/app && chown app:"$vm2c_group" /run/app' in lines
    assert f"{drop} /srv/app/check" in lines and "/srv/app/prepare-as-root" in lines
    assert lines[-1] == f"exec {drop} /srv/app/run2"
    assert any("runs the service as app (setpriv)" in n for n in plan.notes)
    subprocess.run(["sh", "-n", "-c", plan.files[0].text], check=True)


def test_a_template_instance_has_its_specifiers_resolved(tmp_path):
    """postgresql@15-main-style units: %i the instance, %I unescaped ('-' is '/'), %t /run."""
    root = systemd_guest(tmp_path / "g")
    _put(root, "/lib/systemd/system/pg@.service", "[Service]\nUser=postgres\n"
                                                   "ExecStart=/usr/bin/pg --cluster %I --pid %t/pg-%i.pid --as %u\n")
    _link(root, "/etc/systemd/system/multi-user.target.wants/pg@15-main.service", "/lib/systemd/system/pg@.service")
    plan = plan_run("service:pg@15-main", read_services(GuestRoot(str(root))), "/bin/sh")
    assert plan.files[0].text.rstrip().endswith("exec /usr/bin/pg --cluster 15/main --pid /run/pg-15-main.pid --as postgres")


def test_specifiers_resolve_inside_their_word():
    """%I's unescaped space stays in its word (systemd resolves after splitting); %% is a percent."""
    from vm2c_tui.inspect.services import Service
    from vm2c_tui.plan.runservice import words

    unit = Service("vpn@my\\x20net.service", "systemd", "/lib/systemd/system/vpn@.service")
    assert words("/usr/bin/vpn --name %I --rate 50%% %i", "vpn", unit) == (
        ["/usr/bin/vpn", "--name", "my net", "--rate", "50%", "my\\x20net"], False)
    with pytest.raises(Vm2cError, match=r"does not resolve \(%h\)"):
        words("/usr/bin/vpn --home %h", "vpn", unit)
