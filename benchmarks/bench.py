"""vm2c benchmarks, every ratio measured side by side in one run (needs root).

    .venv/bin/python benchmarks/bench.py [--quick]

Builds (once, cached in .cache/bench) a 20 GiB sparse GPT disk whose LVM root LV
holds a copy of this machine's /usr/share and /usr/lib/x86_64-linux-gnu
(>= 1 GiB in >= 50,000 files), then measures:
  1. vm2c inspect of the 20 GiB LVM disk (target < 2 s);
  2. vm2c archive vs plain `tar -C MNT -cf - . | cat > FILE` on the same mounted
     filesystem (target >= 90 % of its throughput), vm2c's peak memory (< 150 MB),
     and what each raw view (fuse, copy) costs for qcow2, vdi and vmdk;
  3. vm2c convert --method import vs the classic recipe (tar to a file, then
     docker build FROM scratch + ADD) and vs `docker import` of a ready tar, with
     the daemon's data root on a fresh journaled ext4 (journaled_fs says why), the
     image cold (page cache dropped before each step; `convert-overlay2-warm`: cached);
  4. the user-space engine (--engine userspace) against the kernel route, per format.
Writes benchmarks/results.json (merged, so `--only=archive,progress` re-measures a part)
and benchmarks/results.md. Do not run tests at the same time: the figures are wall-clock.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from diskbuilder import build as b  # noqa: E402
from diskbuilder.layout import Disk, Fs, Lv, Part, Vg  # noqa: E402
from vm2c_tui.image.dockerd import PrivateDockerd  # noqa: E402

CACHE = REPO / ".cache" / "bench"
VM2C = [sys.executable, "-m", "vm2c_tui"]
RUNS = 3
SOURCES = ["/usr/share", "/usr/lib/x86_64-linux-gnu"]


def sh(*cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, **kw)


def build_disk() -> Path:
    raw = CACHE / "big.raw"
    if raw.exists():
        return raw
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as t:
        tree = Path(t) / "root"
        (tree / "etc").mkdir(parents=True)
        (tree / "etc/os-release").write_text('PRETTY_NAME="Bench Linux"\nID=bench\n')
        (tree / "etc/fstab").write_text("LABEL=benchroot / ext4 defaults 0 1\n")
        (tree / "sbin").mkdir()
        shutil.copy2("/bin/busybox", tree / "sbin/init")
        (tree / "bin").mkdir()
        (tree / "bin/sh").symlink_to("/sbin/init")
        for src in SOURCES:
            dest = tree / src.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            sh("cp", "-a", src, dest)
        disk = Disk("gpt", [Part(512, "linux", Fs("ext4", 512, "bench-boot", None, "boot")),
                            Part(3072, "lvm", Vg("benchvg", [Lv("root", Fs("ext4", 2600, "bench-root", tree,
                                                                            "benchroot"))]))],
                    size_mib=20 * 1024)
        b.build_raw(disk, raw)
    return raw


def timed(cmd, env=None, durable: bool = False) -> tuple[float, int]:
    """Wall time and the peak RSS of the process itself (polled every 20 ms).
    Dirty pages of the previous run are flushed first, so no run pays for another's writes;
    DURABLE adds the final `sync` to the time (see bench_convert)."""
    subprocess.run(["sync"], check=True)
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:  # no pipe to fill up
        proc = subprocess.Popen([str(c) for c in cmd], env=env, stdout=out, stderr=err)
        peak = 0
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                peak = max(peak, ps.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.02)
        if proc.wait() != 0:  # vm2c's smoke test reports on stdout (exit 3)
            out.seek(0)
            err.seek(0)
            raise RuntimeError(f"{cmd}: exit {proc.returncode}\n{out.read()[-3000:].decode(errors='replace')}"
                               f"{err.read()[-3000:].decode(errors='replace')}")
    if durable:
        subprocess.run(["sync"], check=True)
    return time.monotonic() - start, peak


def drop_caches() -> None:
    """Empty the page cache, as for an image that has just arrived (copied off a hypervisor,
    a VM that ran with cache=none): the common case for a first conversion."""
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3")


def warm_region(raw: Path, off: int, size: int) -> None:
    """Read RAW[off:off+size] into the page cache (the root LV only: not 20 GiB of holes)."""
    with open(raw, "rb", buffering=0) as f:
        for pos in range(off, off + size, 8 << 20):
            os.pread(f.fileno(), min(8 << 20, off + size - pos), pos)


def disk_stat(path: Path) -> list[int]:
    st = os.stat(path)
    return [int(x) for x in Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/stat")
            .read_text().split()]


def wait_for_quiet_disk(path: Path, quiet: float = 2.0, cap: float = 180.0) -> float:
    """Until the disk holding PATH has had nothing in flight and no new write or discard
    for QUIET seconds; returns the time waited."""
    start = last_change = time.monotonic()
    prev = None
    while time.monotonic() - start < cap:
        f = disk_stat(path)
        now = (f[4], f[11] if len(f) > 11 else 0)  # writes completed, discards completed
        if f[8] or now != prev:  # f[8]: I/Os in flight
            last_change = time.monotonic()
        prev = now
        if time.monotonic() - last_change >= quiet:
            break
        time.sleep(0.2)
    return time.monotonic() - start


def median(xs):
    return statistics.median(xs)


def bench_inspect(raw: Path) -> dict:
    cold = timed([*VM2C, "inspect", "--json", raw])[0]  # first run after the disk was written
    times = [timed([*VM2C, "inspect", "--json", raw])[0] for _ in range(RUNS)]
    return {"inspect_s": median(times), "inspect_first_s": cold}


def bench_inspect_formats(raw: Path, work: Path) -> dict:
    """#21 item 6: `vm2c inspect` of the bench disk in each format, the kernel route against `auto`
    (as root with the user-space engine installed: inspected in user space), alternated."""
    out = {}
    for fmt in ("raw", "qcow2", "vdi", "vmdk"):
        img = raw if fmt == "raw" else work / f"big.{fmt}"
        if fmt != "raw":
            sh("qemu-img", "convert", "-O", fmt, str(raw), str(img))
        kernel, auto = [], []
        for _ in range(RUNS):
            kernel.append(timed([*VM2C, "inspect", "--engine", "kernel", "--json", img])[0])
            auto.append(timed([*VM2C, "inspect", "--json", img])[0])
        out[f"inspect_kernel_{fmt}_s"], out[f"inspect_auto_{fmt}_s"] = median(kernel), median(auto)
        if fmt != "raw":
            img.unlink()
    return out


def root_offset(raw: Path) -> tuple[int, int]:
    doc = json.loads(sh(*VM2C, "inspect", "--json", raw).stdout)
    for p in doc["partitions"]:
        for v in p["volumes"]:
            if v["id"] == "benchvg/root":
                from vm2c_tui.read.kernel.inspect import inspect_image

                vol = inspect_image(raw).find("benchvg/root")
                return vol.offset, vol.size
    raise RuntimeError("no root LV")


@contextmanager
def fresh_mount(raw: Path, off: int, size: int, mnt: Path):
    """The root LV read-only on a new loop device (a cold ext4 cache), as the recipe does by hand."""
    loop = sh("losetup", "-f", "--show", "-r", "-o", off, "--sizelimit", size, raw).stdout.decode().strip()
    try:
        sh("mount", "-o", "ro,noload", loop, mnt)
        try:
            yield mnt
        finally:
            sh("umount", mnt)
    finally:
        sh("losetup", "-d", loop)


def bench_archive(raw: Path, work: Path) -> dict:
    """vm2c archive against plain tar, each reading a freshly mounted filesystem.

    vm2c always mounts afresh (a new loop device starts with a cold ext4 page cache),
    so the baseline does too. The image file itself is cold for the `cold_` rows (page cache
    dropped: a disk that has just arrived) and cached for the others."""
    from vm2c_tui.archive import gnutar as arc

    off, size = root_offset(raw)
    mnt = work / "mnt"
    mnt.mkdir()

    def on_fresh_mount(cmd_for) -> float:
        with fresh_mount(raw, off, size, mnt):
            return timed(cmd_for(mnt))[0]

    out = work / "plain.tar"
    faithful = arc.tar_command(arc.TarSpec(mnt), str(out))
    with fresh_mount(raw, off, size, mnt):
        data = int(sh("du", "-sb", mnt).stdout.split()[0])
        files = int(sh("sh", "-c", f"find {mnt} | wc -l").stdout)
    plain, flags, vm2c, peaks, us, us_peaks, noahead, na_peaks = [], [], [], [], [], [], [], []
    cold_plain, cold_vm2c, cold_buffered = [], [], []
    no_readahead = {**os.environ, "VM2C_READAHEAD": "0"}
    buffered = {**os.environ, "VM2C_LOOP_DIRECT_IO": "0"}

    def vm2c_archive(engine: str = "kernel", env=None) -> tuple[float, int]:
        res = timed([*VM2C, "archive", raw, "-o", work / "v", "--no-fstab", "--preset", "none",
                     "--no-sanitize", "--engine", engine], env=env)
        shutil.rmtree(work / "v")
        return res

    for _ in range(RUNS):
        # a cold image: vm2c's loop device reads it with direct I/O (pagecache.py), or is made not to
        drop_caches()
        cold_plain.append(on_fresh_mount(lambda m: ["sh", "-c", f"tar -C {m} -cf - . | cat > {out}"]))
        out.unlink()
        drop_caches()
        cold_vm2c.append(vm2c_archive()[0])
        drop_caches()
        cold_buffered.append(vm2c_archive(env=buffered)[0])
        warm_region(raw, off, size)  # the other rows: the image cached, as after a first run
        plain.append(on_fresh_mount(lambda m: ["sh", "-c", f"tar -C {m} -cf - . | cat > {out}"]))
        out.unlink()
        flags.append(on_fresh_mount(lambda m: faithful))
        out.unlink()
        for engine, env, times, pk in (("kernel", None, vm2c, peaks), ("kernel", no_readahead, noahead, na_peaks),
                                       ("userspace", None, us, us_peaks)):
            t, peak = vm2c_archive(engine, env)
            times.append(t)
            pk.append(peak)
    return {"data_bytes": data, "files": files, "plain_tar_s": median(plain),
            "cold_plain_tar_s": median(cold_plain), "cold_vm2c_archive_s": median(cold_vm2c),
            "cold_vm2c_buffered_s": median(cold_buffered), "cold_runs": [cold_plain, cold_vm2c, cold_buffered],
            "faithful_tar_s": median(flags), "vm2c_archive_s": median(vm2c),
            "throughput_ratio": median(plain) / median(vm2c), "vs_faithful_ratio": median(flags) / median(vm2c),
            "vm2c_peak_rss_mb": max(peaks) / 2**20, "vm2c_archive_us_s": median(us),
            "throughput_ratio_us": median(plain) / median(us), "vm2c_peak_rss_us_mb": max(us_peaks) / 2**20,
            "vm2c_archive_noahead_s": median(noahead), "throughput_ratio_noahead": median(plain) / median(noahead),
            "plain_tar_runs": plain, "vm2c_archive_runs": vm2c, "vm2c_archive_noahead_runs": noahead,
            "vm2c_archive_us_runs": us}


def bench_progress(raw: Path, work: Path) -> dict:
    """What the progress events cost, at their worst: the same warm-cache tar with and
    without them, both without the read-ahead (it would hide the cost) and writing to
    tmpfs (ext4's block freeing here made a tar's system time swing 0.65-1.2 s). The
    progress side starts its own walk of the tree (treescan.py) inside the timing."""
    from vm2c_tui.archive import gnutar as arc
    from vm2c_tui.archive.treescan import TreeScan
    from vm2c_tui.convert.conversion import Conversion, Options
    from vm2c_tui.plan.excludes import Filters

    bare, withp, rates = [], [], []
    os.environ["VM2C_READAHEAD"] = "0"
    try:
        with Conversion(raw, Options(use_fstab=False, preset="none", sanitize=False)) as conv:
            conv.inspect()
            conv.plan()
            p = conv.prepare()
            p.tree.scan.join()
            shm = Path("/dev/shm")
            room = shm.is_dir() and shutil.disk_usage(shm).free > 2 * p.expected_bytes
            out = Path(tempfile.mkdtemp(dir=shm if room else work)) / "p.tar"
            subprocess.run(arc.tar_command(p.tree.spec, str(out)), check=True)  # warm the cache
            out.unlink()
            try:
                for _ in range(RUNS * 2):
                    t = time.monotonic()
                    subprocess.run(arc.tar_command(p.tree.spec, str(out)), check=True)
                    bare.append(time.monotonic() - t)
                    out.unlink()
                    events: list = []
                    t = time.monotonic()
                    scan = TreeScan(p.tree.spec.tree, Filters.build(p.tree.spec.excludes, p.tree.spec.user_excludes))
                    arc.write_tar(p.tree.spec, out, total=p.expected_bytes, scan=scan, on_progress=events.append)
                    withp.append(time.monotonic() - t)
                    rates.append(len(events) / withp[-1])
                    out.unlink()
            finally:
                shutil.rmtree(out.parent)
    finally:
        del os.environ["VM2C_READAHEAD"]
    # this VM's noise only ever adds time (one warm tar took 0.9 s to 8.4 s in a row): the
    # fastest run of each is the closest to its own cost, the medians are kept beside it
    return {"tar_bare_s": min(bare), "tar_progress_s": min(withp), "progress_events_per_s": median(rates),
            "progress_cost": min(withp) / min(bare) - 1,
            "progress_cost_median": median(withp) / median(bare) - 1,
            "progress_to": "tmpfs" if room else "disk",
            "tar_bare_runs": bare, "tar_progress_runs": withp}


def bench_views(raw: Path, work: Path) -> dict:
    res = {}
    fmts = {"qcow2": ("qcow2",), "vdi": ("vdi",), "vmdk": ("vmdk",)}
    base = timed([*VM2C, "archive", raw, "-o", work / "r", "--no-fstab", "--preset", "none"])[0]
    shutil.rmtree(work / "r")
    res["raw_archive_s"] = base
    for name, (fmt,) in fmts.items():
        img = CACHE / f"big.{name}"
        if not img.exists():
            b.convert(raw, fmt, img)
        for view in ("fuse", "copy"):
            t = timed([*VM2C, "archive", img, "-o", work / "x", "--no-fstab", "--preset", "none",
                       "--view", view])[0]
            shutil.rmtree(work / "x")
            res[f"{name}_{view}_s"] = t
    return res


def bench_vdi_chain(raw: Path, work: Path) -> dict:
    """#22: a VM whose current state is a differencing VDI over the bench disk's VDI. The kernel
    route's flattened copy (our reader, copy_file_range) against the same archive of the base
    VDI through qemu's copy and FUSE views, and the user-space engine reading the chain in place."""
    import uuid

    from diskbuilder import vms

    base, after, child = CACHE / "big.vdi", work / "after.raw", CACHE / "big-child.vdi"  # beside its parent
    if not base.exists():
        b.convert(raw, "vdi", base)
    b.copy_sparse(raw, after)
    with open(after, "r+b") as f:  # 64 MiB the guest wrote after its snapshot, past the partitions
        f.seek(8 << 30)
        f.write(os.urandom(64 << 20))
    vms.differencing_vdi(base, raw, after, child, uuid.uuid4())
    after.unlink()
    out = {}
    runs = {"vdi_chain_flatten_s": [child], "vdi_base_copy_s": [base, "--view", "copy"],
            "vdi_base_fuse_s": [base, "--view", "fuse"], "vdi_chain_userspace_s": [child, "--engine", "userspace"]}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(RUNS):
        for key, args in runs.items():
            times[key].append(timed([*VM2C, "archive", *args, "-o", work / "x", "--no-fstab", "--preset", "none"])[0])
            shutil.rmtree(work / "x")
    out.update({k: median(v) for k, v in times.items()})
    child.unlink()
    return out


