"""Autoscaling decisions of one pass: shrink before preempt (how far), start smaller, grow only into idle GPUs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core_builders import cluster, job, running, snap, worker_pods

from powertrain.core import conditions as cond
from powertrain.core.scheduler import schedule

NOW = datetime(2026, 1, 2, tzinfo=UTC)
NODES = ["s0-r0-n0", "s0-r0-n1", "s0-r0-n2", "s0-r0-n3"]


def elastic_running(
    name: str, replicas: int, nodes: list[str], lo: int = 1, hi: int = 4, status: dict[str, Any] | None = None
) -> dict[str, Any]:
    obj = running(job(name, replicas=replicas), nodes, requestedReplicas=replicas, **(status or {}))
    obj["spec"]["elastic"] = {"minReplicas": lo, "maxReplicas": hi}
    return obj


def test_an_equal_priority_gang_gets_back_only_what_the_elastic_job_borrowed() -> None:
    el = elastic_running("el", 2, NODES)  # asked for 2, grew to 4 into idle GPUs
    s = snap(cluster(spines=1, racks=1), [el, job("b", replicas=3)], worker_pods(el))
    d = schedule(s, NOW)
    assert not d.resizes, "shrunk below what it asked for, or for nothing (3 workers cannot be freed)"
    assert ("default", "b") in d.waiting
    s2 = snap(cluster(spines=1, racks=1), [elastic_running("el", 2, NODES), job("b", replicas=2)], worker_pods(el))
    d2 = schedule(s2, NOW)
    resize = d2.resizes[("default", "el")]
    assert (resize.from_replicas, resize.to_replicas, resize.nodes) == (4, 2, tuple(NODES[:2]))
    assert resize.reason == "shrank 4→2 for default/b (priority 0, queue default)"
    assert d2.waiting[("default", "b")].reason == cond.REASON_WAITING_FOR_SHRINK
    assert not d2.preemptions


def test_a_higher_priority_gang_shrinks_an_elastic_job_to_its_minimum_instead_of_preempting_it() -> None:
    el = elastic_running("el", 4, NODES)
    s = snap(cluster(spines=1, racks=1), [el, job("urgent", replicas=3, priority=10, mode="Required")], worker_pods(el))
    d = schedule(s, NOW)
    assert d.resizes[("default", "el")].to_replicas == 1
    assert not d.preemptions


def test_below_its_minimum_the_elastic_job_is_preempted_whole() -> None:
    el = elastic_running("el", 4, NODES, lo=2)
    s = snap(cluster(spines=1, racks=1), [el, job("urgent", replicas=4, priority=10, mode="Required")], worker_pods(el))
    d = schedule(s, NOW)
    assert ("default", "el") in d.preemptions
    assert ("default", "el") not in d.resizes


def test_a_waiting_elastic_job_starts_with_what_fits() -> None:
    fixed = running(job("fixed", replicas=3), NODES[:3])
    obj = job("el", replicas=4)
    obj["spec"]["elastic"] = {"minReplicas": 1, "maxReplicas": 4}
    d = schedule(snap(cluster(spines=1, racks=1), [fixed, obj], worker_pods(fixed)), NOW)
    assert d.placements[("default", "el")].nodes == (NODES[3],)


def test_growth_waits_for_idle_time_and_never_takes_a_waiting_gangs_gpus() -> None:
    el = elastic_running("el", 2, NODES[:2])
    s = snap(cluster(spines=1, racks=1), [el], worker_pods(el))
    d = schedule(s, NOW)
    assert d.growable == {("default", "el"): 2}  # 2 idle nodes; not grown before they stay idle long enough
    assert not d.resizes
    el = elastic_running("el", 2, NODES[:2], status={"growableSince": "2026-01-01T23:57:00Z"})
    d = schedule(snap(cluster(spines=1, racks=1), [el], worker_pods(el)), NOW)
    assert d.resizes[("default", "el")].to_replicas == 4
    assert d.resizes[("default", "el")].reason == "grew 2→4: 16 GPUs idle for 180 s in rack s0-r0"
    # A gang waits for the whole rack: the idle nodes are kept for it, nobody grows into them.
    d = schedule(snap(cluster(spines=1, racks=1), [el, job("big", replicas=4, mode="Required")], worker_pods(el)), NOW)
    assert not d.resizes
