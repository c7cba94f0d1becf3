"""Defragmentation (core/reschedule.py's plan_defragmentation through the scheduler and lifecycle)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core_builders import cluster, foreign_pod, job, policy, running, snap, worker_pods

from powertrain.core import conditions as cond
from powertrain.core.lifecycle import decide
from powertrain.core.scheduler import schedule

T0 = "2026-01-01T00:00:00Z"
NOW = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
D = "default"
RACK0 = [f"s0-r0-n{i}" for i in range(4)]
RACK1 = [f"s0-r1-n{i}" for i in range(4)]


def small(name: str, node_name: str, **kw: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    obj = running(job(name, **kw), [node_name])
    return obj, worker_pods(obj)


def world(
    mode: str = "Act", *, small_priority: int = 0, extra_pods: list[dict[str, Any]] | None = None, **defrag: Any
) -> Any:
    """Two racks of 4 nodes; one small gang on the first node of each: a 4-node Required-rack gang is blocked."""
    a, pa = small("a", RACK0[0], priority=small_priority)
    b, pb = small("b", RACK1[0], priority=small_priority)
    big = job("big", replicas=4, level="rack", mode="Required", created=T0)
    return snap(
        cluster(spines=1, racks=2, nodes=4),
        [a, b, big],
        pa + pb + (extra_pods or []),
        policy=policy(rescheduling={"defragmentation": {"mode": mode, **defrag}}),
    )


def test_act_moves_the_fewest_gpus_out_of_one_rack_and_keeps_it() -> None:
    s = world()
    d = schedule(s, NOW)
    assert list(d.moves) == [(D, "a")]  # one 8-GPU gang frees rack s0-r0 (ties go to the first domain by name)
    waiting = d.waiting[(D, "big")]
    assert waiting.reason == cond.REASON_WAITING_FOR_DEFRAGMENTATION
    assert "from 24 to 32" in waiting.message  # the rack's usable free GPUs before and after
    plan = decide(s, (D, "a"), NOW, d)
    assert plan is not None
    assert plan.delete_pods == ("a-worker-0",)
    assert plan.grace_period_seconds == 60
    assert plan.status.phase == "Queued"
    assert plan.status.moves == 1
    assert not plan.status.restarts
    assert sorted(a.node for a in plan.status.avoid_nodes) == RACK0
    assert plan.events[0].reason == cond.REASON_DEFRAGMENTED

    # Once a's worker is gone, both gangs are placed: the big one in the freed rack, the small one elsewhere.
    obj = {**s.job_objects[(D, "a")], "status": plan.status.to_wire()}
    obj["metadata"] = {**obj["metadata"], "resourceVersion": "2"}
    s.upsert_job(obj)
    s.remove_pod(D, "a-worker-0")
    later = schedule(s, NOW + timedelta(seconds=60))
    assert sorted(later.placements[(D, "big")].nodes) == RACK0
    assert later.placements[(D, "a")].nodes[0] in RACK1


def test_warn_only_names_the_plan() -> None:
    d = schedule(world("Warn"), NOW)
    assert not d.moves
    assert "defragmentation (Warn, not acted on)" in d.waiting[(D, "big")].message


def test_off_by_default() -> None:
    s = world()
    s.set_policy(policy())
    d = schedule(s, NOW)
    assert not d.moves
    assert "defragmentation" not in d.waiting[(D, "big")].message


def test_higher_priority_gangs_are_never_moved() -> None:
    assert not schedule(world(small_priority=10), NOW).moves


def test_a_gang_that_has_waited_less_than_min_wait_moves_nobody() -> None:
    assert not schedule(world(minWaitSeconds=600), NOW).moves


def test_disruption_budget_per_move() -> None:
    assert not schedule(world(maxGpusPerMove=4), NOW).moves


def test_a_gang_with_nowhere_else_to_go_is_not_moved() -> None:
    # Other schedulers' pods fill the rest of rack s0-r0: only rack s0-r1 could be freed, by moving b, and b
    # would have nowhere else to go.
    full = [foreign_pod(f"x{i}", n, gpus=8) for i, n in enumerate(RACK0[1:])]
    assert not schedule(world(extra_pods=full), NOW).moves


def test_no_gang_is_moved_twice_within_the_cooldown() -> None:
    s = world()
    for name in ("a", "b"):
        obj = dict(s.job_objects[(D, name)])
        obj["status"] = {**obj["status"], "lastMoveTime": "2026-01-01T00:04:00Z"}
        obj["metadata"] = {**obj["metadata"], "resourceVersion": "9"}
        s.upsert_job(obj)
    assert not schedule(s, NOW).moves
