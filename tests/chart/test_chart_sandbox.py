"""The rendered chart on the sandbox: its CRDs, namespace objects and default policy apply to the API server, the
processes its Deployment and DaemonSet describe (exact command lines and environment) come up against it, and a
TrainingJob runs through them to Succeeded.

The sandbox serves the core API, CRDs, leases and events but has no controllers for Deployments or DaemonSets
and no RBAC or admission API, so the test does what those controllers would: it starts one operator process
per Deployment replica and one agent process per node the DaemonSet selects, from the rendered pod specs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_helpers import NAMESPACE, Manifest, by_kind, one, pod_spec, render
from chart_tools import ToolUnavailable, kubectl

from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.testing import FAST_KUBELET, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Values a test cluster needs: simulated GPUs, fast reports. Everything else is the chart's default.
VALUES = (
    "agent.backend=sim",
    "agent.intervalSeconds=0.5",
    "agent.extraArgs={--report-min-interval=1,--report-max-interval=2}",
)
# Kinds the sandbox does not serve: the test plays their controllers (or they only matter on a real cluster).
NOT_SERVED = {
    "Deployment",
    "DaemonSet",
    "ClusterRole",
    "ClusterRoleBinding",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
JOB = {
    "apiVersion": "powertrain.dev/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "chart-smoke", "namespace": "default"},
    "spec": {
        "replicas": 2,
        "gpusPerReplica": 8,
        "topology": {"level": "rack", "mode": "Required"},
        "template": {
            "metadata": {"annotations": {"sandbox.powertrain.dev/run-seconds": "3"}},
            "spec": {"containers": [{"name": "trainer", "image": "example/train:1", "command": ["torchrun", "t.py"]}]},
        },
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def with_port(args: list[str], flag: str, port: int) -> list[str]:
    """The rendered command line with one port moved (several replicas share this host, not a pod IP each)."""
    assert any(a.startswith(f"{flag}=") for a in args), f"{flag} missing from {args}"
    return [f"{flag}={port}" if a.startswith(f"{flag}=") else a for a in args]


def leader_gauge(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as rsp:
        text = rsp.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("powertrain_leader "))


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as rsp:
            return bool(rsp.status == 200)
    except OSError:
        return False


class Cluster:
    def __init__(self, sb: Sandbox, kubectl_bin: Path, logs: Path) -> None:
        self.sb = sb
        self.kubectl_bin = kubectl_bin
        self.logs = logs
        self.env = {**os.environ, "KUBECONFIG": str(sb.kubeconfig_path), "PYTHONUNBUFFERED": "1"}
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.kubectl_bin), *args]
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=self.env, timeout=60, check=False)

    def apply(self, obj: Manifest) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "--server-side", "--field-manager=helm", "-f", "-", stdin=yaml.safe_dump(obj))

    def start(self, name: str, container: dict[str, Any], env: dict[str, str]) -> None:
        # The image's entrypoint is `powertrain`; here it is this checkout's, run by this interpreter.
        cmd = [sys.executable, "-m", "powertrain", *container["args"]]
        fixed = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
        with (self.logs / f"{name}.log").open("wb") as out:
            proc = subprocess.Popen(cmd, env={**self.env, **fixed, **env}, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append((name, proc))

    def assert_running(self) -> None:
        for name, proc in self.procs:
            assert proc.poll() is None, (
                f"{name} exited {proc.returncode}:\n{(self.logs / f'{name}.log').read_text()[-3000:]}"
            )

    def stop(self) -> None:
        for _, proc in self.procs:
            proc.terminate()
        for _, proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def manifests(helm_bin: Path) -> list[Manifest]:
    return render(helm_bin, None, *VALUES)


@pytest.fixture(scope="module")
def cluster(manifests: list[Manifest], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        kubectl_bin = kubectl()
    except ToolUnavailable as exc:
        pytest.skip(f"kubectl could not be downloaded: {exc}")
    config = SandboxConfig(nodes=2, gpus_per_node=8, kubelet=FAST_KUBELET, apply_crds=False)
    with Sandbox(config) as sb:
        c = Cluster(sb, kubectl_bin, tmp_path_factory.mktemp("chart-sandbox"))
        try:
            yield c
        finally:
            c.stop()


def test_chart_installs_and_runs_a_training_job(cluster: Cluster, manifests: list[Manifest]) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    assert cluster.apply(ns).returncode == 0

    # Like `helm install`: CRDs first, then the namespaced objects, then the post-install hook.
    hooks = [m for m in manifests if "helm.sh/hook" in (m["metadata"].get("annotations") or {})]
    plain = [m for m in manifests if m not in hooks]
    ordered = by_kind(plain, "CustomResourceDefinition") + [m for m in plain if m["kind"] != "CustomResourceDefinition"]
    skipped = set()
    for m in [*ordered, *hooks]:
        if m["kind"] in NOT_SERVED:
            skipped.add(m["kind"])
            continue
        result = cluster.apply(m)
        assert result.returncode == 0, f"{m['kind']}/{m['metadata']['name']}: {result.stderr}"
    assert skipped == NOT_SERVED & {m["kind"] for m in manifests}

    # The Deployment's replicas and the DaemonSet's pods, as their controllers would start them.
    deployment = one(manifests, "Deployment", "operator")
    op = pod_spec(deployment)["containers"][0]
    health_ports, metrics_ports = [], []
    for i in range(deployment["spec"]["replicas"]):
        health, metrics = free_port(), free_port()
        health_ports.append(health)
        metrics_ports.append(metrics)
        args = with_port(with_port(op["args"], "--liveness-port", health), "--metrics-port", metrics)
        pod = f"{deployment['metadata']['name']}-{i}"
        cluster.start(pod, {**op, "args": args}, {"POD_NAME": pod, "POD_NAMESPACE": NAMESPACE})

    daemonset = one(manifests, "DaemonSet", "agent")
    selector = pod_spec(daemonset)["nodeSelector"]
    nodes = cluster.kubectl("get", "nodes", "-o", "yaml")
    selected = [
        n["metadata"]["name"]
        for n in yaml.safe_load(nodes.stdout)["items"]
        if selector.items() <= n["metadata"]["labels"].items()
    ]
    assert selected == cluster.sb.node_names  # every sandbox node is a GPU node
    agent = pod_spec(daemonset)["containers"][0]
    for node in selected:
        metrics = free_port()
        args = [a.replace("$(NODE_NAME)", node) for a in with_port(agent["args"], "--metrics-port", metrics)]
        cluster.start(f"agent-{node}", {**agent, "args": args}, {"NODE_NAME": node})

    # Both operator replicas are alive on kopf's liveness endpoint, as the kubelet would probe it.
    for port in health_ports:
        wait_for(lambda p=port: http_ok(f"http://127.0.0.1:{p}/healthz") or None, timeout=60, what="operator /healthz")
    cluster.assert_running()

    # Every agent reports its own node's NodeTelemetry.
    def telemetry() -> list[str] | None:
        out = cluster.kubectl("get", "nodetelemetries", "-o", "yaml")
        items = yaml.safe_load(out.stdout)["items"] if out.returncode == 0 else []
        names = sorted(i["metadata"]["name"] for i in items if (i.get("status") or {}).get("gpus"))
        return names if names == sorted(selected) else None

    wait_for(telemetry, timeout=60, what="NodeTelemetry from every agent")

    # A TrainingJob runs through the installed operator and agents.
    assert cluster.apply(JOB).returncode == 0
    started = time.monotonic()

    def phase() -> str | None:
        out = cluster.kubectl("get", "tj", "chart-smoke", "-n", "default", "-o", "jsonpath={.status.phase}")
        return out.stdout if out.stdout in ("Succeeded", "Failed") else None

    assert wait_for(phase, timeout=90, what="TrainingJob to finish") == "Succeeded"
    cluster.assert_running()
    print(f"TrainingJob applied → Succeeded in {time.monotonic() - started:.1f} s through the chart's processes")

    # Exactly one operator replica leads (kopf peering through the chart's ClusterKopfPeering CRD).
    peering = cluster.kubectl("get", "clusterkopfpeering", "-o", "yaml")
    assert peering.returncode == 0, peering.stderr
    (obj,) = yaml.safe_load(peering.stdout)["items"]
    assert obj["metadata"]["name"] == next(a for a in op["args"] if a.startswith("--peering=")).split("=", 1)[1]
    assert len(obj.get("status") or {}) == deployment["spec"]["replicas"]
    assert sorted(leader_gauge(p) for p in metrics_ports) == [0.0, 1.0]
