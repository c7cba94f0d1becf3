"""Weighted fair sharing between queues: equal-priority backlogs split the GPUs by queue weight, while priority,
quotas and the domain kept for a blocked job still rule."""

from __future__ import annotations

import copy
import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from core_builders import cluster, job, policy, running, snap, worker_pods
from hypothesis import given, settings
from hypothesis import strategies as st

from powertrain.api.policy import QueueSpec
from powertrain.core import conditions as cond
from powertrain.core.queueing import order_for_admission, queue_order
from powertrain.core.scheduler import schedule
from powertrain.core.snapshot import ClusterSnapshot, JobInfo

NOW = datetime(2026, 1, 2, tzinfo=UTC)
D = "default"


def _at(second: int) -> str:
    return f"2026-01-01T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"


def _backlog(queue: str, count: int, *, first: int = 0, gpus: int = 1, priority: int = 0) -> list[dict[str, Any]]:
    return [
        job(f"{queue}-{i:03d}", gpus=gpus, queue=queue, priority=priority, created=_at(first + i)) for i in range(count)
    ]


def _held(s: ClusterSnapshot, placements: Any) -> Counter[str]:
    held: Counter[str] = Counter()
    for key in placements:
        info = s.jobs[key]
        held[info.queue] += info.spec_replicas * info.gpus_per_replica
    return held


def _weights(**weights: int) -> dict[str, Any]:
    return policy(queues=[{"name": name, "weight": weight} for name, weight in weights.items()])


def test_weights_1_to_3_split_an_empty_cluster_1_to_3_even_when_the_light_queue_submitted_first() -> None:
    # 32 GPUs; queue a's whole backlog was submitted before b's, so first come first served would give a all 32.
    jobs = _backlog("a", 40) + _backlog("b", 40, first=100)
    s = snap(cluster(spines=1, racks=1, nodes=4), jobs, policy=_weights(a=1, b=3))
    d = schedule(s, NOW)
    assert _held(s, d.placements) == {"a": 8, "b": 24}
    # Within each queue the earliest jobs are the ones that ran.
    assert {k[1] for k in d.placements if k[1].startswith("a")} == {f"a-{i:03d}" for i in range(8)}


def _simulate(steps: int, seed: int) -> list[Counter[str]]:
    """A 64-GPU cluster fully held by queue a's gangs when equal-priority backlogs of a (weight 1) and b (weight 3)
    arrive; gangs finish after random durations. Returns the GPUs each queue holds after every pass."""
    rng = random.Random(seed)
    nodes = cluster(spines=1, racks=2, nodes=4)
    names = [n["metadata"]["name"] for n in nodes]
    backlog = _backlog("a", 250, first=1000) + _backlog("b", 250, first=1000)
    for obj in backlog:
        obj["spec"]["gpusPerReplica"] = rng.choice([1, 2, 4])
    held_by_a = [running(job(f"old-{i}", queue="a", created=_at(i)), [name]) for i, name in enumerate(names)]
    s = snap(nodes, held_by_a + backlog, [p for obj in held_by_a for p in worker_pods(obj)], policy=_weights(a=1, b=3))
    ends: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {
        (D, obj["metadata"]["name"]): (rng.randint(1, 10), obj) for obj in held_by_a
    }
    waiting = {(D, obj["metadata"]["name"]): obj for obj in backlog}
    rv = 0
    history: list[Counter[str]] = []
    for step in range(steps):
        for key, (end, obj) in list(ends.items()):
            if end <= step:
                for pod in worker_pods(obj):
                    s.remove_pod(D, pod["metadata"]["name"])
                s.remove_job(*key)
                del ends[key]
        d = schedule(s, NOW)
        for key, placement in d.placements.items():
            rv += 1
            obj = running(copy.deepcopy(waiting.pop(key)), list(placement.nodes))
            obj["metadata"]["resourceVersion"] = str(rv)
            s.upsert_job(obj)
            for pod in worker_pods(obj):
                s.upsert_pod(pod)
            ends[key] = (step + rng.randint(3, 8), obj)
        history.append(Counter(s.queue_usage()))
    assert any(info.queue == "b" and not info.placed for info in s.jobs.values()), "b's backlog ran out too early"
    assert any(info.queue == "a" and not info.placed for info in s.jobs.values()), "a's backlog ran out too early"
    return history


def test_backlogs_with_weights_1_to_3_converge_to_a_quarter_and_three_quarters_of_the_gpus() -> None:
    for seed in (1, 2):
        history = _simulate(steps=40, seed=seed)
        assert history[0]["a"] >= 56  # a's old gangs hold the cluster at first; nothing is taken from them
        settled = history[15:]
        b_share = sum(h["b"] for h in settled) / sum(h["a"] + h["b"] for h in settled)
        assert 0.68 <= b_share <= 0.82, (seed, b_share)
        # The cluster stays busy while both queues wait: fairness never leaves GPUs idle.
        assert all(h["a"] + h["b"] >= 56 for h in settled), [h["a"] + h["b"] for h in settled]


def test_usage_already_held_counts_against_a_queue() -> None:
    # a holds 16 GPUs; with equal weights b's jobs go first until b holds as much.
    nodes = cluster(spines=1, racks=1, nodes=4)
    held = [running(job(f"old-{i}", queue="a"), [f"s0-r0-n{i}"]) for i in range(2)]
    pods = [p for obj in held for p in worker_pods(obj)]
    jobs = held + _backlog("a", 10, first=10, gpus=4) + _backlog("b", 10, first=20, gpus=4)
    s = snap(nodes, jobs, pods, policy=_weights(a=1, b=1))
    d = schedule(s, NOW)
    assert _held(s, d.placements) == {"b": 16}


