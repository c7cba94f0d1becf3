"""The replay: event order, no early starts, no over-allocation, run times that follow the placement."""

from __future__ import annotations

from collections import defaultdict

import pytest
from sim_fixtures import MIXED_TRACE, SENSITIVE_TRACE, job, small_cluster, trace

from powertrain.sim.cluster import parse_cluster
from powertrain.sim.engine import JobRecord, Policy, SimResult, simulate
from powertrain.sim.runtime import run_seconds


@pytest.fixture(scope="module", params=list(Policy))
def replay(request: pytest.FixtureRequest) -> SimResult:
    # Twice as fast as recorded, so queues form and gangs get fragmented.
    return simulate(trace(MIXED_TRACE, 150), small_cluster(), request.param, time_scale=0.5)


def test_every_job_runs_once_and_never_before_its_submission(replay: SimResult) -> None:
    assert all(r.start_s is not None and r.end_s is not None for r in replay.records)
    for r in replay.records:
        assert r.start_s is not None
        assert r.end_s is not None
        assert r.submit_s <= r.start_s < r.end_s
        assert len(r.nodes) == r.job.gpus
    assert any(r.start_s != r.submit_s for r in replay.records if r.start_s is not None), "no queueing: slice too light"


def test_no_node_is_ever_over_allocated(replay: SimResult) -> None:
    capacity = {n.name: n.gpus for n in small_cluster()}
    changes: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for r in replay.records:
        assert r.start_s is not None
        assert r.end_s is not None
        for node in r.nodes:
            changes[node].append((r.end_s, -1))  # sorts before a start at the same instant: freed, then reused
            changes[node].append((r.start_s, 1))
    peak = 0
    for node, deltas in changes.items():
        held = 0
        for _, delta in sorted(deltas):
            held += delta
            assert held <= capacity[node], f"{node} holds {held} of {capacity[node]} GPUs"
            peak = max(peak, held)
    assert peak == 8  # nodes did fill up: the check had something to catch


def test_events_are_processed_in_time_order_completions_first(replay: SimResult) -> None:
    order = {"complete": 0, "submit": 1, "start": 2}
    keys = [(t, order[kind]) for t, kind, _ in replay.timeline]
    assert keys == sorted(keys)
    seen: dict[str, list[str]] = defaultdict(list)
    for _, kind, name in replay.timeline:
        seen[name].append(kind)
    assert all(kinds == ["submit", "start", "complete"] for kinds in seen.values())


def test_run_time_follows_the_placement(replay: SimResult) -> None:
    for r in replay.records:
        assert r.start_s is not None
        assert r.end_s is not None
        ran = r.end_s - r.start_s
        if r.packed:
            assert ran == pytest.approx(r.job.packed_s)
        elif r.servers == r.job.gpus:
            assert ran == pytest.approx(r.job.spread_s)
        else:
            assert ran == pytest.approx(run_seconds(r.job, r.servers))
            low, high = sorted((r.job.packed_s, r.job.spread_s))
            assert low <= ran <= high


def test_a_gang_starts_the_instant_the_previous_one_frees_the_node() -> None:
    node = parse_cluster("nodes=1,gpus-per-node=8")
    jobs = [job("a", 0, 8, 100.0), job("b", 10, 8, 50.0), job("c", 10, 4, 20.0, 80.0)]
    result = simulate(jobs, node, Policy.TOPOLOGY)
    a, b, c = result.records
    assert (a.start_s, a.end_s) == (0, 100)
    assert (b.start_s, b.end_s) == (100, 150)  # completion at 100 is applied before the pass at 100
    assert (c.start_s, c.end_s) == (150, 170)  # same queue: c waits behind b, and runs packed
    assert c.waiting is None


def test_partially_packed_gang_interpolates_by_servers() -> None:
    nodes = parse_cluster("nodes=2,gpus-per-node=4")
    # 2 + 3 GPUs leave 2 + 1 free: the 3-GPU gang spans both nodes (with no locality wait, Preferred widens).
    jobs = [job("x", 0, 2, 1000.0), job("y", 0, 3, 1000.0), job("big", 1, 3, 100.0, 400.0)]
    big = simulate(jobs, nodes, Policy.TOPOLOGY, preferred_wait_s=0).records[-1]
    assert big.start_s == 1
    assert big.servers == 2
    assert big.end_s is not None
    assert big.end_s - 1 == pytest.approx(100.0 + (400.0 - 100.0) * 2 / 3)


def test_preferred_gang_waits_for_one_node_then_widens_when_the_wait_ends() -> None:
    nodes = parse_cluster("nodes=2,gpus-per-node=4")
    jobs = [job("x", 0, 2, 1000.0), job("y", 0, 3, 1000.0), job("big", 1, 3, 100.0, 400.0)]
    big = simulate(jobs, nodes, Policy.TOPOLOGY, preferred_wait_s=60).records[-1]
    assert big.start_s == 61  # nothing else happens at 61: the end of the wait alone runs the pass
    assert big.servers == 2
    # A node frees up within the wait: the gang takes it, packed.
    jobs = [job("x", 0, 2, 1000.0), job("y", 0, 3, 30.0), job("big", 1, 3, 100.0, 400.0)]
    big = simulate(jobs, nodes, Policy.TOPOLOGY, preferred_wait_s=60).records[-1]
    assert (big.start_s, big.servers) == (30, 1)


def test_packed_policy_waits_for_one_node_instead() -> None:
    nodes = parse_cluster("nodes=2,gpus-per-node=4")
    jobs = [job("x", 0, 2, 1000.0), job("y", 0, 3, 500.0), job("big", 1, 3, 100.0, 400.0), job("one", 2, 1, 10.0)]
    _x, _y, big, one = simulate(jobs, nodes, Policy.PACKED).records
    assert big.start_s == 500.0  # y's node frees at 500: the gang runs there, packed
    assert big.packed
    assert big.end_s == 600.0
    assert one.start_s == 2.0  # a small job backfills outside the node kept for the gang


def test_a_job_larger_than_the_cluster_never_starts_and_blocks_nobody() -> None:
    jobs = [job("huge", 0, 16, 10.0), job("small", 1, 4, 10.0)]
    huge, small = simulate(jobs, parse_cluster("nodes=1,gpus-per-node=8"), Policy.TOPOLOGY).records
    assert huge.start_s is None
    assert huge.waiting is not None
    assert "needs 16" in huge.waiting
    assert small.start_s == 1.0


def test_same_input_same_result() -> None:
    jobs = trace(SENSITIVE_TRACE, 120)

    def fingerprint(policy: Policy) -> list[tuple[float | None, float | None, tuple[str, ...]]]:
        records: list[JobRecord] = simulate(jobs, small_cluster(), policy, time_scale=0.3).records
        return [(r.start_s, r.end_s, r.nodes) for r in records]

    for policy in Policy:
        assert fingerprint(policy) == fingerprint(policy)


def test_spread_baseline_scatters_while_topology_packs() -> None:
    jobs = [job("a", 0, 4, 100.0, 400.0)]
    cluster = parse_cluster("nodes=4,gpus-per-node=8")
    packed = simulate(jobs, cluster, Policy.TOPOLOGY).records[0]
    spread = simulate(jobs, cluster, Policy.SPREAD).records[0]
    assert packed.servers == 1
    assert packed.end_s == 100.0
    assert spread.servers == 4
    assert spread.end_s == 400.0
