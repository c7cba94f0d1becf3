"""Invariants of a scheduling pass over random clusters and queues (hypothesis)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from core_builders import foreign_pod, job, node, policy, running, worker_pods
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from powertrain.api import constants as c
from powertrain.core.scheduler import schedule
from powertrain.core.snapshot import ClusterSnapshot

NOW = datetime(2026, 1, 2, tzinfo=UTC)
LEVELS = ("node", "rack", "spine")


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ClusterSnapshot, dict[str, Any]]:
    spines = draw(st.integers(1, 2))
    racks = draw(st.integers(1, 3))
    per_rack = draw(st.integers(1, 4))
    nodes, pods = [], []
    for s in range(spines):
        for r in range(racks):
            for n in range(per_rack):
                name = f"s{s}-r{r}-n{n}"
                gpus = draw(st.sampled_from([4, 8]))
                rack = None if draw(st.integers(0, 9)) == 0 else f"s{s}-r{r}"  # now and then an unlabelled node
                nodes.append(node(name, gpus=gpus, rack=rack, spine=f"s{s}", cpu="64"))
                busy = draw(st.integers(0, gpus))
                if busy:
                    pods.append(foreign_pod(f"f-{name}", name, gpus=busy, cpu="1"))
    names = [n["metadata"]["name"] for n in nodes]
    jobs = []
    # Some of our gangs already running (one pod per node, GPUs permitting), for preemption to consider.
    for i in range(draw(st.integers(0, 3))):
        where = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
        obj = running(job(f"run{i}", replicas=len(where), gpus=1, priority=draw(st.integers(0, 3))), where)
        jobs.append(obj)
        pods.extend(worker_pods(obj))
    quotas = draw(st.sampled_from([None, 8, 24]))
    queues = [{"name": "default"}, {"name": "q", **({"gpuQuota": quotas} if quotas is not None else {})}]
    for i in range(draw(st.integers(1, 8))):
        jobs.append(
            job(
                f"j{i}",
                replicas=draw(st.integers(1, 5)),
                gpus=draw(st.sampled_from([1, 2, 4, 8])),
                level=draw(st.sampled_from(LEVELS)),
                mode=draw(st.sampled_from(["Required", "Preferred"])),
                priority=draw(st.integers(0, 5)),
                queue=draw(st.sampled_from(["default", "q"])),
                created=f"2026-01-01T00:00:{i:02d}Z",
            )
        )
    snapshot = ClusterSnapshot.build(nodes=nodes, pods=pods, jobs=jobs, policy=policy(queues=queues))
    return snapshot, {"quota": quotas}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_pass_invariants(scenario: tuple[ClusterSnapshot, dict[str, Any]]) -> None:
    s, extra = scenario
    free_before = {name: info.free() for name, info in s.nodes.items()}
    usage_before = s.queue_usage()
    d = schedule(s, NOW)

    # Every waiting candidate is either placed or told why, never both.
    assert not set(d.placements) & set(d.waiting)

    taken: Counter[str] = Counter()
    cpu: Counter[str] = Counter()
    for key, placement in d.placements.items():
        info = s.jobs[key]
        # Never a partial gang.
        assert len(placement.nodes) == info.spec_replicas
        for name in placement.nodes:
            taken[name] += info.gpus_per_replica
            cpu[name] += info.per_replica.get("cpu", 0)
            assert s.nodes[name].gpu_model == placement.gpu_model  # models never mix
        # Required never crosses a domain of its level.
        spec = info.job.spec
        if spec.topology.mode == "Required":
            level = s.topology.level_index(str(spec.topology.level))
            assert level is not None
            domains = {s.topology.domain_of(n, level) for n in placement.nodes}
            assert len(domains) == 1
            assert None not in domains
    # Never over-allocate a node.
    for name, gpus in taken.items():
        assert gpus <= free_before[name].get(c.GPU_RESOURCE, 0)
        assert cpu[name] <= free_before[name].get("cpu", 0)
    # Preemption never touches equal or higher priority, and only running gangs.
    for victim, why in d.preemptions.items():
        assert s.jobs[victim].placed
        assert s.jobs[victim].priority < s.jobs[why.preemptor].priority
        assert why.preemptor in d.waiting
    # Quotas are never exceeded.
    if extra["quota"] is not None:
        placed_q = sum(
            s.jobs[k].spec_replicas * s.jobs[k].gpus_per_replica for k in d.placements if s.jobs[k].queue == "q"
        )
        assert usage_before.get("q", 0) + placed_q <= max(extra["quota"], usage_before.get("q", 0))


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_incremental_updates_match_a_fresh_build(scenario: tuple[ClusterSnapshot, dict[str, Any]]) -> None:
    s, _ = scenario
    # Delete every pod and add it back: the accounting returns to exactly where it was.
    before = {name: info.free() for name, info in s.nodes.items()}
    pods = [p.obj for p in list(s.pods.values())]
    for pod in pods:
        s.remove_pod(pod["metadata"]["namespace"], pod["metadata"]["name"])
    for pod in reversed(pods):
        s.upsert_pod(pod)
    assert {name: info.free() for name, info in s.nodes.items()} == before


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_passes_are_deterministic(scenario: tuple[ClusterSnapshot, dict[str, Any]]) -> None:
    s, _ = scenario
    first, second = schedule(s, NOW), schedule(s, NOW)
    assert first.placements == second.placements
    assert first.waiting == second.waiting
    assert first.preemptions == second.preemptions
