"""Power budgets on the sandbox with sim agents and the real operator: a lowered rack budget is held (the
lowest-priority job is cut first), a gang that cannot fit even at minimum limits waits with reason PowerBudget,
and when the operator dies its caps expire and every GPU goes back to its default limit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from powertrain.api import constants as c
from powertrain.controllers.testing import OperatorProcess, condition, training_job, wait_for
from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.testing import FAST_KUBELET, Kubectl
from test_agent_operator import InProcessAgent, gpus_of, telemetry

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(nodes=3, gpus_per_node=8, topology="rack=1", kubelet=FAST_KUBELET)


@pytest.fixture
def agents(sandbox: Sandbox) -> Iterator[dict[str, InProcessAgent]]:
    running = {node: InProcessAgent(sandbox, node) for node in sandbox.node_names}
    yield running
    for a in running.values():
        a.stop()


def set_budget(kubectl: Kubectl, watts: int) -> None:
    policy = {
        "apiVersion": c.API_VERSION,
        "kind": "ClusterTrainingPolicy",
        "metadata": {"name": "default"},
        "spec": {"power": {"budgetLevel": "rack", "domainWatts": watts}},
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump(policy))


def rack_draw(agents: dict[str, InProcessAgent]) -> float:
    """What the rack's GPUs draw right now (the sim's truth, not a report)."""
    return sum(g.draw_watts() for a in agents.values() for g in a.sim.fake.gpus)


def job_gpus(kubectl: Kubectl, sandbox: Sandbox, job: str) -> list[dict[str, Any]]:
    return [g for node in sandbox.node_names for g in gpus_of(kubectl, node, job)]


def test_a_lowered_rack_budget_is_held_cutting_the_lowest_priority_first_and_caps_expire_without_the_operator(
    sandbox: Sandbox, kubectl: Kubectl, agents: dict[str, InProcessAgent], operator: OperatorProcess
) -> None:
    for name, priority in (("low", 0), ("high", 10)):
        job = training_job(name, gpus=8, level="node", run_seconds=900)
        job["spec"]["priority"] = priority
        job["spec"]["power"] = {"mode": "Performance"}
        kubectl("apply", "-f", "-", input=yaml.safe_dump(job))
    wait_for(
        "both gangs' GPUs busy and attributed",
        lambda: all(len(job_gpus(kubectl, sandbox, j)) == 8 for j in ("low", "high")),
        timeout=90,
    )
    before = rack_draw(agents)
    assert before > 11_000  # 16 dense matmuls at ~682 W and 8 idle GPUs at 77 W

    # 8200 W: the 8 idle GPUs take 616 W; of the rest the high-priority job keeps 8 × 700 W and the low one gets
    # what is left (~248 W each).
    lowered = time.monotonic()
    set_budget(kubectl, 8200)
    wait_for("the rack under its 8200 W budget", lambda: rack_draw(agents) <= 8200, timeout=60)
    settled = time.monotonic() - lowered
    print(f"rack draw {before:.0f} W -> {rack_draw(agents):.0f} W under an 8200 W budget in {settled:.1f} s")
    wait_for(
        "the low-priority job capped, the high-priority one not",
        lambda: (
            all(g.get("requestedPowerLimitWatts") for g in job_gpus(kubectl, sandbox, "low"))
            and not any(g.get("requestedPowerLimitWatts") for g in job_gpus(kubectl, sandbox, "high"))
        ),
    )
    low = job_gpus(kubectl, sandbox, "low")
    high = job_gpus(kubectl, sandbox, "high")
    assert max(g["requestedPowerLimitWatts"] for g in low) < 700
    assert all(g.get("powerLimitWatts") == 700 for g in high)

    def budget_status() -> dict[str, Any]:
        budgets = kubectl.json("get", "clustertrainingpolicies", "default").get("status", {}).get("budgets") or []
        return dict(budgets[0]) if budgets else {}

    wait_for("the policy status reporting the rack budget", lambda: budget_status().get("cappedGpus") == 8)
    assert budget_status()["budgetWatts"] == 8200

    # Below what the busy GPUs need at their minimum limits: a new gang cannot start anywhere in the rack.
    set_budget(kubectl, 4000)
    wait_for("the rack under 4000 W", lambda: rack_draw(agents) <= 4000, timeout=60)
    kubectl("apply", "-f", "-", input=yaml.safe_dump(training_job("late", gpus=8, level="node", run_seconds=60)))

    def power_wait() -> dict[str, Any] | None:
        found = condition(kubectl.json("get", "tj", "late"), "Unschedulable")
        return found if found and found.get("reason") == "PowerBudget" else None

    wait_for("the late gang waiting with reason PowerBudget", lambda: power_wait() is not None)
    message = (power_wait() or {}).get("message", "")
    assert "rack" in message
    assert "4000 W" in message

    # The operator dies: nobody renews the requests, and within their 60 s lifetime the GPUs are back at default.
    operator.kill()
    killed = time.monotonic()
    wait_for(
        "every GPU back at its default limit",
        lambda: all(g.limit_mw == g.spec.default_limit_mw for a in agents.values() for g in a.sim.fake.gpus),
        timeout=120,
    )
    print(f"caps expired {time.monotonic() - killed:.0f} s after the operator was killed")
    wait_for(
        "the agents reporting that the requests expired",
        lambda: all(
            any(cond.get("reason") == "RequestsExpired" for cond in telemetry(kubectl, n)["status"]["conditions"])
            for n in sandbox.node_names
            if telemetry(kubectl, n).get("spec", {}).get("powerLimits")
        ),
    )


def test_an_efficiency_job_finds_a_low_cap_for_a_memory_bound_phase_within_its_bound(
    sandbox: Sandbox, kubectl: Kubectl, agents: dict[str, InProcessAgent], operator: OperatorProcess
) -> None:
    job = training_job("copy", gpus=4, level="node", run_seconds=900)
    job["spec"]["power"] = {"mode": "Efficiency"}
    job["spec"]["template"]["metadata"]["annotations"]["powertrain.dev/sim-workload"] = "memcopy"
    kubectl("apply", "-f", "-", input=yaml.safe_dump(job))

    def power() -> dict[str, Any]:
        return dict(kubectl.json("get", "tj", "copy").get("status", {}).get("power") or {})

    wait_for("the search settled", lambda: power().get("state") == "Settled", timeout=180)
    settled = power()
    print(f"settled: {settled}")
    assert settled["signal"] == "throughput"  # the sim publishes the pods' samples/s, which wins over the clock
    assert settled["capWatts"] <= 450
    held = [g for a in agents.values() for g in a.sim.fake.gpus if g.owner is not None]
    assert len(held) == 4
    wait_for("the sim GPUs at the settled cap", lambda: all(g.limit_mw == settled["capWatts"] * 1000 for g in held))
    true_slowdown = sum(g.workload.rate_per_second for g in held) / sum(g.throughput() for g in held) - 1
    assert true_slowdown <= 0.05
    assert sum(g.draw_watts() for g in held) < 4 * 625 * 0.7  # ≥ 30 % less power than uncapped
