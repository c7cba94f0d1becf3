"""`powertrain simulate`: replay a job trace through the scheduling core on a simulated cluster, no Kubernetes."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from powertrain.api.limits import MAX_CLUSTER_WATTS
from powertrain.api.policy import PowerBudgets, Queueing, QueueOrder
from powertrain.commands import SubParsers
from powertrain.data import ALIBABA_PODS, TRACE_PREFIX, DataNotFound, fleet_path, philly_traces, trace_path
from powertrain.sim.alibaba import load_pods
from powertrain.sim.budget import BudgetError
from powertrain.sim.cluster import DEFAULT_SPEC, ClusterError, SimNode, load_fleet, parse_cluster
from powertrain.sim.engine import ElasticRange, Policy, Progress, SimResult, simulate
from powertrain.sim.report import Summary, job_rows, markdown_table, summarize
from powertrain.sim.trace import TraceError, load_trace

POLICY_CHOICES = (*(str(p) for p in Policy), "all")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is invalid: must be ≥ 1")
    return value


def _wait_seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if not 0 <= value <= 86_400:
        raise argparse.ArgumentTypeError(f"{value} is invalid: must be between 0 and 86400 (one day)")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is invalid: must be a number > 0")
    return value


BUDGET_LEVELS = ("cluster", "zone", "spine", "rack", "nvlink")


def _budget(text: str) -> tuple[str, int]:
    level, sep, watts = text.partition("=")
    level = level.strip()
    if not sep or level not in BUDGET_LEVELS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is invalid: use LEVEL=WATTS with LEVEL one of {', '.join(BUDGET_LEVELS)} (e.g. cluster=120000 "
            "or rack=15000: every rack gets that budget)"
        )
    try:
        value = int(watts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: {watts!r} is not a whole number of watts") from None
    if not 0 < value <= MAX_CLUSTER_WATTS:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: watts must be within 1 and {MAX_CLUSTER_WATTS:,}")
    return level, value


def _overhead(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of watts") from None
    if not 0 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"{value} is invalid: must be within 0 and 100000 watts per node")
    return value


def power_budgets(budgets: list[tuple[str, int]], overhead: int) -> PowerBudgets | None:
    """The policy's `spec.power` from --power-budget and --node-overhead-watts; None without budgets."""
    if not budgets:
        return None
    levels = [level for level, _ in budgets]
    if len(set(levels)) < len(levels):
        raise BudgetError("--power-budget: each level may be given once")
    domains = [(level, watts) for level, watts in budgets if level != "cluster"]
    if len(domains) > 1:
        raise BudgetError(
            "--power-budget: one domain level at a time besides cluster (the policy has one budgetLevel), "
            f"got {', '.join(level for level, _ in domains)}"
        )
    cluster = next((watts for level, watts in budgets if level == "cluster"), None)
    if not domains:
        return PowerBudgets(cluster_watts=cluster, node_overhead_watts=overhead)
    level, watts = domains[0]
    return PowerBudgets(cluster_watts=cluster, budget_level=level, domain_watts=watts, node_overhead_watts=overhead)


ALIBABA_TRACE = "alibaba:pods"


def _trace(text: str) -> Path:
    if text == ALIBABA_TRACE:
        return ALIBABA_PODS
    try:
        return trace_path(text)
    except DataNotFound as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: must be a number within 0 and 1")
    return value


