"""A user who can write the output directory must not make root overwrite another file:
symlinks (and FIFOs, directories) planted at every fixed output name are refused, the victim
is unchanged, and what vm2c writes is 0600 (img.tar holds the guest's /etc/shadow)."""

from __future__ import annotations

import os
import stat
import tarfile

import pytest
from conftest import vm2c

from vm2c_tui.errors import Vm2cError
from vm2c_tui.host.outfile import OutputFile, refuse_odd

SECRET = b"root's own file\n"


@pytest.fixture
def victim(tmp_path):
    v = tmp_path / "victim"
    v.write_bytes(SECRET)
    return v


@pytest.mark.parametrize("planted", ["img.tar", "img.tar.partial"])
def test_a_symlink_at_either_name_is_refused(tmp_path, victim, planted):
    out = tmp_path / "out"
    out.mkdir()
    (out / planted).symlink_to(victim)
    with pytest.raises(Vm2cError, match="symbolic link"):
        refuse_odd(out / "img.tar")
    with pytest.raises(Vm2cError, match="symbolic link"):
        OutputFile(out / "img.tar")
    assert victim.read_bytes() == SECRET and (out / planted).is_symlink()






def test_a_partial_swapped_for_a_link_midway_is_not_moved_into_place(tmp_path, victim):
    with OutputFile(tmp_path / "img.tar") as out:
        os.write(out.fd, b"guest data")
        os.unlink(tmp_path / "img.tar.partial")  # the attacker's swap, while vm2c writes
        (tmp_path / "img.tar.partial").symlink_to(victim)
        with pytest.raises(Vm2cError, match="replaced while vm2c wrote it"):
            out.commit()
    assert not (tmp_path / "img.tar").exists() and victim.read_bytes() == SECRET
    assert (tmp_path / "img.tar.partial").is_symlink()  # not ours: left alone, never followed




# --- the commands, as root --------------------------------------------------------------------

@pytest.mark.parametrize("planted", ["img.tar", "img.tar.partial", "Dockerfile", "Dockerfile.partial"])
@pytest.mark.parametrize("engine", ["kernel", "userspace"])
def test_archive_refuses_a_planted_link_before_any_work(disks, tmp_path, victim, planted, engine, no_leaks):
    out = tmp_path / "out"
    out.mkdir()
    (out / planted).symlink_to(victim)
    proc = vm2c("archive", disks.get("bare"), "-o", out, "--engine", engine)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "symbolic link" in proc.stderr, proc.stderr
    assert victim.read_bytes() == SECRET
    assert sorted(os.listdir(out)) == [planted]  # no tar was started


@pytest.mark.parametrize("engine", ["kernel", "userspace"])
def test_archive_output_is_0600_with_colons_in_its_name(disks, tmp_path, engine):
    out = tmp_path / "host:out"  # tar --force-local: a file, not a remote host
    vm2c("archive", disks.get("bare"), "-o", out, "--engine", engine, check=True)
    for name in ("img.tar", "Dockerfile"):
        assert stat.S_IMODE(os.lstat(out / name).st_mode) == 0o600, name
    with tarfile.open(out / "img.tar") as tf:
        assert tf.getmembers()


def test_convert_save_refuses_a_planted_link(disks, tmp_path, victim):
    dest = tmp_path / "app.tar"
    dest.symlink_to(victim)
    proc = vm2c("convert", disks.get("bare"), "--tag", "vm2c-test/x:1", "--save", dest,
                env={**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert proc.returncode == 2 and "symbolic link" in proc.stderr, proc.stderr
    assert victim.read_bytes() == SECRET
