"""Smoke tests that prove a run mode runs: `system` boots until systemd says running or
degraded (the failed units listed) with the guest's services active; `service:NAME` answers on
its port from inside the container's own network namespace (the container has no network
beyond it). Failures are reported, never raised: the image is kept."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from vm2c_tui.image.daemon import Smoke, _short, client
from vm2c_tui.plan.runplan import RunPlan

BOOT_SECONDS = 90
ANSWER_SECONDS = 20
# Connects to 127.0.0.1:PORT in the namespace it runs in; an HTTP port is asked for a status line.
PROBE = """import socket, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=3)
if port in (80, 8000, 8080):
    s.sendall(b"HEAD / HTTP/1.0\\r\\n\\r\\n")
    print(s.recv(200).decode("latin-1").splitlines()[0])
else:
    s.settimeout(2)
    try:
        print(s.recv(200).decode("latin-1").splitlines()[0] or "connected")
    except (socket.timeout, IndexError):
        print("connected")
"""


def cgroup_version() -> str:
    """The daemon's cgroup version ("1" or "2"): systemd as PID 1 needs other flags on each."""
    c = client(timeout=10)
    try:
        return str(c.info().get("CgroupVersion") or "1")
    finally:
        c.close()


def _kwargs(plan: RunPlan, cgroup: str) -> dict:
    """PLAN.run_args() as the SDK's keywords (the same flags `docker run` is shown with)."""
    args, kw = plan.run_args(cgroup), {"volumes": [], "tmpfs": {}}
    for flag, value in zip(args, [*args[1:], ""]):
        if flag == "-v":
            kw["volumes"].append(value)
        elif flag == "--tmpfs":
            kw["tmpfs"][value] = ""
        elif flag.startswith("--cgroupns="):
            kw["cgroupns"] = flag.partition("=")[2]
    return kw


def run(image: str, plan: RunPlan, cgroup: str = "1") -> Smoke:
    c = client(timeout=BOOT_SECONDS + 30)
    container = None
    try:
        container = c.containers.run(image, detach=True, network_mode="none", **_kwargs(plan, cgroup))
        if plan.system and plan.init == "systemd":
            detail = _system(container, plan)
        elif plan.system:
            detail = _still_running(container, f"{plan.init} init")
        else:
            detail = _service(container, plan)
        ok = not detail[0].startswith("FAILED")
        return Smoke(ok, "", "", "" if ok else detail[0], mode=plan.mode, detail=detail)
    except Exception as exc:  # the daemon's reason, plainly
        return Smoke(False, "", "", _short(exc), mode=plan.mode)
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except Exception:  # noqa: S110 (a container already gone)
                pass
        c.close()


def _tail(container) -> str:
    """The container's last words (its log's last line), for a failure."""
    lines = container.logs(tail=5).decode("utf-8", "replace").strip().splitlines()
    return lines[-1][:200] if lines else "no output"


def _exec(container, *cmd: str) -> str:
    return container.exec_run(list(cmd)).output.decode("utf-8", "replace").strip()


def _system(container, plan: RunPlan) -> list[str]:
    state, deadline = "", time.monotonic() + BOOT_SECONDS
    while time.monotonic() < deadline:
        container.reload()
        if container.status != "running":
            return [f"FAILED: the init exited ({container.status}): {_tail(container)}"]
        state = _exec(container, "systemctl", "is-system-running")
        if state in ("running", "degraded"):
            break
        time.sleep(0.5)
    failed = _exec(container, "systemctl", "--failed", "--plain", "--no-legend", "--no-pager").splitlines()
    failed = [line.split()[0] for line in failed if line.strip()]
    head = f"systemctl is-system-running: {state or 'no answer'}"
    listed = [f"failed units: {', '.join(failed)}"] if failed else []
    if state not in ("running", "degraded"):
        return [f"FAILED: {head} after {BOOT_SECONDS}s", *listed]
    down, skipped = _units(container, plan.active)
    if down:
        return [f"FAILED: not active: {', '.join(down)} ({head})", *listed]
    up = [n for n in plan.active if n not in skipped]
    return [head, *([f"active: {', '.join(up)}"] if up else []),
            *([f"not started, a condition unmet: {', '.join(skipped)}"] if skipped else []), *listed]


def _units(container, names: list[str]) -> tuple[list[str], list[str]]:
    """(NAMES that are not active, as 'name state'; those skipped for an unmet condition, which
    systemd itself does not count as failed: logind without D-Bus)."""
    if not names:
        return [], []
    out = _exec(container, "systemctl", "show", "-p", "Id,ActiveState,ConditionResult", "--", *names)
    down, skipped = [], []
    for block in out.split("\n\n"):
        props = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        if props.get("ActiveState") == "active":
            continue
        name = props.get("Id", "?")
        if props.get("ConditionResult") == "no":
            skipped.append(name)
        else:
            down.append(f"{name} {props.get('ActiveState', 'unknown')}")
    return down, skipped


def _still_running(container, what: str) -> list[str]:
    time.sleep(3)
    container.reload()
    if container.status == "running":
        return [f"running after 3s ({what}; nothing more is checked)"]
    return [f"FAILED: exited: {_tail(container)}"]


def _ours(pid: int, container_id: str) -> bool:
    """PID here is that container's process (a daemon elsewhere gives a pid of its machine's)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return pid > 0 and container_id in f.read() and os.path.exists(f"/proc/{pid}/ns/net")
    except OSError:
        return False


def _service(container, plan: RunPlan) -> list[str]:
    if not plan.ports:
        return _still_running(container, "no port declared")
    container.reload()  # the attributes run() returned predate the start
    if container.status != "running":  # gone already: no pid to look at, and nothing started
        return [f"FAILED: exited: {_tail(container)}"]
    pid = int(container.attrs.get("State", {}).get("Pid") or 0)
    if not _ours(pid, container.id):
        return _still_running(container, "its port not checked: the daemon is not on this machine")
    port, last, deadline = plan.ports[0], "", time.monotonic() + ANSWER_SECONDS
    while time.monotonic() < deadline:
        done = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c", PROBE, str(port)],
                              capture_output=True, text=True, timeout=10)
        if done.returncode == 0:
            return [f"port {port} answers inside the container: {done.stdout.strip()[:120]}"]
        last = (done.stderr.strip().splitlines() or [""])[-1]
        container.reload()
        if container.status != "running":
            return [f"FAILED: exited before answering on {port}: {_tail(container)}"]
        time.sleep(0.5)
    return [f"FAILED: nothing answers on port {port} inside the container after {ANSWER_SECONDS}s ({last[:120]})"]
