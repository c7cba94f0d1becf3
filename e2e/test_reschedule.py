"""Telemetry that decides, end to end: sim agent processes report through each sandbox node's pod-resources
socket, the real operator gives every running job an efficiency verdict, moves a gang off a straggling worker's
node (policy straggler: Act) and suspends an idle reservation (idle: Act), with Events a user sees."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from powertrain.controllers.testing import OperatorProcess, training_job
from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.testing import FAST_KUBELET, Kubectl, wait_for
from powertrain_agent.collectors.sim import WORKLOAD_ANNOTATION

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(nodes=4, gpus_per_node=8, kubelet=FAST_KUBELET, pod_resources=True)




def policy(**rescheduling: Any) -> dict[str, Any]:
    return {
        "apiVersion": "powertrain.dev/v1alpha1",
        "kind": "ClusterTrainingPolicy",
        "metadata": {"name": "default"},
        "spec": {"rescheduling": rescheduling, "efficiency": {"windowSeconds": 10}},
    }


def status(kubectl: Kubectl, name: str = "llm") -> dict[str, Any]:
    return dict(kubectl.json("get", "tj", name).get("status") or {})


def events(kubectl: Kubectl, reason: str) -> list[str]:
    items = kubectl.json("get", "events", "--field-selector", f"reason={reason}")["items"]
    return [str(e.get("message", "")) for e in items]


def test_a_straggling_worker_moves_the_gang_off_its_node(
    sandbox: Sandbox, kubectl: Kubectl, agent_processes: list[subprocess.Popen[str]], operator: OperatorProcess
) -> None:
    kubectl.apply(policy(straggler="Act", stragglerWindowSeconds=30, idle="Off"))
    kubectl.apply(training_job("llm", replicas=3, gpus=8, run_seconds=900))
    wait_for(lambda: status(kubectl).get("readyReplicas") == 3, timeout=60, what="the 3-worker gang running")
    wait_for(
        lambda: (status(kubectl).get("efficiency") or {}).get("verdict") == "Healthy",
        timeout=60,
        what="the training gang judged Healthy",
    )
    pods = kubectl.json("get", "pods", "-l", "powertrain.dev/job-name=llm")["items"]
    slow = sorted(pods, key=lambda p: p["metadata"]["name"])[1]
    slow_node = slow["spec"]["nodeName"]
    # One worker stops computing while it keeps its GPUs; its peers keep training.
    kubectl("annotate", "pod", slow["metadata"]["name"], f"{WORKLOAD_ANNOTATION}=held", "--overwrite")
    wait_for(
        lambda: (status(kubectl).get("efficiency") or {}).get("verdict") == "Straggler",
        timeout=60,
        what="the verdict Straggler",
    )
    wait_for(lambda: status(kubectl).get("moves") == 1, timeout=120, what="the gang moved once")
    moved = events(kubectl, "StragglerMoved")
    assert moved, "no StragglerMoved Event"
    assert slow_node in moved[0]
    after = wait_for(
        lambda: ((s := status(kubectl)).get("readyReplicas") == 3 and s.get("phase") == "Running" and s) or None,
        timeout=90,
        what="the gang running again",
    )
    assert slow_node not in after["placement"]["nodes"]
    assert [a["node"] for a in after["avoidNodes"]] == [slow_node]
    assert not after.get("restarts"), "a move must not count as a restart"


def test_an_idle_reservation_is_reported_and_suspended(
    sandbox: Sandbox, kubectl: Kubectl, agent_processes: list[subprocess.Popen[str]], operator: OperatorProcess
) -> None:
    kubectl.apply(policy(idle="Act", idleWindowSeconds=60, straggler="Off"))
    job = training_job("llm", replicas=2, gpus=8, run_seconds=900)
    job["spec"]["template"]["metadata"]["annotations"][WORKLOAD_ANNOTATION] = "held"
    kubectl.apply(job)
    wait_for(
        lambda: (status(kubectl).get("efficiency") or {}).get("verdict") == "Idle",
        timeout=90,
        what="the held gang judged Idle",
    )
    suspended = wait_for(
        lambda: ((s := status(kubectl)).get("phase") == "Suspended" and s) or None,
        timeout=150,
        what="the idle gang suspended",
    )
    spec = kubectl.json("get", "tj", "llm")["spec"]
    assert spec["runPolicy"]["suspend"] is True
    assert "kubectl patch trainingjob llm" in suspended["message"]
    idle = next(c for c in suspended["conditions"] if c["type"] == "Idle")
    assert idle["status"] == "True"
    assert idle["reason"] == "IdleSuspended"
    assert events(kubectl, "IdleSuspended")
    wait_for(
        lambda: not kubectl.json("get", "pods", "-l", "powertrain.dev/job-name=llm")["items"],
        timeout=60,
        what="the GPUs released",
    )
