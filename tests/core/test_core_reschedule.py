"""Straggler and idle decisions (core/reschedule.py) through the pure lifecycle, on a simulated clock."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from core_builders import cluster, job, policy, running, worker_pods

from powertrain.core import conditions as cond
from powertrain.core.lifecycle import JobPlan, decide
from powertrain.core.scheduler import schedule
from powertrain.core.snapshot import ClusterSnapshot

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = ("default", "llm")
NODES = ["s0-r0-n0", "s0-r0-n1", "s0-r0-n2"]
REPORT_S = 20


def report(node: str, pod: str, at: datetime, sm: float) -> dict[str, Any]:
    gpus = [
        {
            "index": i,
            "uuid": f"GPU-{node}-{i}",
            "smActivityPercent": sm,
            "tensorActivityPercent": sm * 0.9,
            "pod": {"namespace": "default", "name": pod},
        }
        for i in range(8)
    ]
    return {
        "metadata": {"name": node},
        "status": {"timestamp": at.isoformat(), "windowSeconds": REPORT_S, "gpus": gpus},
    }


class Run:
    """One running 3-worker gang; every step: reports from each worker, then a scheduling pass and the plan."""

    def __init__(self, nodes: list[str] = NODES, racks: int = 1, **rescheduling: Any) -> None:
        obj = running(job("llm", replicas=3), nodes, start=T0.isoformat())
        if racks > 1:
            obj["status"]["placement"] = {"level": "spine", "domain": "s0", "nodes": nodes}
        self.obj = obj
        self.snap = ClusterSnapshot.build(
            nodes=cluster(spines=1, racks=racks, nodes=4),
            jobs=[obj],
            pods=worker_pods(obj),
            policy=policy(rescheduling=rescheduling),
        )
        self.now = T0
        self.rv = 1
        self.plans: list[JobPlan] = []

    def step(self, sm: dict[int, float]) -> JobPlan:
        self.now += timedelta(seconds=REPORT_S)
        placement = (self.obj.get("status") or {}).get("placement") or {}
        for rank, node in enumerate(placement.get("nodes") or []):
            self.snap.upsert_telemetry(report(node, f"llm-worker-{rank}", self.now, sm.get(rank, 90.0)))
        plan = decide(self.snap, KEY, self.now, schedule(self.snap, self.now))
        assert plan is not None
        self.rv += 1
        self.obj = {**self.obj, "status": plan.status.to_wire()}
        self.obj["metadata"] = {**self.obj["metadata"], "resourceVersion": str(self.rv)}
        self.snap.upsert_job(self.obj)
        self.plans.append(plan)
        return plan

    def condition(self, type_: str) -> dict[str, Any] | None:
        for c in (self.obj.get("status") or {}).get("conditions") or []:
            if c["type"] == type_:
                return dict(c)
        return None

    def events(self, reason: str) -> list[str]:
        return [e.message for p in self.plans for e in p.events if e.reason == reason]


def test_a_worker_at_zero_is_reported_after_the_window_once() -> None:
    run = Run(stragglerWindowSeconds=120)
    for _ in range(5):  # 100 s: below the window
        run.step({1: 0.0})
    assert run.condition(cond.STRAGGLER) is None
    assert run.obj["status"]["efficiency"]["verdict"] == "Straggler"
    for _ in range(10):
        run.step({1: 0.0})
    straggler = run.condition(cond.STRAGGLER)
    assert straggler is not None
    assert straggler["status"] == "True"
    assert "llm-worker-1" in straggler["message"]
    assert "s0-r0-n1" in straggler["message"]
    assert len(run.events(cond.REASON_STRAGGLER)) == 1  # one Event, not one per pass
    assert run.obj["status"]["phase"] == "Running"  # Warn: reported, not moved


def test_short_dips_never_make_a_straggler() -> None:
    run = Run(stragglerWindowSeconds=300)
    for i in range(90):  # 30 minutes; worker 1 dips to 0 % for 60 s out of every 3 minutes
        run.step({1: 0.0 if i % 9 < 3 else 90.0})
    assert run.condition(cond.STRAGGLER) is None
    assert not run.events(cond.REASON_STRAGGLER)


def test_noise_over_half_an_hour_triggers_nothing() -> None:
    rng = random.Random(7)
    run = Run(stragglerWindowSeconds=60, idleWindowSeconds=60)
    for _ in range(90):
        run.step({r: rng.uniform(70, 98) for r in range(3)})
    assert run.condition(cond.STRAGGLER) is None
    assert run.condition(cond.IDLE) is None
    assert run.obj["status"]["efficiency"]["verdict"] == "Healthy"


def test_act_moves_the_gang_off_the_node_without_a_restart_and_avoids_it() -> None:
    run = Run(straggler="Act", stragglerWindowSeconds=60)
    plan = None
    for _ in range(12):
        plan = run.step({1: 0.0})
        if plan.delete_pods:
            break
    assert plan is not None
    assert plan.delete_pods, "the gang was not moved"
    status = run.obj["status"]
    assert status["phase"] == "Queued"
    assert status["moves"] == 1
    assert not status.get("restarts")
    assert [a["node"] for a in status["avoidNodes"]] == ["s0-r0-n1"]
    assert run.events(cond.REASON_STRAGGLER_MOVED)
    # The old pods are gone; the next pass places the gang elsewhere.
    for pod in list(run.snap.job_pods.get(KEY, {})):
        run.snap.remove_pod(*pod)
    placed = schedule(run.snap, run.now + timedelta(seconds=1)).placements[KEY]
    assert "s0-r0-n1" not in placed.nodes


def test_the_avoided_node_is_used_when_there_is_nowhere_else() -> None:
    run = Run(straggler="Act", stragglerWindowSeconds=60)
    run.snap.remove_node("s0-r0-n3")
    for _ in range(12):
        if run.step({1: 0.0}).delete_pods:
            break
    for pod in list(run.snap.job_pods.get(KEY, {})):
        run.snap.remove_pod(*pod)
    placed = schedule(run.snap, run.now + timedelta(seconds=1)).placements[KEY]
    assert sorted(placed.nodes) == NODES


def test_moves_per_hour_are_bounded() -> None:
    run = Run(straggler="Act", stragglerWindowSeconds=60, maxMovesPerHour=0)
    for _ in range(10):
        assert not run.step({1: 0.0}).delete_pods
    straggler = run.condition(cond.STRAGGLER)
    assert straggler is not None
    assert "maxMovesPerHour 0" in straggler["message"]


def test_an_idle_gang_is_reported_then_suspended_with_act() -> None:
    run = Run(idleWindowSeconds=120)
    for _ in range(8):
        run.step({0: 0.0, 1: 0.0, 2: 0.0})
    idle = run.condition(cond.IDLE)
    assert idle is not None
    assert idle["status"] == "True"
    assert idle["reason"] == cond.REASON_IDLE
    assert not any(p.suspend_job for p in run.plans)

    act = Run(idle="Act", idleWindowSeconds=120)
    plan = None
    for _ in range(8):
        plan = act.step({0: 0.0, 1: 0.0, 2: 0.0})
        if plan.suspend_job:
            break
    assert plan is not None
    assert plan.suspend_job
    assert "kubectl patch trainingjob llm" in act.events(cond.REASON_IDLE_SUSPENDED)[0]
    # The shell sets spec.runPolicy.suspend; the next pass stops the gang and says why and how to resume.
    act.obj = {**act.obj, "spec": {**act.obj["spec"], "runPolicy": {"suspend": True}}}
    act.obj["metadata"] = {**act.obj["metadata"], "resourceVersion": "suspended"}
    act.snap.upsert_job(act.obj)
    nxt = act.step({})
    assert nxt.delete_pods
    assert act.obj["status"]["phase"] == "Suspended"
    assert "idle" in act.obj["status"]["message"]
    assert 'suspend":false' in act.obj["status"]["message"]


def test_off_evaluates_nothing() -> None:
    run = Run(straggler="Off", idle="Off", stragglerWindowSeconds=60, idleWindowSeconds=60)
    for _ in range(10):
        run.step({0: 0.0, 1: 0.0, 2: 0.0})
    assert run.condition(cond.IDLE) is None
    assert run.condition(cond.STRAGGLER) is None


def test_a_communication_bound_gang_placed_wider_than_its_level_comes_back_narrower_when_moved() -> None:
    wide = ["s0-r0-n0", "s0-r1-n0", "s0-r1-n1"]  # a Preferred rack gang that had to span two racks
    run = Run(wide, racks=2, straggler="Act", stragglerWindowSeconds=60)
    for _ in range(3):
        run.step({0: 40.0, 1: 40.0, 2: 40.0})
    assert run.obj["status"]["efficiency"]["verdict"] == "CommunicationBound"
    assert "wider than spec.topology.level" in run.obj["status"]["efficiency"]["message"]
    for _ in range(10):
        if run.step({0: 40.0, 1: 40.0, 2: 0.0}).delete_pods:
            break
    assert run.obj["status"]["moves"] == 1
    for pod in list(run.snap.job_pods.get(KEY, {})):
        run.snap.remove_pod(*pod)
    placed = schedule(run.snap, run.now + timedelta(seconds=1)).placements[KEY]
    assert placed.level == "rack"
    assert "s0-r1-n1" not in placed.nodes