def test_higher_priority_wins_over_fair_share() -> None:
    # a is far above its share (weight 1 against 3, already holding 8 GPUs) but its jobs outrank b's.
    nodes = cluster(spines=1, racks=1, nodes=4)
    held = running(job("old", queue="a"), ["s0-r0-n0"])
    jobs = [held, *_backlog("a", 30, priority=5, first=10), *_backlog("b", 30)]
    s = snap(nodes, jobs, worker_pods(held), policy=_weights(a=1, b=3))
    d = schedule(s, NOW)
    assert _held(s, d.placements) == {"a": 24}
    assert all(d.waiting[(D, f"b-{i:03d}")].reason == cond.REASON_WAITING_FOR_RESOURCES for i in range(30))


def test_quota_still_caps_a_heavy_queue_and_the_rest_goes_to_the_others() -> None:
    rules = policy(queues=[{"name": "a", "weight": 1}, {"name": "b", "weight": 3, "gpuQuota": 8}])
    s = snap(cluster(spines=1, racks=1, nodes=4), _backlog("a", 40) + _backlog("b", 40), policy=rules)
    d = schedule(s, NOW)
    assert _held(s, d.placements) == {"a": 24, "b": 8}
    assert d.waiting[(D, "b-008")].reason == cond.REASON_QUOTA_EXCEEDED


def test_a_queue_with_no_backlog_keeps_nothing_for_itself() -> None:
    s = snap(cluster(spines=1, racks=1, nodes=4), _backlog("a", 40), policy=_weights(a=1, b=3))
    d = schedule(s, NOW)
    assert _held(s, d.placements) == {"a": 32}


def test_a_blocked_gang_of_the_light_queue_still_keeps_its_domain() -> None:
    # Two racks of 4×8 GPUs, each partly held by gangs of queue b. a's 4×8 gang must fit in one rack: it waits,
    # keeps the rack closest to fitting, and b's small jobs (its turns come first by share) backfill only the other.
    nodes = cluster(spines=1, racks=2, nodes=4)
    held = [
        running(job("old-r0", queue="b"), ["s0-r0-n0"]),
        running(job("old-r1", replicas=2, queue="b"), ["s0-r1-n0", "s0-r1-n1"]),
    ]
    pods = [p for obj in held for p in worker_pods(obj)]
    big = job("a-big", replicas=4, gpus=8, queue="a", mode="Required", created=_at(5))
    jobs = [*held, big, *_backlog("b", 40, first=0)]
    s = snap(nodes, jobs, pods, policy=_weights(a=1, b=3))
    d = schedule(s, NOW)
    assert "rack s0-r0 is kept for it" in d.waiting[(D, "a-big")].message
    assert {n for p in d.placements.values() for n in p.nodes} == {"s0-r1-n2", "s0-r1-n3"}
    assert _held(s, d.placements) == {"b": 16}


# Ordering properties over random queues, weights, priorities and usage.


@st.composite
def _jobs_and_queues(draw: st.DrawFn) -> tuple[list[JobInfo], dict[str, int], dict[str, QueueSpec]]:
    names = ["q0", "q1", "q2", "q3"][: draw(st.integers(1, 4))]
    queues = {name: QueueSpec(name=name, weight=draw(st.integers(1, 5))) for name in names}
    usage = {name: draw(st.integers(0, 40)) for name in names if draw(st.booleans())}
    objs = [
        job(
            f"j{i}",
            gpus=draw(st.sampled_from([1, 2, 8])),
            replicas=draw(st.integers(1, 3)),
            queue=draw(st.sampled_from([*names, "unknown"])),
            priority=draw(st.sampled_from([0, 0, 5, 10])),
            created=_at(draw(st.integers(0, 30))),
        )
        for i in range(draw(st.integers(0, 40)))
    ]
    return list(snap([], objs).jobs.values()), usage, queues


@settings(max_examples=150, deadline=None)
@given(_jobs_and_queues())
def test_admission_order_is_a_permutation_that_respects_priority_and_each_queues_order(
    case: tuple[list[JobInfo], dict[str, int], dict[str, QueueSpec]],
) -> None:
    jobs, usage, queues = case
    usage_before = dict(usage)
    order = order_for_admission(jobs, usage, queues)
    assert sorted(j.key for j in order) == sorted(j.key for j in jobs)
    assert usage == usage_before  # the caller's usage is read, never changed
    assert [j.priority for j in order] == sorted((j.priority for j in jobs), reverse=True)
    fifo = queue_order(jobs)
    for name in {j.queue for j in jobs}:
        assert [j.key for j in order if j.queue == name] == [j.key for j in fifo if j.queue == name]
    assert order == order_for_admission(list(reversed(jobs)), usage, queues)  # deterministic, input order ignored
    if len({j.queue for j in jobs}) <= 1:
        assert order == fifo  # one queue: plain priority, then submission order


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 12), st.integers(0, 12))
def test_no_queue_runs_ahead_of_its_weighted_share_by_more_than_one_job(
    weight_a: int, weight_b: int, used_a: int, used_b: int
) -> None:
    jobs = list(snap([], _backlog("a", 30, gpus=1) + _backlog("b", 30, gpus=1)).jobs.values())
    queues = {"a": QueueSpec(name="a", weight=weight_a), "b": QueueSpec(name="b", weight=weight_b)}
    charged = {"a": used_a, "b": used_b}
    taken = {"a": 0, "b": 0}
    for info in order_for_admission(jobs, dict(charged), queues):
        other = "b" if info.queue == "a" else "a"
        if taken[other] < 30:  # while both compete, the queue taking a turn is the one with the lower share
            assert charged[info.queue] / queues[info.queue].weight <= charged[other] / queues[other].weight
        charged[info.queue] += 1
        taken[info.queue] += 1