def bench_userspace(raw: Path, work: Path) -> dict:
    """Issue 7: the user-space engine against the kernel route, per format, alternating
    runs; file data rate = bytes of file data in the tar / wall time of the command."""
    res = {}
    for fmt in ("raw", "qcow2", "vdi", "vmdk"):
        img = raw if fmt == "raw" else CACHE / f"big.{fmt}"
        if not img.exists():
            b.convert(raw, fmt, img)
        times: dict[str, list[float]] = {"kernel": [], "userspace": []}
        peak = 0
        for _ in range(RUNS):
            for engine in times:
                t, rss = timed([*VM2C, "archive", img, "-o", work / "u", "--no-fstab", "--preset", "none",
                                "--engine", engine])
                shutil.rmtree(work / "u")
                times[engine].append(t)
                if engine == "userspace":
                    peak = max(peak, rss)
        res[f"us_{fmt}_kernel_s"] = median(times["kernel"])
        res[f"us_{fmt}_userspace_s"] = median(times["userspace"])
        res[f"us_{fmt}_peak_mb"] = peak / 2**20
    return res


@contextmanager
def journaled_fs(work: Path, size_gib: int = 16):
    """A fresh journaled ext4 (mkfs defaults, as a Docker host's /var/lib/docker usually is) on a
    sparse file, loop-mounted with direct I/O so its pages are not cached twice. This machine's
    root filesystem has no journal, and ext4 without one skips every inode freed in the last
    1-5 minutes when it allocates a new one (ialloc.c, recently_deleted): after a round deletes an
    image's 57,000 files, the next 57,000 creations each scan past them. perf put 59 % of a
    `tar -x` there, and its time grew 7 -> 19 -> 29 s over three rounds."""
    img, mnt = work / "dockerfs.img", work / "dockerfs"
    mnt.mkdir(exist_ok=True)
    try:
        sh("truncate", "-s", f"{size_gib}G", img)
        sh("mkfs.ext4", "-q", "-F", img)
        loop = sh("losetup", "-f", "--show", "--direct-io=on", img).stdout.decode().strip()
        try:
            sh("mount", loop, mnt)
            try:
                yield mnt
            finally:
                sh("umount", mnt)
        finally:
            sh("losetup", "-d", loop)
    finally:
        img.unlink(missing_ok=True)
        mnt.rmdir()


