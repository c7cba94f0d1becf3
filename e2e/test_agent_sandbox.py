"""A sim-backend agent process on a sandbox node: NodeTelemetry reports, pod attribution, and a requested cap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from powertrain.api.constants import JOB_NAME_LABEL
from powertrain.api.telemetry import NodeTelemetryStatus
from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.testing import FAST_KUBELET, wait_for

pytestmark = pytest.mark.e2e

SANDBOX_CONFIG = SandboxConfig(nodes=2, gpus_per_node=8, kubelet=FAST_KUBELET)
NT_PATH = "/apis/powertrain.dev/v1alpha1/nodetelemetries"


@pytest.fixture(scope="module")
def node(module_sandbox: Sandbox) -> str:
    return module_sandbox.node_names[0]


@pytest.fixture(scope="module")
def agent(
    module_sandbox: Sandbox, node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[str]]:
    log = tmp_path_factory.mktemp("agent") / "agent.log"
    env = {**os.environ, "NODE_NAME": node, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "powertrain_agent",
        "--backend",
        "sim",
        "--gpus",
        "8",
        "--kubeconfig",
        str(module_sandbox.kubeconfig_path),
        "--interval",
        "0.2",
        "--slow-interval",
        "0.5",
        "--report-min-interval",
        "1",
        "--report-max-interval",
        "2",
        "--metrics-port",
        "0",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    print(Path(log).read_text()[-4000:])


def _status(sb: Sandbox, node: str) -> NodeTelemetryStatus | None:
    try:
        obj: Any = sb.api("GET", f"{NT_PATH}/{node}")
    except Exception:
        return None
    raw = obj.get("status") if isinstance(obj, dict) else None
    return NodeTelemetryStatus.model_validate(raw) if raw else None


def test_agent_reports_busy_gpus_of_its_pods_and_applies_a_cap(
    module_sandbox: Sandbox, node: str, agent: subprocess.Popen[str]
) -> None:
    sb = module_sandbox
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "llm-worker-0",
            "namespace": "default",
            "labels": {JOB_NAME_LABEL: "llm"},
            "annotations": {"powertrain.dev/sim-workload": "matmul"},
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "trainer", "image": "trainer:1", "resources": {"limits": {"nvidia.com/gpu": "2"}}}],
        },
    }
    sb.api("POST", "/api/v1/namespaces/default/pods", pod)

    def busy() -> NodeTelemetryStatus | None:
        st = _status(sb, node)
        if st is None or len(st.gpus) != 8:
            return None
        held = [g for g in st.gpus if g.pod is not None and g.pod.name == "llm-worker-0"]
        ok = len(held) == 2 and all((g.power_watts or 0) > 600 and (g.energy_joules or 0) > 0 for g in held)
        return st if ok else None

    st = wait_for(busy, timeout=60, what="a NodeTelemetry status with the pod's two GPUs busy")
    assert st.backend == "sim"
    assert [p.training_job for p in st.pods] == ["llm"]
    idle = [g for g in st.gpus if g.pod is None]
    assert len(idle) == 6
    assert all((g.power_watts or 0) < 100 for g in idle)
    target = next(g for g in st.gpus if g.pod is not None)

    patch = {"spec": {"powerLimits": [{"uuid": target.uuid, "watts": 400}]}}
    sb.api("PATCH", f"{NT_PATH}/{node}", patch, content_type="application/merge-patch+json")

    def capped() -> bool:
        st = _status(sb, node)
        g = next((g for g in st.gpus if g.uuid == target.uuid), None) if st else None
        return bool(
            g
            and g.requested_power_limit_watts == 400
            and g.power_limit_watts == 400
            and g.power_watts is not None
            and g.power_watts < 400
            and "SwPowerCap" in g.clock_event_reasons
        )

    wait_for(capped, timeout=60, what="the requested 400 W cap applied and reported")

    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=30) == 0