def _elastic_range(text: str) -> ElasticRange:
    low, sep, high = text.partition(":")
    try:
        if not sep:
            raise ValueError("needs MIN_FRACTION:MAX_FACTOR")
        return ElasticRange(float(low), float(high))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is invalid: {exc} (MIN_FRACTION:MAX_FACTOR, e.g. 0.5:2 or 0:4; minReplicas = max(1, "
            "gpus × MIN_FRACTION), maxReplicas = gpus × MAX_FACTOR)"
        ) from None


def register(sub: SubParsers) -> None:
    p = sub.add_parser(
        "simulate",
        help="replay a job trace through the scheduling core",
        description=(
            "Replay a Philly/Gavel job trace (job_id,submit_time_s,gpus,model,duration_packed_s,duration_spread_s) "
            "through Powertrain's scheduling core on a simulated cluster, and compare topology-aware placement with "
            "a topology-oblivious spreading baseline. A job's run time depends on how many nodes its GPUs span."
        ),
    )
    p.add_argument(
        "--trace",
        type=_trace,
        required=True,
        metavar="FILE|philly:NAME|alibaba:pods",
        help=f"job trace CSV (or an Alibaba pod list CSV), or a packaged trace: "
        f"{', '.join(TRACE_PREFIX + n for n in philly_traces())}, {ALIBABA_TRACE} (Alibaba's GPU pods; fractional "
        "GPUs rounded up to one GPU, see powertrain/sim/alibaba.py)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--cluster",
        default=None,
        metavar="SPEC",
        help=f"uniform cluster, keys nodes, gpus-per-node, model, topology (counts per parent); default {DEFAULT_SPEC}",
    )
    where.add_argument(
        "--fleet",
        type=fleet_path,
        default=None,
        metavar="FILE",
        help="node list CSV (sn,cpu_milli,memory_mib,gpu,model); `alibaba`: the packaged Alibaba PAI fleet "
        "(1,213 GPU nodes)",
    )
    p.add_argument(
        "--policy",
        choices=POLICY_CHOICES,
        default="all",
        help=(
            "topology: the core's placement (Preferred: one node, waiting --preferred-wait for one, then the "
            "narrowest domain that fits); packed: the core with "
            "Required node-level placement for gangs that fit one node; spread: topology-oblivious baseline "
            "(most free GPUs first); all (default): compare the three"
        ),
    )
    p.add_argument(
        "--queue-order",
        choices=[str(o) for o in QueueOrder],
        default=str(QueueOrder.FAIR_SHARE),
        help="the policy's queueing.order: FIFO, FairShare (default) or LAS (least attained service first, "
        "bounded preemption between its bands; a preempted gang pays queueing.restartCostSeconds, 120 s)",
    )
    p.add_argument("--max-jobs", type=_positive_int, default=None, metavar="N", help="replay only the first N jobs")
    p.add_argument(
        "--time-scale",
        type=_positive_float,
        default=1.0,
        metavar="F",
        help="multiply submit times by F (F < 1 submits faster: more load); default 1",
    )
    p.add_argument(
        "--preferred-wait",
        type=_wait_seconds,
        default=None,
        metavar="SECONDS",
        help="the policy's placement.preferredWaitSeconds for topology: the longest a gang waits for one node "
        "before it is placed wider (0: never waits); default 86400 (a cap: the cost-aware wait decides)",
    )
    p.add_argument(
        "--elastic-share",
        type=_share,
        default=0.0,
        metavar="F",
        help="make this share of the jobs elastic (bounds: --elastic-range; the core's "
        "autoscaling resizes them; throughput ∝ workers^0.85 (90 %% scaling efficiency per doubling), 30 s lost per "
        "resize); topology and packed policies only; default 0",
    )
    p.add_argument(
        "--power-mode",
        choices=("Performance", "Balanced", "Efficiency"),
        default="Performance",
        help="every job runs under the cap this power mode settles on for its model's (assumed) power profile: "
        "longer runs, less energy (see powertrain.sim.power); default Performance (no cap)",
    )
    p.add_argument(
        "--power-budget",
        type=_budget,
        action="append",
        default=[],
        metavar="LEVEL=WATTS",
        help="a power budget, as the policy's spec.power: cluster=W for the whole cluster, or rack=W (zone, spine, "
        "nvlink) for every domain of that level; repeatable (cluster and one level). The operator's allocation "
        "(core.power_budget) caps running jobs, lowest priority first, never below 200 W per GPU; a job's run "
        "stretches while it is cut; a gang that cannot fit at minimum limits waits (PowerBudget)",
    )
    p.add_argument(
        "--node-overhead-watts",
        type=_overhead,
        default=0,
        metavar="W",
        help="non-GPU draw counted against budgets per node (the policy's nodeOverheadWatts); default 0",
    )
    p.add_argument(
        "--elastic-range",
        type=_elastic_range,
        default=ElasticRange(),
        metavar="MIN:MAX",
        help="bounds of the elastic jobs around the trace's GPU count g: minReplicas max(1, g × MIN), maxReplicas "
        "g × MAX; default 0.5:2 (0:4 lets a job run on 1 worker up to 4 × g)",
    )
    p.add_argument("--output", type=Path, default=None, metavar="FILE", help="write summaries and per-job rows (JSON)")
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="DIR",
        help="write PNGs into DIR: job completion time CDF, GPU utilization and queue length over time, one line "
        "per policy (needs matplotlib: pip install 'powertrain[plot]')",
    )
    p.add_argument(
        "--progress",
        action="store_true",
        help="report progress on stderr every few seconds (default: only when stderr is a terminal)",
    )
    p.set_defaults(handler=run)


