"""Benchmark of power modes and budgets in `powertrain simulate`; writes its section of bench/results/power.md.

On each packaged Philly/Gavel trace, 32 nodes × 8 GPUs (8 racks of 4 nodes), topology placement, at the trace's
own load (1×, all jobs) and four times it (time scale 0.25, the first 400 jobs, to keep the run short):

- modes: Performance, Balanced, Efficiency, no budget;
- budgets: a cluster budget, then a rack budget (every rack), at 70 % and 50 % of the peak draw the Performance
  run reached (the cluster's, the busiest rack's), with Performance and with Efficiency.

The peak draws come from the Performance run itself, given budgets too large to bind (a budget that never binds
changes nothing; tests/sim/test_sim_power_budget.py). Energy is the jobs' GPU energy; JCT change is mean JCT over
the Performance run's; run-time slowdown is the mean over jobs of run time at their caps / at the default limit.

Usage: .venv/bin/python bench/power_sim_bench.py [--output bench/results/power.md] [--max-jobs N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from powertrain.api.limits import MAX_CLUSTER_WATTS
from powertrain.api.policy import PowerBudgets
from powertrain.data import trace_path
from powertrain.sim.cluster import parse_cluster
from powertrain.sim.engine import Policy, simulate
from powertrain.sim.report import Summary, summarize
from powertrain.sim.trace import load_trace

ROOT = Path(__file__).resolve().parents[1]
MARKER = "## `powertrain simulate` with power budgets"
CLUSTER = "nodes=32,gpus-per-node=8,topology=zone=1,spine=2,rack=4"
TRACES = ("seed0-0e4a51", "seed0-7f04ca", "seed0-ee9e8c")
LOADS = (("1×", 1.0, None), ("4×", 0.25, 400))
"""(label, time scale, jobs replayed): four times the load queues far more, and a budget that stretches runs
queues more still (every pass considers every waiting gang), so the 4× runs take each trace's first 400 jobs."""
SHARES = (0.7, 0.5)
TIGHT = 0.28
"""A rack budget below what a full rack needs at minimum limits (32 GPUs × 200 W): gangs wait PowerBudget (1× only)."""


