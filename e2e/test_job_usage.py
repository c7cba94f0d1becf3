"""Per-job evidence end to end: sim agent processes attribute GPUs through each sandbox node's kubelet
pod-resources socket, report per-pod network and storage, and the real operator rolls them up into the
TrainingJob's status.usage, where a worker at ~0 % SM activity shows as the minimum instead of hiding in the mean."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from powertrain.controllers.testing import OperatorProcess, training_job
from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.testing import FAST_KUBELET, Kubectl, wait_for
from powertrain_agent.collectors.sim import IO_RATES, WORKLOAD_ANNOTATION

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(nodes=3, gpus_per_node=8, kubelet=FAST_KUBELET, pod_resources=True)




def usage(kubectl: Kubectl) -> dict[str, Any]:
    return dict(kubectl.json("get", "tj", "llm").get("status", {}).get("usage") or {})


def test_status_usage_shows_each_workers_activity_and_the_gangs_network_and_storage(
    sandbox: Sandbox, kubectl: Kubectl, agent_processes: list[subprocess.Popen[str]], operator: OperatorProcess
) -> None:
    kubectl.apply(training_job("llm", replicas=3, gpus=8, run_seconds=600))
    wait_for(
        lambda: kubectl.json("get", "tj", "llm").get("status", {}).get("readyReplicas") == 3,
        timeout=60,
        what="the 3-worker gang running",
    )
    pods = kubectl.json("get", "pods", "-l", "powertrain.dev/job-name=llm")["items"]
    idle = sorted(p["metadata"]["name"] for p in pods)[1]
    # One worker stops computing (holds its GPUs, ~0 % SM activity) while the others keep training.
    kubectl("annotate", "pod", idle, f"{WORKLOAD_ANNOTATION}=held", "--overwrite")
    held_at = datetime.now(UTC)

    def every_window_after_the_hold() -> bool:
        # A worker's first window after it started also covers time before it had work (a lower average, a
        # partial rate); its newest must lie wholly after the hold, when all three had long been running.
        reports = {t["metadata"]["name"]: t.get("status", {}) for t in kubectl.json("get", "nodetelemetries")["items"]}
        for node in sandbox.node_names:
            status = reports.get(node, {})
            stamp, window = status.get("timestamp"), status.get("windowSeconds")
            if stamp is None or window is None:
                return False
            if datetime.fromisoformat(stamp) - timedelta(seconds=window) < held_at:
                return False
        return True

    def spread_shows_the_idle_worker() -> dict[str, Any] | None:
        if not every_window_after_the_hold():
            return None
        u = usage(kubectl)
        sm = u.get("smActivityPercent") or {}
        rx = u.get("networkRxBytesPerSecond") or {}
        busy = sm.get("minWorker") == idle and sm.get("min", 100) < 5 and sm.get("max", 0) > 80
        # Rates are over a report window: wait for one that lies wholly after the idle worker stopped.
        quiet = rx.get("minWorker") == idle and rx.get("min", 1e18) < 0.01 * rx.get("max", 0)
        if u.get("workers") == 3 and busy and quiet and u.get("storageReadBytesPerSecond"):
            return u
        return None

    u = wait_for(spread_shows_the_idle_worker, timeout=90, what="status.usage naming the idle worker as the minimum")
    assert u["smActivityPercent"]["median"] > 80
    # Two workers train (all-reduce traffic, input reads on 8 GPUs each); the held one moves almost nothing.
    matmul = IO_RATES["matmul"]
    rx = u["networkRxBytesPerSecond"]
    assert rx["total"] == pytest.approx(2 * 8 * matmul.net_rx, rel=0.1)
    reads = u["storageReadBytesPerSecond"]
    assert reads["total"] == pytest.approx(2 * 8 * matmul.read, rel=0.1)
    assert reads["min"] < reads["median"]

    # How the agents attributed the GPUs: the kubelet's pod-resources API, not the simulator's own map.
    for node in sandbox.node_names:
        status = kubectl.json("get", "nodetelemetries", node).get("status", {})
        assert status.get("podAttribution") == "pod-resources"
        (reading,) = status.get("pods", [])
        assert reading["gpus"] == 8
