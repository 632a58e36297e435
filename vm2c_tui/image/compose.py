"""compose.yaml and a Kubernetes manifest for a run mode: the same facts as the `docker run`
line (ports, data volumes, the flags systemd as PID 1 needs), for `docker compose up` and for
those who outgrow one machine. Written by hand as YAML whose every scalar is JSON-quoted (valid
YAML, no emitter needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from vm2c_tui.plan.runplan import RunPlan


def name_of(tag: str) -> str:
    """A DNS-1123 label from the image reference (compose service, k8s object names)."""
    base = tag.rsplit("/", 1)[-1].split("@")[0].split(":")[0].lower()
    return re.sub(r"[^a-z0-9-]+", "-", base).strip("-")[:50] or "vm2c"


def default_tag(source: str) -> str:
    """vm2c/NAME:latest, NAME from the source's file name (the wizard's and the dry run's default)."""
    base = Path(source or "vm").name.split(".")[0].lower()
    clean = "".join(c if c.isalnum() or c in "-_." else "-" for c in base).strip("-._") or "vm"
    return f"vm2c/{clean}:latest"


def volume_of(tag: str, path: str) -> str:
    return f"{name_of(tag)}-{re.sub(r'[^a-z0-9]+', '-', path.lower()).strip('-') or 'root'}"[:63].rstrip("-")


def published(plan: RunPlan) -> list[tuple[int, int]]:
    """(host port, container port) of PLAN's ports, as compose.yaml and the `docker run` line say."""
    from vm2c_tui.host.system import publish

    return publish(plan.ports)


def _q(value) -> str:
    return json.dumps(value)


def compose_text(tag: str, plan: RunPlan, cgroup: str = "1") -> str:
    name, args = name_of(tag), plan.run_args(cgroup)
    tmpfs = [v for f, v in zip(args, args[1:]) if f == "--tmpfs"]
    binds = [v for f, v in zip(args, args[1:]) if f == "-v"]
    out = [f"# vm2c: {tag} run as --run {plan.mode}; `docker compose up -d`", "services:", f"  {name}:",
           f"    image: {_q(tag)}"]
    if plan.system and plan.init == "systemd":
        out.append(f"    stop_signal: {_q('SIGRTMIN+3')}")
    if any(a == "--cgroupns=host" for a in args):
        out.append(f"    cgroup: {_q('host')}")
    if tmpfs:
        out += ["    tmpfs:", *[f"      - {_q(t)}" for t in tmpfs]]
    if binds or plan.volumes:
        out += ["    volumes:", *[f"      - {_q(b)}" for b in binds],
                *[f"      - {_q(volume_of(tag, v) + ':' + v)}" for v in plan.volumes]]
    if plan.ports:
        out += ["    ports:  # host side first (moved where this machine's own port is taken)",
                *[f"      - {_q(f'{h}:{p}')}" + (f"  # {p} is taken here" if h != p else "")
                  for h, p in published(plan)]]
    if plan.volumes:
        out += ["volumes:", *[f"  {volume_of(tag, v)}: {{}}" for v in plan.volumes]]
    return "\n".join(out) + "\n"


def _container(tag: str, plan: RunPlan) -> list[str]:
    name = name_of(tag)
    out = [f"      - name: {_q(name)}", f"        image: {_q(tag)}"]
    if plan.ports:
        out += ["        ports:", *[f"          - containerPort: {p}" for p in plan.ports]]
    mounts = [(volume_of(tag, v), v) for v in plan.volumes]
    if plan.system:
        mounts += [(f"tmp{i}", p) for i, p in enumerate(("/run", "/run/lock", "/tmp"))]
        mounts += [("cgroup", "/sys/fs/cgroup")] if plan.init == "systemd" else []
    if mounts:
        out += ["        volumeMounts:", *[line for v, p in mounts for line in
                                           (f"          - name: {_q(v)}", f"            mountPath: {_q(p)}",
                                            *(["            readOnly: true"] if v == "cgroup" else []))]]
    return out


def k8s_text(tag: str, plan: RunPlan) -> str:
    """A StatefulSet when there are data directories (each a volume claim), else a Deployment;
    a Service for the ports."""
    name, kind = name_of(tag), "StatefulSet" if plan.volumes else "Deployment"
    out = [f"# vm2c: {tag} run as --run {plan.mode}; `kubectl apply -f` this file", "apiVersion: apps/v1",
           f"kind: {kind}", "metadata:", f"  name: {_q(name)}", "spec:", "  replicas: 1",
           "  selector:", "    matchLabels:", f"      app: {_q(name)}"]
    out += [f"  serviceName: {_q(name)}"] if kind == "StatefulSet" else []
    out += ["  template:", "    metadata:", "      labels:", f"        app: {_q(name)}", "    spec:",
            "      containers:", *_container(tag, plan)]
    local = [(f"tmp{i}", "emptyDir: {medium: Memory}") for i in range(3)] if plan.system else []
    local += [("cgroup", "hostPath: {path: /sys/fs/cgroup}")] if plan.system and plan.init == "systemd" else []
    if local:
        out += ["      volumes:", *[line for v, src in local for line in (f"        - name: {_q(v)}", f"          {src}")]]
    if plan.volumes:
        out += ["  volumeClaimTemplates:", *[line for v in plan.volumes for line in (
            "    - metadata:", f"        name: {_q(volume_of(tag, v))}", "      spec:",
            "        accessModes: [\"ReadWriteOnce\"]", "        resources:", "          requests:",
            "            storage: \"1Gi\"")]]
    if plan.ports:
        out += ["---", "apiVersion: v1", "kind: Service", "metadata:", f"  name: {_q(name)}", "spec:",
                "  selector:", f"    app: {_q(name)}", "  ports:",
                *[line for p in plan.ports for line in (f"    - name: {_q(f'port-{p}')}", f"      port: {p}",
                                                        f"      targetPort: {p}")]]
    return "\n".join(out) + "\n"


def write_run_files(outdir: Path, tag: str, plan: RunPlan, cgroup: str = "1") -> list[Path]:
    """OUTDIR/compose.yaml and OUTDIR/kubernetes.yaml for PLAN (none for shell mode)."""
    from vm2c_tui.host.outfile import write_new

    if plan.mode == "shell":
        return []
    return [write_new(outdir / "compose.yaml", compose_text(tag, plan, cgroup).encode(), 0o644),
            write_new(outdir / "kubernetes.yaml", k8s_text(tag, plan).encode(), 0o644)]
