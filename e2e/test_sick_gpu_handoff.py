"""A GPU that a gang was moved off because it is sick is not handed to the next gang on the strength of the
node's last report, which still names the departed pod: it stays excluded until a report says it is healthy."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from powertrain.api.telemetry import NodeTelemetryStatus
from powertrain.controllers.testing import OperatorProcess, condition, training_job, wait_for
from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.testing import FAST_KUBELET, Kubectl
from powertrain_agent.reporter import StatusWriter
from test_agent_operator import InProcessAgent, gpu_health, worker_nodes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SICK_GPU = 3


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(nodes=2, gpus_per_node=8, kubelet=FAST_KUBELET)


class FreezingWriter:
    """Writes reports until one says the sick GPU is unhealthy while a pod holds it, then writes no more (while
    frozen): the operator keeps that report, as it would keep a report written just before the gang left."""

    def __init__(self, inner: StatusWriter) -> None:
        self.inner = inner
        self.frozen = False
        self.thaw = threading.Event()

    def write(self, status: NodeTelemetryStatus) -> str:
        if self.frozen and not self.thaw.is_set():
            return "ok"
        result = self.inner.write(status)
        gpu = next((g for g in status.gpus if g.index == SICK_GPU), None)
        if gpu is not None and not gpu.healthy and gpu.pod is not None and not self.thaw.is_set():
            self.frozen = True
        return result


@pytest.fixture
def agents(sandbox: Sandbox) -> Iterator[dict[str, InProcessAgent]]:
    running = {node: InProcessAgent(sandbox, node) for node in sandbox.node_names}
    yield running
    for a in running.values():
        a.stop()


def tj(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return dict(kubectl.json("get", "tj", name))


def test_a_gpu_a_gang_left_because_it_is_sick_is_not_handed_out_again(
    sandbox: Sandbox, kubectl: Kubectl, agents: dict[str, InProcessAgent], operator: OperatorProcess
) -> None:
    # Keep one node busy so the gang under test can only land on the other.
    kubectl("apply", "-f", "-", input=yaml.safe_dump(training_job("filler", gpus=8, level="node", run_seconds=600)))
    wait_for("filler running", lambda: tj(kubectl, "filler").get("status", {}).get("readyReplicas") == 1)
    (busy,) = worker_nodes(kubectl, "filler")
    (sick,) = [n for n in sandbox.node_names if n != busy]
    freezer = FreezingWriter(agents[sick].agent.writer)  # type: ignore[arg-type]
    agents[sick].agent.writer = freezer  # type: ignore[assignment]
    kubectl("apply", "-f", "-", input=yaml.safe_dump(training_job("moved", gpus=8, level="node", run_seconds=600)))
    wait_for("moved running", lambda: tj(kubectl, "moved").get("status", {}).get("readyReplicas") == 1)
    assert worker_nodes(kubectl, "moved") == [sick]

    agents[sick].sim.fake.lose_gpu(SICK_GPU)
    wait_for(f"the report naming the moved gang's pod on sick GPU {SICK_GPU}", lambda: freezer.frozen)
    # The operator moves the gang off the sick GPU; nowhere has 8 good GPUs, so it waits.
    wait_for("the moved gang's pods gone", lambda: worker_nodes(kubectl, "moved") == [], timeout=60)

    # The next 8-GPU gang must not get the sick node: its last report still names the departed pod on GPU 3.
    kubectl("apply", "-f", "-", input=yaml.safe_dump(training_job("next", gpus=8, level="node", run_seconds=600)))
    wait_for(
        "next unschedulable",
        lambda: (cond := condition(tj(kubectl, "next"), "Unschedulable")) is not None and cond["status"] == "True",
        timeout=60,
    )
    assert worker_nodes(kubectl, "next") == []
    assert worker_nodes(kubectl, "moved") == []

    # Healthy again, and a report says so: the node takes a gang again.
    agents[sick].sim.fake.recover_gpu(SICK_GPU)
    freezer.thaw.set()
    wait_for(f"{sick} healthy again", lambda: gpu_health(kubectl, sick) == [True] * 8, timeout=60)
    wait_for(
        "a waiting gang placed on the healed node",
        lambda: sick in worker_nodes(kubectl, "moved") + worker_nodes(kubectl, "next"),
        timeout=60,
    )
