"""Capacity counts kept across passes: after any sequence of the operator's updates (jobs placed, pods bound
and gone, gangs finishing, nodes cordoned, GPUs turning sick, other schedulers' pods), a pass decides exactly
what it decides from counts built afresh."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from core_builders import cluster, foreign_pod, job, node, running, snap, telemetry, worker_pods

from powertrain.core.placement import GangRequest, Placement, PlacementEngine
from powertrain.core.scheduler import Decisions, schedule
from powertrain.core.snapshot import ClusterSnapshot

NOW = datetime(2026, 1, 2, tzinfo=UTC)
NODES = cluster(spines=2, racks=2, nodes=3)
NAMES = [n["metadata"]["name"] for n in NODES]


def _fresh(s: ClusterSnapshot) -> Decisions:
    s.kept.clear()
    return schedule(s, NOW)


def _step(s: ClusterSnapshot, rng: random.Random, i: int, running_jobs: dict[str, dict[str, Any]]) -> None:
    what = rng.randrange(9)
    if what <= 2:  # more arrive than finish: a queue forms, and freed GPUs matter; a pass may place several
        for k in range(rng.choice([1, 1, 3])):
            gpus = rng.choice([1, 2, 4, 8])
            mode = rng.choice(["Preferred", "Required"])
            level = rng.choice(["node", "rack"])
            s.upsert_job(job(f"j{i}-{k}", replicas=rng.randint(1, 6), gpus=gpus, level=level, mode=mode))
    elif what <= 4 and running_jobs:  # a gang finishes
        name = rng.choice(sorted(running_jobs))
        obj = running_jobs.pop(name)
        for pod in worker_pods(obj):
            s.remove_pod(pod["metadata"]["namespace"], pod["metadata"]["name"])
        s.remove_job("default", name)
    elif what == 5 and running_jobs:  # some of a gang's pods are bound
        obj = running_jobs[rng.choice(sorted(running_jobs))]
        for pod in worker_pods(obj):
            if rng.random() < 0.5:
                s.upsert_pod(pod)
    elif what == 6:  # cordoned or back
        name = rng.choice(NAMES)
        base = next(n for n in NODES if n["metadata"]["name"] == name)
        s.upsert_node({**base, "spec": {"unschedulable": True}} if rng.random() < 0.5 else base)
    elif what == 7:
        s.upsert_telemetry(telemetry(rng.choice(NAMES), unhealthy=rng.sample(range(8), rng.randint(0, 2))))
    elif what == 8:  # another scheduler's pod comes or goes
        pod = foreign_pod(f"f{rng.randrange(4)}", rng.choice(NAMES), gpus=rng.randint(0, 3))
        if rng.random() < 0.3:
            s.remove_pod("other", pod["metadata"]["name"])
        else:
            s.upsert_pod(pod)


@pytest.mark.parametrize("seed", range(6))
def test_a_pass_over_kept_counts_decides_what_a_fresh_pass_decides(seed: int) -> None:
    rng = random.Random(seed)
    s = snap(NODES)
    running_jobs: dict[str, dict[str, Any]] = {}
    for i in range(60):
        _step(s, rng, i, running_jobs)
        kept = schedule(s, NOW)
        assert kept == _fresh(s), f"step {i}"
        for key, placement in kept.placements.items():
            info = s.jobs[key]
            obj = running(job(key[1], replicas=len(placement.nodes), gpus=info.gpus_per_replica), list(placement.nodes))
            obj["spec"] = info.job.spec.to_wire()
            s.upsert_job(obj)
            running_jobs[key[1]] = obj
        for key in kept.preemptions:
            running_jobs.pop(key[1], None)
            s.remove_job(*key)


def test_an_engine_still_in_use_keeps_its_counts_to_itself() -> None:
    s = snap([node("a"), node("b")], [job("w", gpus=8)])
    info = s.jobs[("default", "w")]
    first = PlacementEngine(s)
    assert isinstance(first.place(GangRequest.from_job(info)), Placement)
    assert not isinstance(first.find(GangRequest.from_job(info, replicas=2)), Placement)
    second = PlacementEngine(s)  # e.g. a trial engine while the pass's own engine lives
    assert isinstance(second.find(GangRequest.from_job(info, replicas=2)), Placement)
    assert not isinstance(first.find(GangRequest.from_job(info, replicas=2)), Placement)
    del first, second
    third = PlacementEngine(s)  # the others are gone: their counts are reused, their commits undone
    assert isinstance(third.find(GangRequest.from_job(info, replicas=2)), Placement)


def test_counts_taken_up_in_the_middle_of_a_pass_see_what_the_pass_placed() -> None:
    s = snap([node("a", rack="r"), node("b", rack="r")], [job("big", gpus=8), job("small", gpus=4)])
    big = GangRequest.from_job(s.jobs[("default", "big")])
    small = GangRequest.from_job(s.jobs[("default", "small")], replicas=4)
    earlier = PlacementEngine(s)
    assert isinstance(earlier.find(big), Placement)
    assert isinstance(earlier.find(small), Placement)  # 4 × 4 GPUs fit the two nodes
    del earlier  # both shapes' counts are kept
    engine = PlacementEngine(s)
    assert isinstance(engine.place(big), Placement)
    assert not isinstance(engine.find(small), Placement)  # taken up after the 8 GPUs went: only 8 are left