def row(trace: str, load: str, setup: str, s: Summary, base: Summary) -> str:
    budgeted = bool(s.budgets) and s is not base  # the base run's budgets only measure its peaks
    waits = f"{s.power_budget_waits} (mean {s.power_budget_wait_mean_s / 3600:.1f} h)" if budgeted else "—"
    over = f"{s.over_budget_s:.0f} s" if budgeted else "—"
    return (
        f"| {trace} | {load} | {setup} | {s.energy_kwh:,.0f} kWh | {1 - s.energy_kwh / base.energy_kwh:.1%} | "
        f"{s.jct_mean_s / base.jct_mean_s - 1:+.1%} | {s.power_slowdown:+.1%} | "
        f"{s.budget_cut_jobs if budgeted else '—'} | {waits} | {over} | {s.completed}/{s.jobs} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/power.md")
    parser.add_argument("--max-jobs", type=int, default=None)
    args = parser.parse_args()
    nodes = parse_cluster(CLUSTER)
    huge = PowerBudgets(cluster_watts=MAX_CLUSTER_WATTS, budget_level="rack", domain_watts=MAX_CLUSTER_WATTS)
    lines = [
        MARKER,
        "",
        f"Recorded by `bench/power_sim_bench.py`: {CLUSTER}, topology placement, the operator's budget allocation "
        "(`core.power_budget.allocate_budgets`) and admission check (`PowerFit`, reason PowerBudget) over the "
        "simulator's GPU physics (`powertrain/sim/power.py`, per-model profiles assumed). Budgets are a share of the "
        "peak draw of the Performance run (GPUs idle at 77 W included, no node overhead); a rack budget applies to "
        "every rack. Energy saved and JCT change are against Performance without a budget at the same load; "
        "run-time slowdown is per job, caps of mode and budget together, queueing excluded. Caps apply at once in "
        "the simulator, so `over budget` (seconds any budgeted domain drew more than its budget) is 0 by "
        "construction: the settling time is the sandbox's and the power bench's to measure.",
        "",
        "| trace | load (jobs) | setup | GPU energy | energy saved | JCT change | run-time slowdown | jobs cut | "
        "PowerBudget waits | over budget | done |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    began = time.perf_counter()
    efficiency: list[tuple[float, float, float]] = []  # (energy saved, run-time slowdown, JCT change) per trace/load
    for name in TRACES:
        trace = load_trace(trace_path(f"philly:{name}"))
        for load, scale, first in LOADS:
            jobs = trace[: min(n for n in (first, args.max_jobs, len(trace)) if n is not None)]
            peak_run = simulate(jobs, nodes, Policy.TOPOLOGY, scale, power_mode="Performance", power_budgets=huge)
            base = summarize(peak_run)
            cluster_peak = peak_run.budget_draws["cluster/cluster"]
            rack_peak = max(v for k, v in peak_run.budget_draws.items() if k.startswith("rack/"))
            load = f"{load} ({len(jobs)})"
            lines.append(row(name, load, "Performance", base, base))
            for mode in ("Balanced", "Efficiency"):
                s = summarize(simulate(jobs, nodes, Policy.TOPOLOGY, scale, power_mode=mode))
                lines.append(row(name, load, mode, s, base))
                if mode == "Efficiency":
                    efficiency.append(
                        (1 - s.energy_kwh / base.energy_kwh, s.power_slowdown, s.jct_mean_s / base.jct_mean_s - 1)
                    )
            for share in SHARES:
                for level, peak in (("cluster", cluster_peak), ("rack", rack_peak)):
                    watts = int(peak * share)
                    budgets = (
                        PowerBudgets(cluster_watts=watts)
                        if level == "cluster"
                        else PowerBudgets(budget_level="rack", domain_watts=watts)
                    )
                    for mode in ("Performance", "Efficiency"):
                        s = summarize(
                            simulate(jobs, nodes, Policy.TOPOLOGY, scale, power_mode=mode, power_budgets=budgets)
                        )
                        setup = f"{mode}, {level} {share:.0%} of peak ({watts:,} W)"
                        lines.append(row(name, load, setup, s, base))
            if scale == 1.0:
                watts = int(rack_peak * TIGHT)
                s = summarize(
                    simulate(
                        jobs,
                        nodes,
                        Policy.TOPOLOGY,
                        scale,
                        power_mode="Performance",
                        power_budgets=PowerBudgets(budget_level="rack", domain_watts=watts),
                    )
                )
                lines.append(row(name, load, f"Performance, rack {TIGHT:.0%} of peak ({watts:,} W)", s, base))
            print(f"{name} {load}: done after {time.perf_counter() - began:.0f} s", flush=True)
    saved, slow, jct = (sorted(x[i] for x in efficiency) for i in range(3))
    met = saved[0] >= 0.15 and slow[-1] <= 0.05
    lines += [
        "",
        f"Efficiency without a budget, over the {len(efficiency)} trace/load runs: energy saved {saved[0]:.1%}–"
        f"{saved[-1]:.1%}, run-time slowdown {slow[0]:+.1%}–{slow[-1]:+.1%}, JCT change {jct[0]:+.1%}–{jct[-1]:+.1%}. "
        f"Goal ≥ 15 % energy at ≤ 5 % mean slowdown: {'met' if met else 'not met'} on these traces"
        + (
            ""
            if met
            else " (their models are mostly compute-bound and power-bound, where a 5 % bound allows 650 W; the goal "
            "is met on the workload mix above)"
        )
        + ". Budgets save more energy only by slowing jobs more: the model is optimistic below ~75 % of the limit "
        "(docs/power.md, against the A100 sweep of the Perseus artifact), so the savings under 50 % budgets are upper "
        f"bounds and their slowdowns lower bounds. At {TIGHT:.0%} of the rack peak a full rack no longer fits at "
        "minimum limits: gangs wait PowerBudget, and as every cut job also runs longer, the queue grows.",
    ]
    lines += [
        "",
        f"Wall time {time.perf_counter() - began:.0f} s for all runs, one process on a shared 2-CPU machine.",
        "",
    ]
    section = "\n".join(lines)
    old = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
    head = old.split(MARKER)[0].rstrip("\n")
    args.output.write_text((head + "\n\n" if head else "") + section, encoding="utf-8")
    print(section)


if __name__ == "__main__":
    main()