def bench_convert(raw: Path, work: Path, driver: str = "overlay2", host_fs: bool = False,
                  cold: bool = False) -> dict:
    """Every time here ends with `sync` (durable: the image is on disk). dockerd syncs the whole
    filesystem under its data root whenever it creates a container (moby/moby#47630), so without
    it a step that starts a container (vm2c's smoke test, the recipe's ADD) pays for flushing its
    own writes and one that doesn't (a bare import) leaves them to the next step.
    The daemon's data root lives on journaled_fs, or with HOST_FS on this machine's own root
    filesystem, as before; the recipe's img.tar stays on the root filesystem either way.
    COLD empties the page cache before every step (drop_caches), except the ready tar of the
    floor, which is read back in first: the floor stays the daemon's work alone."""
    if host_fs:
        return _bench_convert(raw, work, work, driver, f"{driver}-hostfs", cold)
    with journaled_fs(work) as fs:
        return _bench_convert(raw, work, fs, driver, driver if cold else f"{driver}-warm", cold)


def _bench_convert(raw: Path, work: Path, fs: Path, driver: str, key: str, cold: bool) -> dict:
    daemon = PrivateDockerd(base=Path(tempfile.mkdtemp(prefix="vm2c-dockerd-", dir=fs)), storage_driver=driver)
    host = daemon.start()
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_BUILDKIT": "0"}
    import docker

    client = docker.DockerClient(base_url=host, timeout=3600)

    def wipe():
        for img in client.images.list():
            client.images.remove(img.id, force=True)
        client.images.prune()

    off, size = root_offset(raw)
    mnt = Path(tempfile.mkdtemp(prefix="mnt-", dir=work))  # its own: parts run one after another in WORK
    res = {"vm2c_convert_s": [], "vm2c_convert_nosmoke_s": [], "vm2c_convert_us_s": [], "recipe_s": [],
           "vm2c_convert_other_io_s": [], "vm2c_convert_late_wb_s": [], "vm2c_convert_small_queue_s": [],
           "recipe_tar_s": [], "recipe_build_s": [], "import_file_s": [], "vm2c_build_ready_s": [],
           "pipe_import_s": [], "settle_s": []}

    def vm2c_convert(key: str, tag: str, *extra: str, env=env):
        def step():
            res[key].append(timed([*VM2C, "convert", raw, "--tag", tag, "--no-fstab", "--preset", "none",
                                   "--no-sanitize", *extra], env=env, durable=True)[0])
        return step
    # the loop device's other way of reading the image than the one vm2c picks (pagecache.py)
    other_io = {**env, "VM2C_LOOP_DIRECT_IO": "0" if cold else "1"}
    late_writeback = {**env, "VM2C_EARLY_WRITEBACK": "0"}  # writeback.py's head start, side by side
    small_queue = {**env, "VM2C_SOCKET_QUEUE": "0"}  # upload.queue_room's 8 MiB, side by side

    def ready_tar_only(tar: Path):
        """Before an import of the ready TAR: no images, a quiet disk and, cold, only TAR cached
        (the floor stays the daemon's work alone)."""
        wipe()
        settle()
        if cold:
            drop_caches()
            subprocess.run(["cat", tar], stdout=subprocess.DEVNULL, check=True)

    def recipe():
        # the classic recipe: mount, tar cf img.tar, docker build FROM scratch + ADD
        ctx = work / "ctx"  # on the host fs, where it writes fastest (one big file, the page cache)
        ctx.mkdir()
        (ctx / "Dockerfile").write_text("FROM scratch\nADD img.tar /\nCMD [\"/bin/sh\"]\n")
        subprocess.run(["sync"], check=True)
        t0 = time.monotonic()
        with fresh_mount(raw, off, size, mnt):
            sh("tar", "-C", mnt, "-cf", ctx / "img.tar", ".")
        t1 = time.monotonic()
        sh("docker", "-H", host, "build", "-q", "-t", "bench/recipe:1", ctx, env=env)
        subprocess.run(["sync"], check=True)
        t2 = time.monotonic()
        res["recipe_s"].append(t2 - t0)
        res["recipe_tar_s"].append(t1 - t0)
        res["recipe_build_s"].append(t2 - t1)
        ready_tar_only(ctx / "img.tar")
        t3 = time.monotonic()
        with open(ctx / "img.tar", "rb") as f:
            client.api.import_image(src=f, repository="bench/import", tag="1")
        subprocess.run(["sync"], check=True)
        res["import_file_s"].append(time.monotonic() - t3)
        # the same ready tar through vm2c's own client (sendfile, the socket queue, the early
        # writeback): how much of the floor is the stock client's
        ready_tar_only(ctx / "img.tar")
        res["vm2c_build_ready_s"].append(timed([*VM2C, "build", ctx, "--tag", "bench/ready:1", "--method", "import",
                                                "--no-smoke"], env=env, durable=True)[0])
        shutil.rmtree(ctx)

    def pipe_import():
        """The issue's own reference: `tar -cf - . | docker import -` over a fresh mount."""
        subprocess.run(["sync"], check=True)
        t0 = time.monotonic()
        with fresh_mount(raw, off, size, mnt):
            tar = subprocess.Popen(["tar", "-C", mnt, "-cf", "-", "."], stdout=subprocess.PIPE)
            subprocess.run(["docker", "-H", host, "import", "-", "bench/pipe:1"], stdin=tar.stdout, check=True,
                           capture_output=True)
            tar.stdout.close()
            tar.wait()
        subprocess.run(["sync"], check=True)
        res["pipe_import_s"].append(time.monotonic() - t0)

    def settle():
        """Removing a 1.3 GB image may leave the disk busy (this root fs is mounted with
        `discard`, freed blocks are trimmed after the delete returns): wait for quiet. Measured
        here, the disk was quiet at the 2 s minimum after `sync` every time (settle_s)."""
        subprocess.run(["sync"], check=True)
        res["settle_s"].append(wait_for_quiet_disk(daemon.base))

    steps = [vm2c_convert("vm2c_convert_s", "bench/vm2c:1"),
             vm2c_convert("vm2c_convert_nosmoke_s", "bench/vm2c:2", "--no-smoke"),
             vm2c_convert("vm2c_convert_us_s", "bench/vm2c:3", "--engine", "userspace"),
             vm2c_convert("vm2c_convert_other_io_s", "bench/vm2c:4", env=other_io),
             vm2c_convert("vm2c_convert_late_wb_s", "bench/vm2c:5", env=late_writeback),
             vm2c_convert("vm2c_convert_small_queue_s", "bench/vm2c:6", env=small_queue), recipe, pipe_import]
    try:
        for i in range(RUNS):  # rotate the order, so no step always follows the same one
            for step in steps[i % len(steps):] + steps[:i % len(steps)]:
                wipe()
                settle()
                if cold:
                    drop_caches()
                step()
    finally:
        client.close()
        daemon.stop()
        mnt.rmdir()
    out = {k: median(v) for k, v in res.items()}
    out.update({f"{k}:runs": v for k, v in res.items()})
    out["convert_vs_recipe"] = out["vm2c_convert_s"] / out["recipe_s"]
    out["convert_vs_import_floor"] = out["vm2c_convert_s"] / out["import_file_s"]
    out["nosmoke_vs_recipe"] = out["vm2c_convert_nosmoke_s"] / out["recipe_s"]
    out["nosmoke_vs_import_floor"] = out["vm2c_convert_nosmoke_s"] / out["import_file_s"]
    out["convert_vs_pipe"] = out["vm2c_convert_s"] / out["pipe_import_s"]
    out["nosmoke_vs_pipe"] = out["vm2c_convert_nosmoke_s"] / out["pipe_import_s"]
    out["us_vs_recipe"] = out["vm2c_convert_us_s"] / out["recipe_s"]
    out["us_vs_import_floor"] = out["vm2c_convert_us_s"] / out["import_file_s"]
    # each round runs every step once, minutes apart: a ratio within a round leaves out this
    # VM's drift from one round to the next (the same floor took 12.9 and 21.3 s in one hour)
    for name, step in (("convert", "vm2c_convert_s"), ("nosmoke", "vm2c_convert_nosmoke_s"),
                       ("us", "vm2c_convert_us_s")):
        per_round = [a / b for a, b in zip(res[step], res["recipe_s"])]
        out[f"{name}_vs_recipe_per_round"] = per_round
        out[f"{name}_vs_recipe_paired"] = median(per_round)
    out["ready_vs_import_floor"] = out["vm2c_build_ready_s"] / out["import_file_s"]
    out["cold"] = cold
    return {f"{key}:{k}": v for k, v in out.items()}


