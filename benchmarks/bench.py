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
     docker build FROM scratch + ADD) and vs `docker import` of a ready tar.
Writes benchmarks/results.md.
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
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vm2c_tui.diskbuilder import build as b  # noqa: E402
from vm2c_tui.diskbuilder.layout import Disk, Fs, Lv, Part, Vg  # noqa: E402
from vm2c_tui.services.dockerd import PrivateDockerd  # noqa: E402

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


def timed(cmd, env=None) -> tuple[float, int]:
    """Wall time and the peak RSS of the process itself (polled every 20 ms)."""
    start = time.monotonic()
    proc = subprocess.Popen([str(c) for c in cmd], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    err = proc.stderr.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd}: {err.decode(errors='replace')}")
    return time.monotonic() - start, peak


def median(xs):
    return statistics.median(xs)


def bench_inspect(raw: Path) -> dict:
    times = [timed([*VM2C, "inspect", "--json", raw])[0] for _ in range(RUNS)]
    return {"inspect_s": median(times)}


def root_offset(raw: Path) -> tuple[int, int]:
    doc = json.loads(sh(*VM2C, "inspect", "--json", raw).stdout)
    for p in doc["partitions"]:
        for v in p["volumes"]:
            if v["id"] == "benchvg/root":
                from vm2c_tui.services.inspect import inspect_image

                vol = inspect_image(raw).find("benchvg/root")
                return vol.offset, vol.size
    raise RuntimeError("no root LV")


def bench_archive(raw: Path, work: Path) -> dict:
    off, size = root_offset(raw)
    mnt = work / "mnt"
    mnt.mkdir()
    loop = sh("losetup", "-f", "--show", "-r", "-o", off, "--sizelimit", size, raw).stdout.decode().strip()
    sh("mount", "-o", "ro,noload", loop, mnt)
    try:
        data = int(sh("du", "-sb", mnt).stdout.split()[0])
        files = int(sh("sh", "-c", f"find {mnt} | wc -l").stdout)
        out = work / "plain.tar"
        plain, vm2c, peaks = [], [], []
        timed(["sh", "-c", f"tar -C {mnt} -cf - . | cat > {out}"])  # warm the page cache once
        for _ in range(RUNS):
            plain.append(timed(["sh", "-c", f"tar -C {mnt} -cf - . | cat > {out}"])[0])
            out.unlink()
            t, peak = timed([*VM2C, "archive", raw, "-o", work / "v", "--no-fstab", "--preset", "none",
                             "--no-sanitize"])
            vm2c.append(t)
            peaks.append(peak)
            tar_size = (work / "v" / "img.tar").stat().st_size
            shutil.rmtree(work / "v")
    finally:
        sh("umount", mnt)
        sh("losetup", "-d", loop)
    return {"data_bytes": data, "files": files, "tar_bytes": tar_size, "plain_tar_s": median(plain),
            "vm2c_archive_s": median(vm2c), "throughput_ratio": median(plain) / median(vm2c),
            "vm2c_peak_rss_mb": max(peaks) / 2**20}


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


