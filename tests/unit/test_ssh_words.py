"""What vm2c sends to a remote shell: each value one quoted word, never pasted (issue 23)."""

from __future__ import annotations

import shlex

import pytest

from vm2c_tui.errors import Vm2cError

HOSTILE = ["a b", "x;reboot", "$(id)", "`id`", "it's", "-rf", "*", "a\nb"]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_remote_word_arrives_as_itself(value):
    from vm2c_tui.source.ssh import Remote

    argv = Remote.parse("ssh://root@host:2222").argv(["tar", f"--exclude={value}", "."])
    assert argv[-2] == "host" and argv[-3] == "--"
    assert shlex.split(argv[-1]) == ["tar", f"--exclude={value}", "."]  # what the remote's sh will see


def test_service_names_are_arguments_of_a_fixed_script():
    from vm2c_tui.source.ssh import SERVICES, Remote

    remote = Remote.parse("ssh://deploy@host", sudo=True)
    words = shlex.split(remote.argv(["sh", "-c", SERVICES, "sh", "stop", "nginx", "php8.2-fpm"])[-1])
    assert words[:4] == ["sudo", "-n", "--", "sh"] and words[5] == SERVICES
    assert words[6:] == ["sh", "stop", "nginx", "php8.2-fpm"]


@pytest.mark.parametrize("name", ["a;b", "-x", "$(id)", "a b", ""])
def test_a_service_name_that_is_not_one_is_refused(name):
    from vm2c_tui.convert.options import Options

    with pytest.raises(Vm2cError, match="not a service name"):
        Options(stop_services=[name])


def test_compress_adds_tar_flag_and_only_known_tools():
    from pathlib import Path

    from vm2c_tui.archive.gnutar import TarSpec, tar_command
    from vm2c_tui.convert.options import Options

    assert "--zstd" in tar_command(TarSpec(Path("/"), compress="zstd"))
    assert not any(w in tar_command(TarSpec(Path("/"))) for w in ("--zstd", "--gzip"))
    with pytest.raises(Vm2cError, match="zstd or gzip"):
        Options(compress="xz")


@pytest.mark.parametrize("url,words", [
    ("ssh://-oProxy", "starting with '-'"), ("ssh://host:70000", "out of range"),
    ("ssh://", "not an ssh://"), ("ssh://a b", "not an ssh://"),
])
def test_bad_addresses_are_one_line(url, words):
    from vm2c_tui.source.ssh import Remote

    with pytest.raises(Vm2cError, match=words):
        Remote.parse(url)


@pytest.mark.parametrize("stderr", ["Connection to 127.0.0.1 closed by remote host.\n",
                                    "client_loop: send disconnect: Broken pipe\n",
                                    "Read from remote host h: Connection reset by peer\n"])
def test_a_dropped_link_is_one_line_whichever_side_noticed(stderr):
    """ssh words a dropped session by who noticed first (CI saw both of the first two for one kill)."""
    from vm2c_tui.source.ssh import Remote

    error = Remote.parse("ssh://root@host").explain(stderr)
    assert str(error).startswith("ssh://root@host: the connection was lost midway (ssh: ") and error.exit_code == 2


def test_a_refused_connection_is_not_called_dropped():
    from vm2c_tui.source.ssh import Remote

    error = Remote.parse("ssh://root@host").explain("ssh: connect to host host port 22: Connection refused\n")
    assert "Connection refused" in str(error) and "lost midway" not in str(error)
