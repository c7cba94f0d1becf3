"""Sim agents and the real operator on the sandbox: a GPU the agent reports unhealthy stops receiving gangs,
and receives them again once the agent clears it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from powertrain.api import constants as c
from powertrain.controllers.testing import OperatorProcess, condition, training_job, wait_for
from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.testing import FAST_KUBELET, Kubectl
from powertrain_agent.agent import Agent, AgentConfig
from powertrain_agent.cli import start_watches
from powertrain_agent.collectors.sim import SimCollector
from powertrain_agent.kube import KubeClient, load_client
from powertrain_agent.reporter import StatusWriter

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SICK_GPU = 3


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(nodes=2, gpus_per_node=8, kubelet=FAST_KUBELET)


class InProcessAgent:
    """The agent's own classes on a sandbox node, in this process, so the test can break its simulated GPUs."""

    def __init__(self, sandbox: Sandbox, node: str) -> None:
        self.node = node
        self.sim = SimCollector(8, seed=node)
        self.sim.open()
        kube = KubeClient(load_client(str(sandbox.kubeconfig_path)))
        config = AgentConfig(
            node=node,
            interval_s=0.2,
            slow_interval_s=0.5,
            report_min_interval_s=1,
            report_max_interval_s=2,
            report_jitter_s=0,
            health_clear_s=1.0,
            xid_hold_s=0.5,
        )
        self.agent = Agent(config, self.sim, StatusWriter(kube, node))
        start_watches(self.agent, kube, node)
        self.thread = threading.Thread(target=self.agent.run, name=f"agent-{node}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.agent.stop_event.set()
        self.thread.join(timeout=10)
        self.agent.shutdown()


@pytest.fixture
def agents(sandbox: Sandbox) -> Iterator[dict[str, InProcessAgent]]:
    running = {node: InProcessAgent(sandbox, node) for node in sandbox.node_names}
    yield running
    for a in running.values():
        a.stop()


def telemetry(kubectl: Kubectl, node: str) -> dict[str, Any]:
    result = kubectl("get", "nodetelemetries", node, "-o", "json", check=False)
    return dict(yaml.safe_load(result.stdout)) if result.returncode == 0 else {}


def gpu_health(kubectl: Kubectl, node: str) -> list[bool]:
    return [g.get("healthy", True) for g in telemetry(kubectl, node).get("status", {}).get("gpus", [])]


def worker_nodes(kubectl: Kubectl, job: str) -> list[str]:
    items = kubectl.json("get", "pods", "-l", f"{c.JOB_NAME_LABEL}={job}")["items"]
    return [p["spec"].get("nodeName", "") for p in items]


def test_unhealthy_gpu_keeps_gangs_away_until_it_clears(
    sandbox: Sandbox, kubectl: Kubectl, agents: dict[str, InProcessAgent], operator: OperatorProcess
) -> None:
    sick, healthy = sandbox.node_names
    agents[sick].sim.fake.lose_gpu(SICK_GPU)  # falls off the bus: XID 79, every call answers GPU_IS_LOST
    wait_for(
        f"{sick} reporting GPU {SICK_GPU} unhealthy",
        lambda: (h := gpu_health(kubectl, sick)) and len(h) == 8 and not h[SICK_GPU],
    )
    wait_for(f"{healthy} reporting 8 healthy GPUs", lambda: gpu_health(kubectl, healthy) == [True] * 8)

    kubectl("apply", "-f", "-", input=yaml.safe_dump(training_job("first", gpus=8, level="node", run_seconds=600)))
    wait_for("first running", lambda: kubectl.json("get", "tj", "first").get("status", {}).get("readyReplicas") == 1)
    assert worker_nodes(kubectl, "first") == [healthy]

    # The only node left has 7 good GPUs: an 8-GPU gang must wait rather than land on the sick GPU.
    kubectl("apply", "-f", "-", input=yaml.safe_dump(training_job("second", gpus=8, level="node", run_seconds=600)))
    wait_for("second unschedulable", lambda: condition(kubectl.json("get", "tj", "second"), "Unschedulable"))
    assert worker_nodes(kubectl, "second") == []

    agents[sick].sim.fake.recover_gpu(SICK_GPU)  # after a reset the GPU answers again; health clears after 1 s
    wait_for(f"{sick} healthy again", lambda: gpu_health(kubectl, sick) == [True] * 8)
    wait_for(
        "second running",
        lambda: kubectl.json("get", "tj", "second").get("status", {}).get("readyReplicas") == 1,
        timeout=60,
    )
    assert worker_nodes(kubectl, "second") == [sick]

    # The agent on that node sees the gang's pod, makes its GPUs busy and charges them to the TrainingJob.
    def attributed() -> bool:
        st = telemetry(kubectl, sick).get("status", {})
        held = [g for g in st.get("gpus", []) if (g.get("pod") or {}).get("trainingJob") == "second"]
        return len(held) == 8 and all(g.get("powerWatts", 0) > 600 for g in held)

    wait_for("the second gang's GPUs busy and attributed in NodeTelemetry", attributed)


def gpus_of(kubectl: Kubectl, node: str, job: str) -> list[dict[str, Any]]:
    st = telemetry(kubectl, node).get("status", {})
    return [g for g in st.get("gpus", []) if (g.get("pod") or {}).get("trainingJob") == job]


def test_a_jobs_cap_is_requested_for_its_gpus_enforced_and_withdrawn_when_it_ends(
    sandbox: Sandbox, kubectl: Kubectl, agents: dict[str, InProcessAgent], operator: OperatorProcess
) -> None:
    capped = training_job("capped", gpus=4, level="node", run_seconds=25)
    capped["spec"]["power"] = {"mode": "Efficiency", "capWatts": 400}
    kubectl("apply", "-f", "-", input=yaml.safe_dump(training_job("uncapped", gpus=4, level="node", run_seconds=600)))
    kubectl("apply", "-f", "-", input=yaml.safe_dump(capped))
    wait_for(
        "both running",
        lambda: all(
            kubectl.json("get", "tj", j).get("status", {}).get("readyReplicas") == 1 for j in ("capped", "uncapped")
        ),
    )
    (node,) = worker_nodes(kubectl, "capped")
    (other,) = worker_nodes(kubectl, "uncapped")

    def enforced() -> bool:
        held = gpus_of(kubectl, node, "capped")
        return len(held) == 4 and all(
            g.get("requestedPowerLimitWatts") == 400
            and g.get("powerLimitWatts") == 400
            and g.get("powerWatts", 1e9) <= 400
            for g in held
        )

    wait_for("the capped gang's 4 GPUs requested, enforced and drawing at most 400 W", enforced, timeout=60)
    spec = telemetry(kubectl, node).get("spec", {}).get("powerLimits", [])
    assert sorted(r["uuid"] for r in spec) == sorted(g["uuid"] for g in gpus_of(kubectl, node, "capped"))
    assert {r["watts"] for r in spec} == {400}
    uncapped_gpus = gpus_of(kubectl, other, "uncapped")
    assert uncapped_gpus
    assert all(g.get("requestedPowerLimitWatts") is None for g in uncapped_gpus)

    def job_power(job: str) -> float:
        return float(kubectl.json("get", "tj", job).get("status", {}).get("powerWatts") or 0)

    wait_for("the capped job's status power at most 4 x 400 W", lambda: 0 < job_power("capped") <= 4 * 400)
    wait_for("the uncapped job drawing more", lambda: job_power("uncapped") > 4 * 600)
    print(f"power: capped job {job_power('capped')} W, uncapped job {job_power('uncapped')} W (4 GPUs each)")
    scraped = operator.metrics()
    assert 'powertrain_job_power_cap_watts{exported_namespace="default",training_job="capped"} 400.0' in scraped
    assert 'training_job="uncapped"} 400.0' not in scraped
    assert f'powertrain_node_domain_info{{domain="{node}",level="node",node="{node}"}} 1.0' in scraped

    wait_for(
        "capped job succeeded",
        lambda: kubectl.json("get", "tj", "capped").get("status", {}).get("phase") == "Succeeded",
        timeout=90,
    )

    def withdrawn() -> bool:
        nt = telemetry(kubectl, node)
        if nt.get("spec", {}).get("powerLimits"):
            return False
        ids = {r["uuid"] for r in spec}
        gpus = [g for g in nt.get("status", {}).get("gpus", []) if g["uuid"] in ids]
        return len(gpus) == 4 and all(
            g.get("requestedPowerLimitWatts") is None and g.get("powerLimitWatts") == g.get("defaultPowerLimitWatts")
            for g in gpus
        )

    wait_for("the request withdrawn and the default limit restored", withdrawn, timeout=60)