def bench_convert(raw: Path, work: Path) -> dict:
    daemon = PrivateDockerd()
    host = daemon.start()
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_BUILDKIT": "0"}
    import docker

    client = docker.DockerClient(base_url=host, timeout=3600)

    def wipe():
        for img in client.images.list():
            client.images.remove(img.id, force=True)
        client.images.prune()

    off, size = root_offset(raw)
    mnt = work / "mnt2"
    mnt.mkdir()
    res = {"vm2c_convert_s": [], "recipe_s": [], "recipe_tar_s": [], "recipe_build_s": [], "import_file_s": []}
    try:
        for _ in range(RUNS):
            wipe()
            res["vm2c_convert_s"].append(timed([*VM2C, "convert", raw, "--tag", "bench/vm2c:1", "--no-fstab",
                                                "--preset", "none", "--no-sanitize"], env=env)[0])
            wipe()
            # the classic recipe: mount, tar cf img.tar, docker build FROM scratch + ADD
            ctx = work / "ctx"
            ctx.mkdir()
            (ctx / "Dockerfile").write_text("FROM scratch\nADD img.tar /\nCMD [\"/bin/sh\"]\n")
            t0 = time.monotonic()
            loop = sh("losetup", "-f", "--show", "-r", "-o", off, "--sizelimit", size, raw).stdout.decode().strip()
            sh("mount", "-o", "ro,noload", loop, mnt)
            sh("tar", "-C", mnt, "-cf", ctx / "img.tar", ".")
            sh("umount", mnt)
            sh("losetup", "-d", loop)
            t1 = time.monotonic()
            sh("docker", "-H", host, "build", "-q", "-t", "bench/recipe:1", ctx, env=env)
            t2 = time.monotonic()
            res["recipe_s"].append(t2 - t0)
            res["recipe_tar_s"].append(t1 - t0)
            res["recipe_build_s"].append(t2 - t1)
            wipe()
            t3 = time.monotonic()
            with open(ctx / "img.tar", "rb") as f:
                client.api.import_image(src=f, repository="bench/import", tag="1")
            res["import_file_s"].append(time.monotonic() - t3)
            shutil.rmtree(ctx)
    finally:
        client.close()
        daemon.stop()
    out = {k: median(v) for k, v in res.items()}
    out["convert_vs_recipe"] = out["vm2c_convert_s"] / out["recipe_s"]
    out["convert_vs_import_floor"] = out["vm2c_convert_s"] / out["import_file_s"]
    return out


def main() -> int:
    global RUNS
    if "--quick" in sys.argv:
        RUNS = 1
    raw = build_disk()
    results = {"machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
                          f"{psutil.virtual_memory().total / 2**30:.0f} GiB, kernel {platform.release()}",
               "runs": RUNS}
    with tempfile.TemporaryDirectory(dir=CACHE) as t:
        work = Path(t)
        results.update(bench_inspect(raw))
        results.update(bench_archive(raw, work))
        results.update(bench_views(raw, work))
        results.update(bench_convert(raw, work))
    text = render(results)
    (REPO / "benchmarks" / "results.md").write_text(text)
    print(text)
    print(json.dumps(results, indent=1))
    return 0


def render(r: dict) -> str:
    gb = r["data_bytes"] / 1e9
    lines = [
        f"Machine: {r['machine']}; median of {r['runs']} run(s); {gb:.2f} GB in {r['files']} files "
        f"on an LVM root LV of a 20 GiB sparse GPT disk.",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| `vm2c inspect` of the 20 GiB LVM disk | {r['inspect_s']:.2f} s | < 2 s |",
        f"| plain `tar -cf - . \\| cat > FILE` | {r['plain_tar_s']:.2f} s | |",
        f"| `vm2c archive` (raw) | {r['vm2c_archive_s']:.2f} s | |",
        f"| archive throughput vs plain tar | {100 * r['throughput_ratio']:.0f} % | >= 90 % |",
        f"| vm2c peak memory | {r['vm2c_peak_rss_mb']:.0f} MB | < 150 MB |",
    ]
    for fmt in ("qcow2", "vdi", "vmdk"):
        for view in ("fuse", "copy"):
            t = r[f"{fmt}_{view}_s"]
            lines.append(f"| archive from {fmt} via {view} | {t:.2f} s ({t / r['raw_archive_s']:.1f} x raw) | |")
    lines += [
        f"| classic recipe (tar to file {r['recipe_tar_s']:.1f} s + docker build {r['recipe_build_s']:.1f} s) "
        f"| {r['recipe_s']:.2f} s | |",
        f"| `docker import` of the ready tar (floor) | {r['import_file_s']:.2f} s | |",
        f"| `vm2c convert --method import` | {r['vm2c_convert_s']:.2f} s | |",
        f"| convert / recipe | {r['convert_vs_recipe']:.2f} | <= 0.4 |",
        f"| convert / import floor | {r['convert_vs_import_floor']:.2f} | <= 1.2 |",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
