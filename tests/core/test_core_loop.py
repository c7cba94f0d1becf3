"""The core driven pass after pass by a minimal fake shell (no Kubernetes): decisions converge.

The shell applies each JobPlan the way the operator does: create the gang's pods bound to their nodes, write
the status, delete pods, delete the job. The "kubelet" turns pods Running (or Failed / Succeeded when a test
says so); deleted pods disappear on the next pass.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from core_builders import cluster, job

from powertrain.core.lifecycle import decide_all
from powertrain.core.scheduler import schedule
from powertrain.core.snapshot import ClusterSnapshot
from powertrain.core.workload import GANG_GENERATION_ANNOTATION, render_gang

T0 = datetime(2026, 1, 2, tzinfo=UTC)


class FakeShell:
    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self.nodes = nodes
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.now = T0
        self.history: list[str] = []
        self.rv = 0

    def submit(self, obj: dict[str, Any]) -> None:
        self.jobs[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj

    def snapshot(self) -> ClusterSnapshot:
        return ClusterSnapshot.build(nodes=self.nodes, pods=list(self.pods.values()), jobs=list(self.jobs.values()))

    def step(self, seconds: float = 1.0) -> None:
        snap = self.snapshot()
        decisions = schedule(snap, self.now)
        for plan in decide_all(snap, self.now, decisions):
            obj = self.jobs[plan.key]
            for name in plan.delete_pods:
                self.pods.pop((plan.key[0], name), None)
            if plan.create_gang is not None:
                info = snap.jobs[plan.key]
                generation = plan.generation or 1
                obj["metadata"].setdefault("annotations", {})[GANG_GENERATION_ANNOTATION] = str(generation)
                pods = render_gang(info.job, plan.create_gang.nodes, generation)
                for pod, node in zip(pods, plan.create_gang.nodes, strict=True):
                    pod["spec"]["nodeName"] = node
                    pod["status"] = {"phase": "Running"}
                    self.pods[(plan.key[0], pod["metadata"]["name"])] = pod
                self.history.append(f"place {plan.key[1]} {','.join(plan.create_gang.nodes)}")
            for event in plan.events:
                self.history.append(f"{plan.key[1]}: {event.reason}")
            obj["status"] = plan.status.model_dump(mode="json", by_alias=True, exclude_none=True)
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            if plan.delete_job:
                del self.jobs[plan.key]
        self.check_no_overcommit()
        self.now += timedelta(seconds=seconds)

    def check_no_overcommit(self) -> None:
        used: dict[str, int] = {}
        for pod in self.pods.values():
            if pod["status"]["phase"] in ("Succeeded", "Failed"):
                continue  # finished pods hold nothing
            node = pod["spec"]["nodeName"]
            used[node] = used.get(node, 0) + int(pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
        assert all(v <= 8 for v in used.values()), used

    def phase(self, name: str) -> str | None:
        obj = self.jobs.get(("default", name))
        return obj.get("status", {}).get("phase") if obj else None

    def set_pod_phase(self, job_name: str, rank: int, phase: str) -> None:
        self.pods[("default", f"{job_name}-worker-{rank}")]["status"] = {"phase": phase}


def test_gangs_run_fail_restart_and_complete() -> None:
    shell = FakeShell(cluster(spines=1, racks=2, nodes=2))
    shell.submit(job("a", replicas=2, mode="Required", run_policy={"backoffLimit": 1}))
    shell.submit(job("b", replicas=2, mode="Required"))
    shell.submit(job("c", replicas=2, mode="Required"))  # no room until one finishes
    shell.step()
    assert shell.phase("a") == "Running"
    assert shell.phase("b") == "Running"
    assert shell.phase("c") == "Queued"
    # A worker of "a" fails: whole gang restarts after its backoff; meanwhile "c" takes the freed rack.
    shell.set_pod_phase("a", 1, "Failed")
    shell.step()
    assert shell.phase("a") == "Queued"
    shell.step()
    assert shell.phase("c") == "Running"
    # "b" completes; after the backoff "a" runs again in b's rack.
    shell.set_pod_phase("b", 0, "Succeeded")
    shell.step(seconds=10)
    assert shell.phase("b") == "Succeeded"
    shell.step()
    assert shell.phase("a") == "Running"
    assert shell.jobs[("default", "a")]["status"]["restarts"] == 1
    # It fails again: backoffLimit 1 is exhausted.
    shell.set_pod_phase("a", 0, "Failed")
    shell.step()
    assert shell.phase("a") == "Failed"
    assert "a: BackoffLimitExceeded" in shell.history


def test_preemption_end_to_end() -> None:
    shell = FakeShell(cluster(spines=1, racks=1, nodes=2))
    shell.submit(job("batch", replicas=2, priority=0))
    shell.step()
    assert shell.phase("batch") == "Running"
    shell.submit(job("urgent", replicas=2, mode="Required", priority=100, created="2026-01-01T00:00:05Z"))
    shell.step()
    assert shell.phase("batch") == "Queued"
    assert "batch: PreemptedByHigherPriority" in shell.history
    shell.step()
    assert shell.phase("urgent") == "Running"
    assert shell.phase("batch") == "Queued"
    placements = [h for h in shell.history if h.startswith("place")]
    assert placements == ["place batch s0-r0-n0,s0-r0-n1", "place urgent s0-r0-n0,s0-r0-n1"]
    # When urgent finishes, batch gets its GPUs back.
    shell.set_pod_phase("urgent", 0, "Succeeded")
    shell.step()
    shell.step()
    assert shell.phase("batch") == "Running"


def test_suspend_resume_and_scale_through_passes() -> None:
    shell = FakeShell(cluster(spines=1, racks=1, nodes=4))
    shell.submit(job("j", replicas=2))
    shell.step()
    obj = shell.jobs[("default", "j")]
    obj["spec"]["runPolicy"] = {"suspend": True}
    shell.step()
    assert shell.phase("j") == "Suspended"
    assert not shell.pods
    obj["spec"]["runPolicy"] = {"suspend": False}
    shell.step()
    assert shell.phase("j") == "Running"
    obj["spec"]["replicas"] = 4
    shell.step()
    shell.step()
    assert shell.phase("j") == "Running"
    assert len(shell.pods) == 4
    assert copy.deepcopy(shell.jobs[("default", "j")]["status"]["placement"]["nodes"]) == [
        "s0-r0-n0",
        "s0-r0-n1",
        "s0-r0-n2",
        "s0-r0-n3",
    ]