PARTS = ("inspect", "inspect-formats", "archive", "progress", "views", "convert-overlay2", "convert-vfs", "userspace",
         "vdi-chain")
EXTRA = ("convert-overlay2-warm", "convert-overlay2-hostfs", "convert-vfs-hostfs")  # only when named in --only


def main() -> int:
    global RUNS
    if "--quick" in sys.argv:
        RUNS = 1
    RUNS = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--runs=")), RUNS)
    only = next((a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--only=")), PARTS)
    if unknown := set(only) - set(PARTS + EXTRA):
        sys.exit(f"unknown part(s) {', '.join(sorted(unknown))}; parts: {', '.join(PARTS + EXTRA)}")
    raw = build_disk()
    store = REPO / "benchmarks" / "results.json"
    results = json.loads(store.read_text()) if store.exists() else {}
    results.update({"machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
                               f"{psutil.virtual_memory().total / 2**30:.0f} GiB, kernel {platform.release()}",
                    "runs": RUNS})
    with tempfile.TemporaryDirectory(dir=CACHE) as t:
        work = Path(t)
        steps = {"inspect": lambda: bench_inspect(raw), "inspect-formats": lambda: bench_inspect_formats(raw, work),
                 "archive": lambda: bench_archive(raw, work),
                 "progress": lambda: bench_progress(raw, work), "views": lambda: bench_views(raw, work),
                 "convert-overlay2": lambda: bench_convert(raw, work, "overlay2", cold=True),
                 "convert-overlay2-warm": lambda: bench_convert(raw, work, "overlay2"),
                 "convert-vfs": lambda: bench_convert(raw, work, "vfs", cold=True),
                 "convert-overlay2-hostfs": lambda: bench_convert(raw, work, "overlay2", host_fs=True),
                 "convert-vfs-hostfs": lambda: bench_convert(raw, work, "vfs", host_fs=True),
                 "userspace": lambda: bench_userspace(raw, work), "vdi-chain": lambda: bench_vdi_chain(raw, work)}
        for name in only:
            results.update(steps[name]())
            results[f"runs:{name}"] = RUNS
            store.write_text(json.dumps(results, indent=1, sort_keys=True))
    text = render(results)
    write_table(REPO / "benchmarks" / "results.md", text)
    print(text)
    return 0


BEGIN, END = "<!-- bench.py writes from here -->", "<!-- to here -->"


def write_table(path: Path, table: str) -> None:
    """The table goes between the markers; the story around it (written by people) stays."""
    old = path.read_text() if path.exists() else f"{BEGIN}\n{END}\n"
    head, _, rest = old.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{BEGIN}\n{table.strip()}\n{END}{tail or chr(10)}")


def _runs(r: dict) -> str:
    per = {k.split(":", 1)[1]: v for k, v in r.items() if k.startswith("runs:")}
    if not per:
        return f"{r['runs']} run(s)"
    return ", ".join(f"{v} run(s) for {k}" for k, v in sorted(per.items()))


def _paired(r: dict, d: str, name: str) -> str:
    """The ratio taken within each round as well: its median and range."""
    per = r.get(f"{d}:{name}_vs_recipe_per_round")
    if not per:
        return ""
    return f" (within each round: median {median(per):.2f}, {min(per):.2f}-{max(per):.2f})"


def render(r: dict) -> str:
    gb = r["data_bytes"] / 1e9
    lines = [
        f"Machine: {r['machine']}; median of {_runs(r)}; {gb:.2f} GB in {r['files']} files "
        f"on an LVM root LV of a 20 GiB sparse GPT disk (benchmarks/bench.py).",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| `vm2c inspect` of the 20 GiB LVM disk | {r['inspect_s']:.2f} s (first run {r['inspect_first_s']:.2f} s) "
        f"| < 2 s |",
        *[f"| `vm2c inspect` of it as {fmt}: kernel route / auto (user space) | {r[f'inspect_kernel_{fmt}_s']:.2f} s / "
          f"{r[f'inspect_auto_{fmt}_s']:.2f} s | < 0.5 s |" for fmt in ("raw", "qcow2", "vdi", "vmdk")
          if f"inspect_auto_{fmt}_s" in r],
        f"| plain `tar -cf - . \\| cat > FILE`, fresh mount | {r['plain_tar_s']:.2f} s | |",
        f"| tar with vm2c's flags (xattrs, pax), fresh mount | {r['faithful_tar_s']:.2f} s | |",
        f"| `vm2c archive --engine kernel` (raw, whole command) | {r['vm2c_archive_s']:.2f} s | |",
        f"| the same with `VM2C_READAHEAD=0` (tar alone, as before the read-ahead) "
        f"| {r.get('vm2c_archive_noahead_s', 0):.2f} s | |",
        f"| `vm2c archive --engine userspace` (raw, whole command) | {r.get('vm2c_archive_us_s', 0):.2f} s | |",
        f"| throughput vs plain tar: kernel route | {100 * r['throughput_ratio']:.0f} % | >= 90 % |",
        f"| throughput vs plain tar: kernel route without read-ahead | "
        f"{100 * r.get('throughput_ratio_noahead', 0):.0f} % | |",
        f"| throughput vs plain tar: user-space engine | {100 * r.get('throughput_ratio_us', 0):.0f} % "
        f"| >= 90 % |",
        f"| kernel route vs tar with the same flags | {100 * r['vs_faithful_ratio']:.0f} % | |",
        *([f"| `vm2c archive` of a differencing VDI over the disk (64 MiB changed): flattened by vm2c's reader "
           f"/ user-space engine; the base VDI through qemu's copy / FUSE view | {r['vdi_chain_flatten_s']:.2f} s / "
           f"{r['vdi_chain_userspace_s']:.2f} s; {r['vdi_base_copy_s']:.2f} s / {r['vdi_base_fuse_s']:.2f} s | |"]
          if "vdi_chain_flatten_s" in r else []),
        f"| peak memory: kernel route / user-space engine | {r['vm2c_peak_rss_mb']:.0f} MB / "
        f"{r.get('vm2c_peak_rss_us_mb', 0):.0f} MB | < 150 MB |",
        f"| same tar with progress events ({r['progress_events_per_s']:.1f}/s) vs without, fastest runs "
        f"| {r['tar_progress_s']:.2f} s vs {r['tar_bare_s']:.2f} s ({100 * r['progress_cost']:+.1f} %; "
        f"medians {100 * r.get('progress_cost_median', 0):+.1f} %) | < 3 %, >= 4/s |",
    ]
    for fmt in ("qcow2", "vdi", "vmdk"):
        for view in ("fuse", "copy"):
            t = r[f"{fmt}_{view}_s"]
            lines.append(f"| archive from {fmt} via {view} | {t:.2f} s ({t / r['raw_archive_s']:.1f} x raw) | |")
    for fmt in ("raw", "qcow2", "vdi", "vmdk"):
        if f"us_{fmt}_userspace_s" not in r:
            continue
        k, u = r[f"us_{fmt}_kernel_s"], r[f"us_{fmt}_userspace_s"]
        target = ">= 200 MB/s" if fmt == "raw" else "<= 2.5 x kernel"
        lines.append(f"| [user space] archive from {fmt}: {u:.2f} s vs kernel route {k:.2f} s "
                     f"({u / k:.2f} x), file data {r['data_bytes'] / u / 1e6:.0f} MB/s, "
                     f"peak {r[f'us_{fmt}_peak_mb']:.0f} MB | {u / k:.2f} x | {target}; < 200 MB |")
    lines += [
        f"| [cold image] plain `tar -cf - . \\| cat > FILE` | {r['cold_plain_tar_s']:.2f} s | |",
        f"| [cold image] `vm2c archive --engine kernel` (loop device with direct I/O) "
        f"| {r['cold_vm2c_archive_s']:.2f} s ({100 * r['cold_plain_tar_s'] / r['cold_vm2c_archive_s']:.0f} % "
        f"of plain tar's throughput) | >= 90 % |",
        f"| [cold image] the same with `VM2C_LOOP_DIRECT_IO=0` | {r['cold_vm2c_buffered_s']:.2f} s | |",
    ] if "cold_plain_tar_s" in r else []
    for d in ("overlay2", "overlay2-warm", "vfs", "overlay2-hostfs", "vfs-hostfs"):
        if f"{d}:recipe_s" not in r:
            continue
        def g(k: str, d: str = d) -> float:
            return r[f"{d}:{k}"]
        lab = f"{d}, cold image" if r.get(f"{d}:cold") else d

        lines += [
            f"| [{lab}] classic recipe (tar to file {g('recipe_tar_s'):.1f} s + docker build "
            f"{g('recipe_build_s'):.1f} s) | {g('recipe_s'):.2f} s | |",
            f"| [{lab}] `docker import` of the ready tar (floor) | {g('import_file_s'):.2f} s | |",
            f"| [{lab}] `vm2c convert --method import` | {g('vm2c_convert_s'):.2f} s | |",
            *([f"| [{lab}] the same with `VM2C_LOOP_DIRECT_IO={0 if g('cold') else 1}` (the loop device's other "
               f"way to read) | {g('vm2c_convert_other_io_s'):.2f} s | |"] if f"{d}:cold" in r else []),
            *([f"| [{lab}] the same with `VM2C_EARLY_WRITEBACK=0` (the layer written back only when the smoke "
               f"test's container is created) | {g('vm2c_convert_late_wb_s'):.2f} s | |"]
              if f"{d}:vm2c_convert_late_wb_s" in r else []),
            *([f"| [{lab}] the same with `VM2C_SOCKET_QUEUE=0` (the daemon's socket holds the kernel's default "
               f"~200 KiB unread, not 8 MiB) | {g('vm2c_convert_small_queue_s'):.2f} s | |"]
              if f"{d}:vm2c_convert_small_queue_s" in r else []),
            f"| [{lab}] convert / recipe | {g('convert_vs_recipe'):.2f}{_paired(r, d, 'convert')} | <= 0.4 |",
            f"| [{lab}] convert / import floor | {g('convert_vs_import_floor'):.2f} | <= 1.2 |",
        ]
        if f"{d}:vm2c_build_ready_s" in r:
            lines.append(f"| [{lab}] `vm2c build --method import --no-smoke` of the same ready tar (vm2c's own "
                         f"client) | {g('vm2c_build_ready_s'):.2f} s ({g('ready_vs_import_floor'):.2f} x the floor) "
                         f"| |")
        if f"{d}:pipe_import_s" in r:
            lines += [
                f"| [{lab}] `tar -cf - . \\| docker import -` over a fresh mount (the issue's reference) "
                f"| {g('pipe_import_s'):.2f} s ({g('pipe_import_s') / g('recipe_s'):.2f} x recipe) | |",
                f"| [{lab}] convert / that pipe | {g('convert_vs_pipe'):.2f} (--no-smoke {g('nosmoke_vs_pipe'):.2f}) | |",
            ]
        if f"{d}:vm2c_convert_nosmoke_s" in r:
            lines += [
                f"| [{lab}] `vm2c convert --no-smoke` | {g('vm2c_convert_nosmoke_s'):.2f} s | |",
                f"| [{lab}] convert --no-smoke / recipe | {g('nosmoke_vs_recipe'):.2f}{_paired(r, d, 'nosmoke')} "
                f"| <= 0.4 |",
                f"| [{lab}] convert --no-smoke / import floor | {g('nosmoke_vs_import_floor'):.2f} | <= 1.2 |",
            ]
        if f"{d}:vm2c_convert_us_s" in r:
            lines += [
                f"| [{lab}] `vm2c convert --engine userspace` (with smoke test) | {g('vm2c_convert_us_s'):.2f} s | |",
                f"| [{lab}] convert --engine userspace / recipe | {g('us_vs_recipe'):.2f}{_paired(r, d, 'us')} "
                f"| <= 0.4 |",
                f"| [{lab}] convert --engine userspace / import floor | {g('us_vs_import_floor'):.2f} | <= 1.2 |",
            ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
