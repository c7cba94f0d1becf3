"""Power budgets in the simulator: the operator's allocation over the sim physics, run times that stretch while a
budget cuts a job, and the PowerBudget wait of a gang that cannot fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sim_fixtures import SENSITIVE_TRACE

from powertrain.api.policy import PowerBudgets
from powertrain.cli import main
from powertrain.sim.budget import BudgetError
from powertrain.sim.cluster import parse_cluster
from powertrain.sim.engine import Policy, SimResult, simulate
from powertrain.sim.power import DEFAULT_LIMIT, IDLE_GPU_WATTS, MIN_LIMIT, power_at
from powertrain.sim.report import summarize
from powertrain.sim.trace import TraceJob

CLUSTER = "nodes=2,gpus-per-node=8,topology=zone=1,spine=1,rack=2"
LLM = "Transformer (batch size 64)"  # power-bound at 700 W: it wants all of its limit


def two_priorities(budget: int) -> tuple[TraceJob, TraceJob, SimResult]:
    high = TraceJob("high", 0.0, 4, LLM, 3600.0, 3600.0, priority=5)
    low = TraceJob("low", 0.0, 4, LLM, 7200.0, 7200.0, priority=0)
    nodes = parse_cluster("nodes=1,gpus-per-node=8")
    result = simulate([high, low], nodes, Policy.TOPOLOGY, power_budgets=PowerBudgets(cluster_watts=budget))
    return high, low, result


def test_a_budget_cuts_the_lowest_priority_first_and_its_run_stretches_until_the_cut_ends() -> None:
    _, low, result = two_priorities(4500)
    h, lo = result.records
    assert h.lowest_cap is None  # the higher priority keeps its full limit
    assert lo.lowest_cap is not None
    assert MIN_LIMIT <= lo.lowest_cap < DEFAULT_LIMIT
    # The two jobs' limits fit in the budget (no idle GPU on the node, no overhead).
    assert 4 * DEFAULT_LIMIT + 4 * lo.lowest_cap <= 4500
    assert h.end_s == pytest.approx(3600.0)
    # While the high job runs, the low one progresses at the cut cap's rate; afterwards at full speed.
    slow = power_at(LLM, lo.lowest_cap).slowdown
    assert slow > 0
    done = 3600.0 / (low.packed_s * (1 + slow))
    assert lo.end_s == pytest.approx(3600.0 + (1 - done) * low.packed_s)
    # Energy: each cap's draw for as long as it held.
    cut, full = power_at(LLM, lo.lowest_cap).watts_per_gpu, power_at(LLM, None).watts_per_gpu
    assert lo.energy_j == pytest.approx(4 * (cut * 3600.0 + full * (lo.end_s - 3600.0)))
    assert h.energy_j == pytest.approx(4 * full * 3600.0)
    assert result.over_budget_s == 0
    assert max(result.budget_draws.values()) <= 4500


def test_a_budget_that_never_binds_changes_nothing() -> None:
    jobs = [TraceJob(f"j{i}", i * 600.0, 4, LLM, 3600.0, 5000.0, priority=i % 2) for i in range(6)]
    nodes = parse_cluster("nodes=2,gpus-per-node=8,topology=rack=2")
    free = simulate(jobs, nodes, Policy.TOPOLOGY, power_mode="Efficiency")
    loose = simulate(
        jobs,
        nodes,
        Policy.TOPOLOGY,
        power_mode="Efficiency",
        power_budgets=PowerBudgets(cluster_watts=100_000, budget_level="rack", domain_watts=50_000),
    )
    assert [(r.start_s, r.end_s, r.energy_j) for r in free.records] == [
        (r.start_s, r.end_s, pytest.approx(r.energy_j)) for r in loose.records
    ]
    assert summarize(loose).energy_kwh == pytest.approx(summarize(free).energy_kwh)
    assert all(r.budget_cut_s == 0 for r in loose.records)


def test_a_gang_that_cannot_fit_at_minimum_limits_waits_power_budget_and_starts_when_the_budget_allows() -> None:
    first = TraceJob("first", 0.0, 8, LLM, 3600.0, 3600.0)
    second = TraceJob("second", 100.0, 8, LLM, 1800.0, 1800.0)
    nodes = parse_cluster("nodes=2,gpus-per-node=8")
    # One busy node at minimum limits and one idle node fit; two busy nodes at minimum limits do not.
    budget = int(8 * MIN_LIMIT + 8 * IDLE_GPU_WATTS + 8 * (MIN_LIMIT - IDLE_GPU_WATTS) / 2)
    result = simulate([first, second], nodes, Policy.TOPOLOGY, power_budgets=PowerBudgets(cluster_watts=budget))
    a, b = result.records
    assert a.end_s is not None
    assert a.lowest_cap is not None  # the budget holds the first one below its default limit
    assert a.end_s > 3600.0  # so it runs longer
    assert b.start_s == pytest.approx(a.end_s)  # the second starts as soon as the first frees its share
    assert b.power_wait_s == pytest.approx(a.end_s - 100.0)
    assert a.power_wait_s == 0
    assert result.over_budget_s == 0
    assert b.end_s is not None


def test_a_gang_that_never_fits_is_reported_waiting_for_the_budget() -> None:
    big = TraceJob("big", 0.0, 16, LLM, 3600.0, 3600.0)
    nodes = parse_cluster("nodes=2,gpus-per-node=8")
    result = simulate([big], nodes, Policy.TOPOLOGY, power_budgets=PowerBudgets(cluster_watts=3000))
    record = result.records[0]
    assert record.start_s is None
    assert record.waiting is not None
    assert "power budget of the cluster is 3000 W" in record.waiting


def test_budgets_the_cluster_cannot_have_are_refused() -> None:
    nodes = parse_cluster("nodes=2,gpus-per-node=8,topology=rack=2")
    job = [TraceJob("j", 0.0, 1, LLM, 60.0, 60.0)]
    with pytest.raises(BudgetError, match="below its idle draw"):
        simulate(job, nodes, Policy.TOPOLOGY, power_budgets=PowerBudgets(cluster_watts=1000))
    with pytest.raises(BudgetError, match="no nvlink level"):
        simulate(job, nodes, Policy.TOPOLOGY, power_budgets=PowerBudgets(budget_level="nvlink", domain_watts=5000))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--power-budget", "cluster=-5"], "'cluster=-5' is invalid: watts must be within 1 and 1,000,000,000"),
        (["--power-budget", "rack=99999999999"], "watts must be within 1 and 1,000,000,000"),
        (["--power-budget", "cluster=lots"], "'lots' is not a whole number of watts"),
        (["--power-budget", "row=5000"], "LEVEL one of cluster, zone, spine, rack, nvlink"),
        (["--power-budget", "cluster=1000"], "power budget of the cluster is 1000 W, below its idle draw 1232 W"),
        (["--power-budget", "nvlink=5000"], "the simulated cluster has no nvlink level (its topology has rack"),
        (["--power-budget", "rack=5000", "--power-budget", "zone=9000"], "one domain level at a time besides cluster"),
        (["--power-budget", "cluster=5000", "--power-budget", "cluster=6000"], "each level may be given once"),
        (["--node-overhead-watts", "-1"], "argument --node-overhead-watts: -1 is invalid"),
    ],
)
def test_bad_budgets_are_refused_with_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        rc = main(["simulate", "--trace", str(SENSITIVE_TRACE), "--max-jobs", "5", "--cluster", CLUSTER, *args])
    except SystemExit as exc:  # argparse's own errors
        rc = int(exc.code or 0)
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_a_budgeted_run_reports_energy_cuts_and_waits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "budget.json"
    rc = main(
        ["simulate", "--trace", str(SENSITIVE_TRACE), "--max-jobs", "40", "--time-scale", "0.25", "--cluster", CLUSTER,
         "--policy", "topology", "--power-budget", "cluster=6000", "--power-budget", "rack=3500",
         "--node-overhead-watts", "50", "--output", str(out)]
    )  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "| budget slowdown | PowerBudget waits | over budget |" in text
    assert "budgets:" in text
    data = json.loads(out.read_text())
    assert data["power_budgets"]["clusterWatts"] == 6000
    summary = data["results"]["topology"]["summary"]
    assert summary["budgets"] == 3  # two racks and the cluster
    assert summary["budget_cut_jobs"] > 0
    assert summary["budget_slowdown"] > 0
    assert summary["over_budget_s"] == 0
    assert summary["peak_budget_fraction"] <= 1.0
    peaks = data["results"]["topology"]["budgets"]
    assert set(peaks) == {"cluster/cluster", "rack/rack-0", "rack/rack-1"}
    assert all(0 < p["peak_draw_watts"] <= p["budget_watts"] for p in peaks.values())
    rows = data["results"]["topology"]["jobs"]
    assert sum(r["energy_j"] or 0 for r in rows) / 3.6e6 == pytest.approx(summary["energy_kwh"], rel=1e-6)
    assert any(r["power_budget_wait_s"] > 0 for r in rows) == (summary["power_budget_waits"] > 0)
