"""Benchmark of the default placement and the queue orders over every trace in the repo; writes
bench/results/scheduling.md.

Traces: the three packaged Philly/Gavel streams on 32 nodes × 8 GPUs (8 racks of 4 nodes, 2 spines) and
Alibaba's GPU pod list (cluster-trace-gpu-v2023, see powertrain/sim/alibaba.py for how pods become jobs) on
its own 1,213-node fleet, each as recorded (1×) and with submissions 4× faster (time scale 0.25). Policies:

- `packed`: every gang that fits one node is Required on one node (the trivial baseline);
- `default`: what a Preferred gang gets with the default ClusterTrainingPolicy: the cost-aware locality wait
  (placement.costAwareWait, capped by preferredWaitSeconds = 86,400 s) and the default queue order
  (FairShare; with one queue that is FIFO);
- `fixed 300 s`: the default before this change (wait 300 s, then place wider);
- `default + LAS`: the same placement with queueing.order LAS (default thresholds 1 and 16 GPU-hours,
  restart cost 120 s, at most 3 preemptions per job, starvation guard 24 h).

With `--variant`, a check on data nothing was tuned on: the Philly streams on a different cluster (24 nodes
× 8 GPUs) at 4×; with `--old-default`, the fixed 300 s wait at 4×.
Speed: events per CPU-second of every replay (one process per replay, so one core; CPU time, because the
shared 2-core machine ran at a load of ~10) and a 60,000-job replay (the Alibaba pods repeated, each copy shifted by
the trace's span) on the 1,213-node fleet, stopped after 5 CPU-minutes if it has not finished.

With `--speed`, only the simulator's speed (writes bench/results/simulator_speed.md): events per CPU-second of
every trace at 1× and 4× for packed, default and default + LAS, one replay at a time, and the 60,000-job replay.

Usage: .venv/bin/python bench/scheduling_bench.py [--output bench/results/scheduling.md] [--jobs 2]
       .venv/bin/python bench/scheduling_bench.py --speed [--label NAME] [--output FILE]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from powertrain.api.policy import Queueing
from powertrain.data import ALIBABA_NODES, ALIBABA_PODS, PHILLY_DIR
from powertrain.sim.alibaba import load_pods, repeated
from powertrain.sim.cluster import SimNode, load_fleet, parse_cluster
from powertrain.sim.engine import Policy, Progress, simulate
from powertrain.sim.report import Summary, summarize
from powertrain.sim.trace import TraceJob, load_trace

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = "nodes=32,gpus-per-node=8,topology=zone=1,spine=2,rack=4"
VARIANT = "nodes=24,gpus-per-node=8,topology=zone=1,spine=2,rack=3"
PHILLY = ("seed0-0e4a51", "seed0-7f04ca", "seed0-ee9e8c")
HELD_OUT_DIR = ROOT / "bench" / "data" / "philly-gavel"
HELD_OUT = tuple(sorted(p.stem for p in HELD_OUT_DIR.glob("seed0-*.csv")))
"""The twelve other Gavel streams (bench/data/README.md): `--held-out` replays them too."""
ALIBABA = "alibaba-pods"
SCALES = (1.0, 0.25)
POLICIES: dict[str, tuple[Policy, dict[str, Any]]] = {
    "packed": (Policy.PACKED, {}),
    "default": (Policy.TOPOLOGY, {}),
    "fixed 300 s": (Policy.TOPOLOGY, {"cost_aware": False, "preferred_wait_s": 300}),
    "default + LAS": (Policy.TOPOLOGY, {"queueing": Queueing.model_validate({"order": "LAS"})}),
}
LONG_JOBS = 60_000
LONG_LIMIT_S = 300.0
"""CPU seconds the 60,000-job replay may take (the goal); `--long-limit` cuts it shorter to measure a rate."""


@dataclass
class Task:
    trace: str
    cluster: str
    scale: float
    label: str
    limit: int | None = None


@dataclass
class Run:
    task: Task
    summary: Summary
    wall_s: float
    bound_s: float
    """Mean JCT if every job started at submission on one node (its packed run time): no policy beats it."""


def _jobs(trace: str, limit: int | None) -> list[TraceJob]:
    if trace == ALIBABA:
        jobs = load_pods(ALIBABA_PODS)
    else:
        jobs = load_trace((HELD_OUT_DIR if trace in HELD_OUT else PHILLY_DIR) / f"{trace}.csv")
    return jobs[:limit] if limit else jobs


def _nodes(cluster: str) -> list[SimNode]:
    return load_fleet(ALIBABA_NODES) if cluster == "alibaba" else parse_cluster(cluster)


def run_task(task: Task) -> Run:
    policy, kwargs = POLICIES[task.label]
    jobs, nodes = _jobs(task.trace, task.limit), _nodes(task.cluster)
    began = time.process_time()
    result = simulate(jobs, nodes, policy, task.scale, **kwargs)
    wall = time.process_time() - began
    summary = summarize(result)
    print(f"{task.trace} {task.cluster[:12]} x{task.scale:g} {task.label}: {wall:.0f} s", flush=True)
    bound = sum(min(j.packed_s, j.spread_s) for j in jobs) / len(jobs) if jobs else 0.0
    return Run(task, summary, wall, bound)


class _Stop(Exception):
    pass


def long_replay(limit_s: float) -> tuple[int, int, float, int, bool]:
    """(jobs, events, CPU s, finished jobs, completed) of the 60,000-job replay, cut after `limit_s` CPU seconds."""
    base = load_pods(ALIBABA_PODS)
    jobs = repeated(base, -(-LONG_JOBS // len(base)))[:LONG_JOBS]
    nodes = load_fleet(ALIBABA_NODES)
    seen: list[Progress] = []
    began = time.process_time()

    def progress(p: Progress) -> None:
        seen.append(p)
        if time.process_time() - began > limit_s:
            raise _Stop

    try:
        result = simulate(jobs, nodes, Policy.TOPOLOGY, progress=progress)
        wall = time.process_time() - began
        return len(jobs), result.events, wall, len(jobs), True
    except _Stop:
        wall = time.process_time() - began
        last = seen[-1]
        return len(jobs), last.events, wall, last.finished, False


def _h(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h"


def _row(run: Run) -> str:
    s = run.summary
    rate = s.events / run.wall_s if run.wall_s > 0 else 0.0
    return (
        f"| {run.task.label} | {s.completed}/{s.jobs} | {_h(s.jct_mean_s)} | {_h(s.jct_median_s)} | "
        f"{_h(s.jct_p95_s)} | {_h(s.queue_mean_s)} | {_h(s.makespan_s)} | {s.gpu_utilization:.1%} | "
        f"{s.preemptions_per_job:.2f} (max {s.max_preemptions}) | {s.wider_fraction:.1%} | {run.wall_s:,.0f} s | "
        f"{rate:,.0f} |"
    )


HEAD = (
    "| policy | jobs done | JCT mean | JCT median | JCT p95 | queueing delay mean | makespan | GPU util | "
    "preemptions/job | wider than level | CPU time | events/CPU-s |\n" + "| --- " * 12 + "|"
)


def _pct(new: float, old: float) -> str:
    return f"{(new / old - 1) * 100:+.1f} %" if old > 0 else "n/a"


def write(runs: list[Run], long: tuple[int, int, float, int, bool], output: Path, started: float) -> None:
    groups: dict[tuple[str, str, float], dict[str, Run]] = {}
    for r in runs:
        groups.setdefault((r.task.trace, r.task.cluster, r.task.scale), {})[r.task.label] = r
    lines = [
        "# Scheduling policies over the packaged traces (`bench/scheduling_bench.py`)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on CPython {platform.python_version()}, "
        f"{os.cpu_count()} CPUs ({platform.machine()}), a machine shared with other work (load ~10); three replays at "
        f"a time, {(time.perf_counter() - started) / 60:.0f} min of wall time in all. "
        "Re-run: `.venv/bin/python bench/scheduling_bench.py --long-limit 60`.",
        "",
        (__doc__ or "").split("\n\n", 1)[1].split("Usage:")[0].strip(),
        "",
        "JCT = completion − submission; queueing delay = first start − submission; GPU util = GPU-seconds held / "
        "(cluster GPUs × makespan); *wider than level*: starts of gangs that fit one node on more than one node, "
        "per start of such gangs. A preempted gang keeps its work and loses 120 s (checkpoint + restore) when it "
        "starts again. Each Philly job declares its model's measured locality sensitivity (spread ÷ packed run "
        "time at its size), no duration; Alibaba pods are single pods (never spread; LS/Guaranteed priority 1 "
        "over BE/Burstable 0; fractional GPUs rounded up to one GPU).",
        "",
        "## Goals",
        "",
        "*No-wait bound*: the mean JCT if every job started the moment it was submitted, on one node (its fastest "
        "run): no policy, placement or queue order, can beat it, so it caps what either goal can gain. *LAS share "
        "of the possible*: (FIFO − LAS) ÷ (FIFO − bound).",
        "",
        "| trace | cluster | load | packed mean JCT | no-wait bound | default vs packed (mean JCT) | "
        "LAS vs default/FIFO (mean JCT) | LAS share of the possible | LAS p95 ÷ FIFO p95 | "
        "LAS preemptions/job (max) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    gaps: dict[tuple[str, float], list[float]] = {}
    for (trace, cluster, scale), by in groups.items():
        if "packed" not in by or "default" not in by:
            continue
        d, p = by["default"].summary, by["packed"].summary
        bound = by["default"].bound_s
        las = by.get("default + LAS")
        share = (
            f"{(d.jct_mean_s - las.summary.jct_mean_s) / (d.jct_mean_s - bound):.0%}"
            if las and d.jct_mean_s - bound > 0.01 * d.jct_mean_s
            else "– (no queueing to remove)"
        )
        las_cells = (
            f"{_pct(las.summary.jct_mean_s, d.jct_mean_s)} | {share} | {las.summary.jct_p95_s / d.jct_p95_s:.2f} | "
            f"{las.summary.preemptions_per_job:.2f} ({las.summary.max_preemptions})"
            if las and d.jct_p95_s > 0
            else "– | – | – | –"
        )
        where = "32 × 8" if cluster == CLUSTER else "24 × 8 (variant)" if cluster == VARIANT else "Alibaba fleet"
        gaps.setdefault((where, scale), []).append((d.jct_mean_s / p.jct_mean_s - 1) * 100)
        lines.append(
            f"| {trace} | {where} | {1 / scale:g}× | {_h(p.jct_mean_s)} | {_h(bound)} | "
            f"{_pct(d.jct_mean_s, p.jct_mean_s)} | {las_cells} |"
        )
    lines += ["", "Default vs packed, mean JCT, per cluster and load: worst trace and average over the traces:", ""]
    for (where, scale), values in sorted(gaps.items()):
        lines.append(
            f"- {where}, {1 / scale:g}×: worst {max(values):+.1f} %, average {sum(values) / len(values):+.1f} % "
            f"({len(values)} traces)"
        )
    lines += ["", "## Per trace", ""]
    for (trace, cluster, scale), by in groups.items():
        where = f"`{cluster}`" if cluster != "alibaba" else "Alibaba PAI fleet (1,213 GPU nodes, 6,212 GPUs)"
        lines += [f"### {trace}, {where}, {1 / scale:g}× arrival rate", "", HEAD]
        lines += [_row(r) for r in by.values()]
        lines.append("")
    jobs, events, wall, finished, done = long
    verdict = (
        f"finished in {wall:,.0f} s"
        if done
        else f"stopped after {wall:,.0f} s with {finished:,} of {jobs:,} jobs finished"
    )
    lines += [
        "## Speed",
        "",
        f"Per-replay events/s are in the tables above. {jobs:,}-job replay (the Alibaba GPU pods that ran, repeated "
        f"and time-shifted) on the 1,213-node fleet, default policy: {verdict}; {events:,} events, "
        f"{events / wall:,.0f} events per CPU-second.",
        "",
    ]
    output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {output}")


SPEED_POLICIES = ("packed", "default", "default + LAS")


def speed(label: str, output: Path, long_limit: float) -> None:
    """Events per CPU-second of each replay, one at a time in this process (one core), and the long replay."""
    tasks = [Task(t, CLUSTER, s, p) for t in PHILLY for s in SCALES for p in SPEED_POLICIES]
    tasks += [Task(ALIBABA, "alibaba", s, p) for s in SCALES for p in SPEED_POLICIES]
    simulate(_jobs(PHILLY[0], 20), _nodes(CLUSTER), Policy.TOPOLOGY)  # imports and the CEL engine load off the clock
    lines = [
        f"### {label}",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on CPython {platform.python_version()}, "
        f"{os.cpu_count()} CPUs ({platform.machine()}), load average at start {os.getloadavg()[0]:.1f}.",
        "",
        "| trace | load | policy | jobs | events | passes | CPU s | events/CPU-s |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for task in tasks:
        policy, kwargs = POLICIES[task.label]
        jobs, nodes = _jobs(task.trace, task.limit), _nodes(task.cluster)
        began = time.process_time()
        result = simulate(jobs, nodes, policy, task.scale, **kwargs)
        cpu = time.process_time() - began
        lines.append(
            f"| {task.trace} | {1 / task.scale:g}× | {task.label} | {len(jobs):,} | {result.events:,} | "
            f"{result.passes:,} | {cpu:.2f} | {result.events / cpu:,.0f} |"
        )
        print(lines[-1], flush=True)
    count, events, cpu, finished, done = long_replay(long_limit)
    verdict = f"finished in {cpu:,.0f} CPU-s" if done else f"stopped after {cpu:,.0f} CPU-s, {finished:,} jobs done"
    lines += [
        "",
        f"{count:,}-job replay (Alibaba pods repeated and time-shifted) on the 1,213-node fleet, default policy: "
        f"{verdict}; {events:,} events, {events / cpu:,.0f} events per CPU-second.",
        "",
    ]
    print(lines[-2], flush=True)
    previous = output.read_text(encoding="utf-8") if output.exists() else ""
    output.write_text(previous + "\n".join(lines) + "\n", encoding="utf-8")
    print(f"appended to {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--skip-long", action="store_true", help="leave out the 60,000-job replay")
    parser.add_argument("--long-limit", type=float, default=LONG_LIMIT_S, help="CPU seconds for the long replay")
    parser.add_argument("--variant", action="store_true", help="also the 24 × 8 cluster nothing was tuned on")
    parser.add_argument("--old-default", action="store_true", help="also the fixed 300 s wait at 4×")
    parser.add_argument("--quick", action="store_true", help="200 jobs of two traces at 4× (a smoke test)")
    parser.add_argument("--held-out", action="store_true", help="also the twelve streams in bench/data (1× and 4×)")
    parser.add_argument("--speed", action="store_true", help="only the simulator's speed (see above)")
    parser.add_argument("--label", default="this commit", help="--speed: the heading of the appended section")
    args = parser.parse_args()
    if args.speed:
        speed(args.label, args.output or ROOT / "bench" / "results" / "simulator_speed.md", args.long_limit)
        return
    args.output = args.output or ROOT / "bench" / "results" / "scheduling.md"
    started = time.perf_counter()
    if args.quick:
        tasks = [
            Task(t, c, 0.25, p, 200) for t, c in (("seed0-7f04ca", CLUSTER), (ALIBABA, "alibaba")) for p in POLICIES
        ]
    else:
        main_policies = [p for p in POLICIES if p != "fixed 300 s"]
        tasks = [Task(t, CLUSTER, s, p) for t in PHILLY for s in SCALES for p in main_policies]
        tasks += [Task(ALIBABA, "alibaba", s, p) for s in SCALES for p in main_policies]
        if args.variant:
            tasks += [Task(t, VARIANT, 0.25, p) for t in PHILLY for p in main_policies]
        if args.held_out:
            tasks += [Task(t, CLUSTER, s, p) for t in HELD_OUT for s in SCALES for p in main_policies]
        if args.old_default:
            tasks += [Task(t, CLUSTER, 0.25, "fixed 300 s") for t in PHILLY]
    # Longest first, so the pool ends together.
    tasks.sort(key=lambda t: (t.scale, "LAS" not in t.label, t.trace != "seed0-ee9e8c"))
    with multiprocessing.Pool(args.jobs) as pool:
        results = pool.map(run_task, tasks, chunksize=1)
    order = {t: i for i, t in enumerate(("packed", "default", "fixed 300 s", "default + LAS"))}
    runs = sorted(
        results,
        key=lambda r: (
            r.task.cluster == VARIANT,
            r.task.trace == ALIBABA,
            r.task.trace,
            -r.task.scale,
            order[r.task.label],
        ),
    )
    long = (0, 0, 1.0, 0, False) if args.skip_long else long_replay(args.long_limit)
    write(runs, long, args.output, started)


if __name__ == "__main__":
    main()
