"""Defragmentation in the simulator: the core's moves, replayed (moved gangs keep their work)."""

from __future__ import annotations

from sim_fixtures import job

from powertrain.sim.cluster import parse_cluster
from powertrain.sim.engine import MOVE_OVERHEAD_S, Policy, simulate


def _fragmenting_trace() -> list:  # type: ignore[type-arg]
    # 3 nodes × 8 GPUs. a, b fill n0; c (short) and d share n1; e takes half of n2. When c ends, n1 and n2 have
    # 4 free GPUs each: the 8-GPU gang f (Required one node under `packed`) fits nowhere until d or e moves.
    # g's submission gives the core a pass after f has waited the policy's minWaitSeconds (120 s).
    return [
        job("a", 0, 4, 10_000),
        job("b", 0, 4, 10_000),
        job("c", 0, 4, 100),
        job("d", 0, 4, 10_000),
        job("e", 0, 4, 10_000),
        job("f", 150, 8, 1_000),
        job("g", 300, 1, 10),
    ]


def test_a_blocked_gang_starts_once_a_smaller_one_moves_and_the_moved_one_keeps_its_work() -> None:
    nodes = parse_cluster("nodes=3,gpus-per-node=8")
    trace = _fragmenting_trace()
    without = {r.job.job_id: r for r in simulate(trace, nodes, Policy.PACKED).records}
    result = simulate(trace, nodes, Policy.PACKED, defragment=True)
    with_ = {r.job.job_id: r for r in result.records}
    assert without["f"].start_s is not None
    assert without["f"].start_s >= 10_000  # it waited for a long job to end
    assert with_["f"].start_s == 300
    assert result.moves == 1
    assert result.gpus_moved == 4
    moved = next(r for r in result.records if r.run == 1)
    assert moved.job.job_id in ("d", "e")
    # The moved gang kept its work: it ends its own run time plus one move's overhead after it started.
    assert moved.end_s == moved.start_s + 10_000 + MOVE_OVERHEAD_S
    assert len(set(with_["f"].nodes)) == 1
