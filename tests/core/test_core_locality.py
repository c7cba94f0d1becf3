"""Preferred topology: a gang waits a bounded time for one domain of its level before it is placed wider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core_builders import cluster, job, node, policy, running, snap, worker_pods

from powertrain.core import conditions as cond
from powertrain.core.lifecycle import decide_all
from powertrain.core.scheduler import schedule
from powertrain.core.snapshot import ClusterSnapshot

T0 = datetime(2026, 1, 1, tzinfo=UTC)
D = "default"
BIG = (D, "big")
FIXED_WAIT = {"costAwareWait": False, "preferredWaitSeconds": 300}
"""The fixed 300 s wait these tests were written for (the default before the cost-aware wait)."""


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _half_full(
    extra_jobs: list[dict[str, Any]] = (),  # type: ignore[assignment]
    racks: int = 2,
    **kw: Any,
) -> ClusterSnapshot:
    """Racks of 4 × 8-GPU nodes in one spine, each half held by a running gang: 16 free GPUs per rack, no rack
    has 32. The fixed wait (no cost estimate) unless a policy is given."""
    kw.setdefault("policy", policy(placement=FIXED_WAIT))
    holders = [running(job(f"hold-{r}", replicas=2), [f"s0-r{r}-n0", f"s0-r{r}-n1"]) for r in range(racks)]
    pods = [p for h in holders for p in worker_pods(h)]
    return snap(cluster(spines=1, racks=racks, nodes=4), [*holders, *extra_jobs], pods, **kw)


def _held_since(seconds: float) -> dict[str, Any]:
    """The status the operator writes once a pass holds the gang back for locality."""
    return {"phase": "Queued", "localityWaitStart": _at(seconds).isoformat()}


def _condition(plan_status: Any, type_: str) -> Any:
    return next(c for c in plan_status.conditions if c.type == type_)


def test_a_gang_that_would_start_scattered_waits_for_one_rack_and_keeps_it() -> None:
    small = job("small", replicas=1, level="node", created="2026-01-01T00:00:30Z")
    s = _half_full([job("big", replicas=4), small])
    d = schedule(s, _at(60))
    assert BIG not in d.placements
    why = d.waiting[BIG]
    assert why.reason == cond.REASON_WAITING_FOR_LOCALITY
    assert "until 2026-01-01T00:06:00Z for one rack" in why.message
    assert "the largest rack" in why.message
    assert "has 16 free" in why.message
    assert "rack s0-r0 is kept for it" in why.message
    assert d.wake_at == _at(360)
    # The kept rack is closed to later jobs; the rest of the cluster is not.
    assert d.placements[(D, "small")].nodes[0].startswith("s0-r1-")


def test_after_the_wait_the_gang_is_placed_wider_and_marked_topology_degraded() -> None:
    s = _half_full([job("big", replicas=4, status=_held_since(1))])
    d = schedule(s, _at(301))
    placed = d.placements[BIG]
    assert placed.level == "spine"
    assert d.wake_at is None
    plan = next(p for p in decide_all(s, _at(301), d) if p.key == BIG)
    degraded = _condition(plan.status, cond.TOPOLOGY_DEGRADED)
    assert degraded.status == "True"
    assert degraded.reason == cond.REASON_WIDER_THAN_LEVEL
    assert "spine s0" in degraded.message
    assert "wider than spec.topology.level rack" in degraded.message
    assert any(e.reason == cond.REASON_WIDER_THAN_LEVEL and e.warning for e in plan.events)


def test_the_waiting_reason_reaches_the_job_status() -> None:
    s = _half_full([job("big", replicas=4)])
    d = schedule(s, _at(60))
    plan = next(p for p in decide_all(s, _at(60), d) if p.key == BIG)
    unschedulable = _condition(plan.status, cond.UNSCHEDULABLE)
    assert (unschedulable.status, unschedulable.reason) == ("True", cond.REASON_WAITING_FOR_LOCALITY)
    assert plan.status.phase == "Queued"
    assert any(e.reason == cond.REASON_WAITING_FOR_LOCALITY for e in plan.events)


def test_a_gang_is_placed_inside_its_level_at_once_when_a_domain_has_room() -> None:
    s = snap(cluster(spines=1, racks=2, nodes=4), [job("big", replicas=4)])
    d = schedule(s, _at(1))
    assert d.placements[BIG].level == "rack"
    assert d.wake_at is None
    plan = next(p for p in decide_all(s, _at(1), d) if p.key == BIG)
    degraded = _condition(plan.status, cond.TOPOLOGY_DEGRADED)
    assert (degraded.status, degraded.reason) == ("False", cond.REASON_WITHIN_LEVEL)
    assert not any(e.reason == cond.REASON_WIDER_THAN_LEVEL for e in plan.events)


def test_a_gang_larger_than_any_domain_of_its_level_widens_at_once() -> None:
    # 40 GPUs never fit in a 32-GPU rack: waiting would only waste time.
    s = snap(cluster(spines=1, racks=2, nodes=4), [job("big", replicas=5)])
    d = schedule(s, _at(1))
    assert d.placements[BIG].level == "spine"
    plan = next(p for p in decide_all(s, _at(1), d) if p.key == BIG)
    assert _condition(plan.status, cond.TOPOLOGY_DEGRADED).status == "True"


def test_a_zero_wait_policy_places_wider_at_once() -> None:
    s = _half_full([job("big", replicas=4)], policy=policy(placement={**FIXED_WAIT, "preferredWaitSeconds": 0}))
    assert schedule(s, _at(1)).placements[BIG].level == "spine"


def test_the_wait_bound_comes_from_the_policy() -> None:
    s = _half_full(
        [job("big", replicas=4, status=_held_since(0))],
        policy=policy(placement={**FIXED_WAIT, "preferredWaitSeconds": 3600}),
    )
    d = schedule(s, _at(1000))
    assert d.waiting[BIG].reason == cond.REASON_WAITING_FOR_LOCALITY
    assert d.wake_at == _at(3600)
    assert schedule(s, _at(3600)).placements[BIG].level == "spine"


def test_the_wait_counts_from_the_first_pass_that_held_the_gang_back_not_from_submission() -> None:
    # Queued for hours behind other work, then held back for locality: it still gets its whole wait.
    s = _half_full([job("big", replicas=4)])
    d = schedule(s, _at(10_000))
    assert d.waiting[BIG].reason == cond.REASON_WAITING_FOR_LOCALITY
    assert d.wake_at == _at(10_300)
    plan = next(p for p in decide_all(s, _at(10_000), d) if p.key == BIG)
    assert plan.status.locality_wait_start == _at(10_000)
    # The next pass reads the start back from the status the operator wrote; the bound does not move.
    s = _half_full([job("big", replicas=4, status=_held_since(10_000))])
    d = schedule(s, _at(10_200))
    assert d.wake_at == _at(10_300)
    plan = next(p for p in decide_all(s, _at(10_200), d) if p.key == BIG)
    assert plan.status.locality_wait_start == _at(10_000)
    d = schedule(s, _at(10_300))
    assert d.placements[BIG].level == "spine"
    plan = next(p for p in decide_all(s, _at(10_300), d) if p.key == BIG)
    assert plan.status.locality_wait_start is None  # placed: a later restart waits afresh


def test_a_gang_that_cannot_start_anywhere_waits_for_resources_not_locality() -> None:
    s = _half_full([job("big", replicas=5)])  # 40 GPUs; 32 free in the whole cluster
    d = schedule(s, _at(1))
    assert d.waiting[BIG].reason == cond.REASON_WAITING_FOR_RESOURCES
    assert d.wake_at is None


def test_required_gangs_never_widen_and_never_wait_for_locality() -> None:
    s = _half_full([job("big", replicas=4, mode="Required")])
    for seconds in (1, 10_000):
        d = schedule(s, _at(seconds))
        assert BIG not in d.placements
        assert d.waiting[BIG].reason != cond.REASON_WAITING_FOR_LOCALITY
        assert d.wake_at is None


def test_identical_waiting_gangs_keep_one_domain_between_them() -> None:
    jobs = [job("big", replicas=4), job("big2", replicas=4, created="2026-01-01T00:00:01Z")]
    s = _half_full(jobs, racks=3)
    d = schedule(s, _at(60))
    assert "rack s0-r0 is kept" in d.waiting[BIG].message
    # The second waits in the queue behind the first, not yet for locality: its wait bound has not started.
    assert d.waiting[(D, "big2")].reason == cond.REASON_WAITING_FOR_RESOURCES
    assert "is kept" not in d.waiting[(D, "big2")].message
    assert "waiting behind default/big" in d.waiting[(D, "big2")].message
    plans = {p.key: p for p in decide_all(s, _at(60), d)}
    assert plans[BIG].status.locality_wait_start == _at(60)
    assert plans[(D, "big2")].status.locality_wait_start is None


def test_a_level_the_policy_does_not_define_never_holds_a_gang_back() -> None:
    # The policy knows nodes and spines only: "rack" names no domains, so there is nothing to wait for.
    levels = [
        {"name": "node", "nodeLabel": "kubernetes.io/hostname"},
        {"name": "spine", "nodeLabel": "fabric.topograph.run/tier-1"},
    ]
    s = _half_full([job("big", replicas=4)], policy=policy(topology=levels))
    d = schedule(s, _at(1))
    assert d.placements[BIG].level == "spine"
    assert d.wake_at is None


def test_a_gang_that_fits_one_node_without_a_rack_label_starts_there_at_once() -> None:
    # The rack's nodes have 4 free GPUs each, too few for an 8-GPU worker; one node carries no rack label (so it
    # belongs to no rack) and has 8: a single node is as close together as the gang can get, so it starts there.
    loose = node("loose", gpus=8, rack=None, spine="s0")
    holders = [running(job(f"hold-{n}", replicas=1, gpus=4), [f"s0-r0-n{n}"]) for n in range(2)]
    pods = [p for h in holders for p in worker_pods(h)]
    s = snap([*cluster(spines=1, racks=1, nodes=2), loose], [*holders, job("one", replicas=1, gpus=8)], pods)
    d = schedule(s, _at(1))
    assert d.placements[(D, "one")].nodes == ("loose",)