PROGRESS_INTERVAL_S = 3.0


class ProgressLine:
    """Prints where a long replay is, at most every PROGRESS_INTERVAL_S of wall time, and once when it ends."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        done = p.finished == p.jobs
        if not done and now - self._last < PROGRESS_INTERVAL_S:
            return
        self._last = now
        print(
            f"  {p.policy}: {p.events:,} events, sim time {p.sim_time_s / 3600:,.1f} h, "
            f"{p.finished:,}/{p.jobs:,} jobs finished",
            file=sys.stderr,
            flush=True,
        )


def _is_pod_list(path: Path) -> bool:
    """An Alibaba pod list (its header names num_gpu) rather than a Philly-style job trace."""
    try:
        with path.open(encoding="utf-8") as f:
            return "num_gpu" in f.readline().split(",")
    except (OSError, UnicodeDecodeError):
        return False  # load_trace says what is wrong with it


def _nodes(args: argparse.Namespace) -> list[SimNode]:
    if args.fleet is not None:
        return load_fleet(args.fleet)
    return parse_cluster(args.cluster if args.cluster is not None else DEFAULT_SPEC)


def run(args: argparse.Namespace) -> int:
    try:
        jobs = load_pods(args.trace) if _is_pod_list(args.trace) else load_trace(args.trace)
        nodes = _nodes(args)
    except (TraceError, ClusterError) as exc:
        print(f"powertrain simulate: {exc}", file=sys.stderr)
        return 2
    try:
        budgets = power_budgets(args.power_budget, args.node_overhead_watts)
    except BudgetError as exc:
        print(f"powertrain simulate: {exc}", file=sys.stderr)
        return 2
    if args.max_jobs is not None:
        jobs = jobs[: args.max_jobs]
    if args.plot is not None:
        from powertrain.sim.plots import PlotsUnavailable, pyplot

        try:
            pyplot()
        except PlotsUnavailable as exc:  # say it before a long replay, not after
            print(f"powertrain simulate: {exc}", file=sys.stderr)
            return 2
    show_progress = args.progress or sys.stderr.isatty()
    results: list[SimResult] = []
    policies = list(Policy) if args.policy == "all" else [Policy(args.policy)]
    if args.elastic_share:
        if policies == [Policy.SPREAD]:
            print("error: --elastic-share: elastic jobs need the topology or packed policy", file=sys.stderr)
            return 2
        policies = [p for p in policies if p is not Policy.SPREAD]
        if args.queue_order == QueueOrder.LAS.value or len({j.priority for j in jobs}) > 1:
            print(
                "error: --elastic-share: elastic jobs and preemption (--queue-order LAS, or a trace with more than "
                "one priority) are not simulated together",
                file=sys.stderr,
            )
            return 2
    gpus = sum(n.gpus for n in nodes)
    plural = "s" if len(nodes) != 1 else ""
    print(
        f"{len(jobs)} jobs from {args.trace} on {len(nodes)} node{plural}, {gpus} GPUs; time scale {args.time_scale:g}"
    )
    summaries: list[Summary] = []
    output: dict[str, Any] = {
        "trace": str(args.trace),
        "nodes": len(nodes),
        "gpus": gpus,
        "time_scale": args.time_scale,
        "preferred_wait_s": args.preferred_wait,
        "elastic_share": args.elastic_share,
        "power_mode": args.power_mode,
        "power_budgets": budgets.to_wire() if budgets is not None else None,
        "elastic_range": [args.elastic_range.min_fraction, args.elastic_range.max_factor],
        "queue_order": args.queue_order,
        "jobs": len(jobs),
        "results": {},
    }
    for policy in policies:
        began = time.perf_counter()
        try:
            result = simulate(
                jobs,
                nodes,
                policy,
                args.time_scale,
                preferred_wait_s=args.preferred_wait,
                progress=ProgressLine() if show_progress else None,
                elastic_share=args.elastic_share,
                power_mode=args.power_mode,
                elastic_range=args.elastic_range,
                queueing=Queueing(order=QueueOrder(args.queue_order)),
                power_budgets=budgets,
            )
        except BudgetError as exc:
            print(f"powertrain simulate: {exc}", file=sys.stderr)
            return 2
        results.append(result)
        elapsed = time.perf_counter() - began
        summary = summarize(result)
        summaries.append(summary)
        rate = summary.events / elapsed if elapsed > 0 else 0.0
        print(
            f"{policy}: {summary.events} events, {summary.passes} scheduling passes in {elapsed:.2f} s "
            f"({rate:,.0f}/s); GPU energy {summary.energy_kwh:,.0f} kWh ({args.power_mode})"
        )
        if budgets is not None:
            print(
                f"  budgets: {summary.budget_cut_jobs} job(s) cut, run time {summary.budget_slowdown:+.1%} vs the mode "
                f"alone; {summary.power_budget_waits} job(s) waited PowerBudget (mean "
                f"{summary.power_budget_wait_mean_s / 3600:,.1f} h); over budget {summary.over_budget_s:,.0f} s "
                "(caps apply at once in the simulator)"
            )
        if args.elastic_share:
            elastic = [r for r in result.records if r.elastic]
            resizes = sum(r.resizes for r in elastic)
            print(f"  {len(elastic)} elastic job(s), {resizes / max(1, len(result.records)):.2f} resizes/job")
        if summary.never_started:
            first = next(r for r in result.records if r.start_s is None)
            print(f"  {summary.never_started} job(s) never started, e.g. {first.job.job_id}: {first.waiting}")
        output["results"][str(policy)] = {"summary": summary.as_dict(), "jobs": job_rows(result)}
        if budgets is not None:  # 'level/domain' → budget and the highest draw the budgets let it reach, watts
            output["results"][str(policy)]["budgets"] = {
                label: {"budget_watts": watts, "peak_draw_watts": result.budget_draws.get(label, 0.0)}
                for label, watts in result.budgets.items()
            }
    print(markdown_table(summaries))
    if args.output is not None:
        try:
            args.output.write_text(json.dumps(output, indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            print(f"powertrain simulate: --output: cannot write {str(args.output)!r}: {exc.strerror}", file=sys.stderr)
            return 2
        print(f"wrote {args.output}")
    if args.plot is not None:
        from powertrain.sim.plots import write_plots

        subtitle = f"{len(jobs)} jobs from {Path(str(args.trace)).name} on {len(nodes)} nodes, {gpus} GPUs"
        if args.time_scale != 1:
            subtitle += f", time scale {args.time_scale:g}"
        try:
            written = write_plots(results, args.plot, subtitle)
        except OSError as exc:
            print(f"powertrain simulate: --plot: cannot write into {str(args.plot)!r}: {exc.strerror}", file=sys.stderr)
            return 2
        print("wrote " + ", ".join(str(path) for path in written))
    return 0
