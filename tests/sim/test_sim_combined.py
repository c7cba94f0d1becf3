"""The simulator's features together: preemption (priorities, LAS) with power modes and defragmentation moves,
and the one combination it refuses (elastic jobs with preemption)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sim_fixtures import job

from powertrain.api.policy import Queueing, QueueOrder
from powertrain.cli import main
from powertrain.sim.cluster import parse_cluster
from powertrain.sim.engine import MOVE_OVERHEAD_S, Policy, simulate
from powertrain.sim.power import job_power
from powertrain.sim.report import summarize


def test_a_preempted_job_under_a_power_cap_keeps_its_work_and_is_charged_only_the_energy_it_drew() -> None:
    # One 8-GPU node: the low-priority job runs 100 s, is preempted by a high-priority hour, then finishes.
    low = job("low", 0, 8, 10_000)
    high = replace(job("high", 100, 8, 1_000), priority=100)
    power = job_power(low.model, "Efficiency")
    assert power.slowdown > 0  # the cap stretches run times, so the test sees it
    result = simulate([low, high], parse_cluster("nodes=1,gpus-per-node=8"), Policy.TOPOLOGY, power_mode="Efficiency")
    first, second = result.records
    stretch = 1.0 + power.slowdown
    assert first.preemptions == 1
    assert second.start_s == pytest.approx(101)
    assert second.end_s == pytest.approx(101 + 1_000 * stretch)
    # 100 s of capped work done, the rest after the restart cost.
    assert first.end_s == pytest.approx(101 + 1_000 * stretch + 120 + 10_000 * stretch - 100)
    held = 100 + (first.end_s - second.end_s)
    assert first.gpu_seconds == pytest.approx(8 * held)
    assert first.energy_j == pytest.approx(8 * power.watts_per_gpu * held)
    # Its time preempted is queueing, not run time: only the restart cost slows it beyond the cap.
    slowdowns = [(120 + 10_000 * stretch) / 10_000, stretch]
    assert summarize(result).mean_slowdown_vs_packed == pytest.approx(sum(slowdowns) / 2)


def test_defragmentation_moves_and_priority_preemption_in_one_replay() -> None:
    # 2 nodes × 8. When x and y end, a and b hold 4 GPUs on each node: the 8-GPU gang c (packed: one node) starts
    # once a moves (tick's submission gives the pass after c's minimum wait). The high-priority gang d then
    # preempts c. Each stopped gang keeps its work and pays its own restart: a move's overhead, the restart cost.
    trace = [
        job("a", 0, 4, 10_000),
        job("x", 0, 4, 50),
        job("b", 0, 4, 10_000),
        job("y", 0, 4, 50),
        job("c", 150, 8, 1_000),
        job("tick", 300, 1, 10),
        replace(job("d", 600, 8, 500), priority=100),
    ]
    result = simulate(trace, parse_cluster("nodes=2,gpus-per-node=8"), Policy.PACKED, defragment=True)
    records = {r.job.job_id: r for r in result.records}
    a, c, d = records["a"], records["c"], records["d"]
    assert result.moves == 1
    assert a.status.get("moves") == 1
    assert a.preemptions == 0
    assert a.end_s == pytest.approx(10_000 + MOVE_OVERHEAD_S)
    assert c.start_s == pytest.approx(300)
    assert c.preemptions == 1
    assert d.start_s == pytest.approx(601)
    assert d.end_s == pytest.approx(1_101)
    # 300 s done before d, 700 s after it, plus the 120 s restart cost.
    assert c.end_s == pytest.approx(1_101 + 120 + 700)
    assert c.gpu_seconds == pytest.approx(8 * (300 + 120 + 700))


def test_elastic_jobs_with_preemption_are_refused_with_a_message() -> None:
    nodes = parse_cluster("nodes=1,gpus-per-node=8")
    with pytest.raises(ValueError, match="elastic jobs and preemption"):
        simulate(
            [job("a", 0, 4, 100)], nodes, Policy.TOPOLOGY, elastic_share=1.0, queueing=Queueing(order=QueueOrder.LAS)
        )
    two_priorities = [job("a", 0, 4, 100), replace(job("b", 0, 4, 100), priority=5)]
    with pytest.raises(ValueError, match="elastic jobs and preemption"):
        simulate(two_priorities, nodes, Policy.TOPOLOGY, elastic_share=0.5)


def test_the_cli_refuses_elastic_jobs_with_the_las_order(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        ["simulate", "--trace", "philly:seed0-0e4a51", "--max-jobs", "5", "--elastic-share", "0.5",
         "--queue-order", "LAS"]
    )  # fmt: skip
    assert rc == 2
    assert "--elastic-share: elastic jobs and preemption" in capsys.readouterr().err
