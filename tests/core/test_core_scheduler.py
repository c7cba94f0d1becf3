"""One scheduling pass: queue order, quotas, backfill without starvation, and preemption."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core_builders import cluster, job, node, policy, running, snap, worker_pods

from powertrain.core import conditions as cond
from powertrain.core.scheduler import schedule

NOW = datetime(2026, 1, 2, tzinfo=UTC)
D = "default"


def _running_job(name: str, nodes: list[str], **kw: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    obj = running(job(name, replicas=len(nodes), **kw), nodes)
    return obj, worker_pods(obj)


def test_higher_priority_goes_first_then_earlier_submission() -> None:
    nodes = [node("a"), node("b")]
    jobs = [
        job("late", priority=0, created="2026-01-01T00:00:02Z"),
        job("early", priority=0, created="2026-01-01T00:00:01Z"),
        job("vip", priority=10, created="2026-01-01T00:00:09Z"),
    ]
    d = schedule(snap(nodes, jobs), NOW)
    assert set(d.placements) == {(D, "vip"), (D, "early")}
    assert d.waiting[(D, "late")].reason == cond.REASON_WAITING_FOR_RESOURCES
    assert d.positions[(D, "late")] == 1


def test_quota_caps_a_queue_and_keeps_its_order() -> None:
    queues = [{"name": "team", "gpuQuota": 16}, {"name": "other"}]
    held, pods = _running_job("held", ["n0"], queue="team")
    jobs = [
        held,
        job("big", replicas=2, queue="team", created="2026-01-01T00:00:01Z"),  # 8 held + 16 > 16
        job("small", replicas=1, queue="team", created="2026-01-01T00:00:02Z"),  # would fit, but waits behind big
        job("elsewhere", replicas=1, queue="other", created="2026-01-01T00:00:03Z"),
        job("never", replicas=3, queue="team", created="2026-01-01T00:00:00Z"),
    ]
    d = schedule(snap([node(f"n{i}") for i in range(6)], jobs, pods, policy=policy(queues=queues)), NOW)
    assert set(d.placements) == {(D, "elsewhere")}
    assert d.waiting[(D, "big")].message == "queue 'team' holds 8 of its 16 GPU quota; the job needs 16 more"
    assert d.waiting[(D, "small")].reason == cond.REASON_QUOTA_EXCEEDED
    assert "waiting behind default/big" in d.waiting[(D, "small")].message
    assert "more than queue 'team' may ever hold (gpuQuota 16)" in d.waiting[(D, "never")].message


def test_unknown_queue_is_reported() -> None:
    d = schedule(snap([node("a")], [job("j", queue="nope")]), NOW)
    assert d.waiting[(D, "j")].reason == cond.REASON_UNKNOWN_QUEUE
    assert "spec.queue: 'nope' is not a queue of the ClusterTrainingPolicy (queues: default)" in (
        d.waiting[(D, "j")].message
    )


def test_backfill_never_uses_the_domain_kept_for_the_head() -> None:
    # Two racks of 4; rack r0 has 3 nodes busy, rack r1 has 2 busy. The head (4 nodes, Required rack) fits nowhere
    # now; r1 is closest to fitting, so r1 is kept for it. Small jobs backfill into r0 only.
    nodes = cluster(spines=1, racks=2, nodes=4)
    a, pa = _running_job("busy-a", ["s0-r0-n0", "s0-r0-n1", "s0-r0-n2"], priority=50)
    b, pb = _running_job("busy-b", ["s0-r1-n0", "s0-r1-n1"], priority=50)
    jobs = [
        a,
        b,
        job("head", replicas=4, mode="Required", priority=5, created="2026-01-01T00:00:01Z"),
        job("small-1", replicas=1, priority=1, created="2026-01-01T00:00:02Z"),
        job("small-2", replicas=1, priority=1, created="2026-01-01T00:00:03Z"),
    ]
    d = schedule(snap(nodes, jobs, pa + pb), NOW)
    assert d.waiting[(D, "head")].message.endswith("rack s0-r1 is kept for it")
    assert d.placements[(D, "small-1")].nodes == ("s0-r0-n3",)
    assert (D, "small-2") in d.waiting  # r1's free nodes stay free for the head
    assert not d.preemptions  # equal-or-lower... the busy gangs have higher priority


def test_a_job_that_can_never_fit_blocks_nobody() -> None:
    nodes = cluster(spines=1, racks=1, nodes=2)
    jobs = [
        job("impossible", replicas=3, mode="Required", priority=9),
        job("small", replicas=1, priority=0),
    ]
    d = schedule(snap(nodes, jobs), NOW)
    assert d.waiting[(D, "impossible")].reason == cond.REASON_NEVER_FITS
    assert (D, "small") in d.placements


def test_preemption_takes_whole_lower_priority_gangs_minimally() -> None:
    nodes = cluster(spines=1, racks=1, nodes=4)
    low, pl = _running_job("low", ["s0-r0-n0"], priority=1)
    lower, pll = _running_job("lower", ["s0-r0-n1", "s0-r0-n2"], priority=0)
    equal, pe = _running_job("equal", ["s0-r0-n3"], priority=5)
    d = schedule(snap(nodes, [low, lower, equal, job("vip", replicas=2, priority=5)], pl + pll + pe), NOW)
    # Only the priority-0 gang is needed (it frees two nodes); the priority-1 one is spared; equal never touched.
    assert set(d.preemptions) == {(D, "lower")}
    assert d.preemptions[(D, "lower")].preemptor == (D, "vip")
    assert d.waiting[(D, "vip")].reason == cond.REASON_WAITING_FOR_PREEMPTION
    assert "preempted by default/vip (priority 5)" in d.preemptions[(D, "lower")].message


def test_equal_priority_never_preempts() -> None:
    busy, pods = _running_job("busy", ["a"], priority=3)
    d = schedule(snap([node("a")], [busy, job("same", priority=3)], pods), NOW)
    assert not d.preemptions


def test_preemption_respects_topology() -> None:
    # A Required-rack gang of 2 nodes: victims must free two nodes of *one* rack, so the cheap victims spread
    # over two racks do not help and the two-node gang in rack r1 is taken instead.
    nodes = cluster(spines=1, racks=2, nodes=2)
    x, px = _running_job("x", ["s0-r0-n0"], priority=0)
    y, py = _running_job("y", ["s0-r0-n1"], priority=2)
    z, pz = _running_job("z", ["s0-r1-n0", "s0-r1-n1"], priority=1)
    d = schedule(snap(nodes, [x, y, z, job("vip", replicas=2, mode="Required", priority=9)], px + py + pz), NOW)
    assert set(d.preemptions) == {(D, "z")}


def test_no_second_preemption_while_victims_terminate() -> None:
    low = job("low", priority=0, status={"phase": "Queued", "conditions": []})  # already preempted, requeued
    pods = worker_pods(running(job("low", priority=0), ["a"]))
    pods[0]["metadata"]["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    other, po = _running_job("other", ["b"], priority=0)
    d = schedule(snap([node("a"), node("b")], [low, other, job("vip", priority=9)], pods + po), NOW)
    assert not d.preemptions
    assert d.waiting[(D, "vip")].message.startswith("waiting for preempted or finished gangs to release node a")


def test_preemption_can_be_disabled() -> None:
    busy, pods = _running_job("busy", ["a"], priority=0)
    d = schedule(
        snap([node("a")], [busy, job("vip", priority=9)], pods, policy=policy(preemption={"enabled": False})), NOW
    )
    assert not d.preemptions
    assert d.waiting[(D, "vip")].reason == cond.REASON_WAITING_FOR_RESOURCES


def test_suspended_finished_and_backing_off_jobs_are_not_scheduled() -> None:
    restarting = {
        "phase": "Queued",
        "restarts": 2,
        "conditions": [
            {
                "type": "Restarting",
                "status": "True",
                "reason": "PodFailed",
                "lastTransitionTime": "2026-01-01T23:59:50Z",
            }
        ],
    }
    jobs = [
        job("paused", run_policy={"suspend": True}),
        job("done", status={"phase": "Succeeded"}),
        job("backoff", status=restarting),  # restart 2: 20 s backoff from 23:59:50 → not before 00:00:10
    ]
    s = snap([node("a"), node("b"), node("c")], jobs)
    d = schedule(s, NOW)
    assert not d.placements
    assert not d.waiting
    assert d.backing_off[(D, "backoff")] == NOW + timedelta(seconds=10)
    assert (D, "backoff") in schedule(s, NOW + timedelta(seconds=10)).placements


def test_jobs_with_leftover_pods_wait_for_them() -> None:
    leftovers = worker_pods(running(job("j"), ["a"]), phase="Failed")
    d = schedule(snap([node("a"), node("b")], [job("j")], leftovers), NOW)
    assert not d.placements


def test_many_identical_jobs_fail_fast_once_full() -> None:
    jobs = [
        job(f"j{i:03d}", replicas=1, gpus=8, created=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z") for i in range(200)
    ]
    d = schedule(snap(cluster(spines=1, racks=2, nodes=4), jobs), NOW)
    assert len(d.placements) == 8
    assert sorted(d.placements) == [(D, f"j{i:03d}") for i in range(8)]
    assert len(d.waiting) == 192
