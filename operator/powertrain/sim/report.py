"""What a replay measured: completion times, queueing delay, makespan, utilization, how often gangs were packed."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from powertrain.sim.engine import JobRecord, SimResult


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (a value that occurred); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


@dataclass(frozen=True)
class Summary:
    policy: str
    jobs: int
    completed: int
    never_started: int
    jct_mean_s: float
    jct_median_s: float
    jct_p95_s: float
    queue_mean_s: float
    queue_median_s: float
    queue_p95_s: float
    makespan_s: float
    gpu_utilization: float
    """Allocated GPU-seconds / (cluster GPUs × makespan)."""
    packed_work_utilization: float
    """The GPU-seconds the same jobs need when packed / (cluster GPUs × makespan): allocation that did work.
    A slow spread gang raises `gpu_utilization` without doing more work."""
    multi_gpu_jobs: int
    multi_gpu_packed_fraction: float
    """Multi-GPU jobs whose GPUs were all on one node."""
    sensitive_packed_fraction: float
    """The same, for the locality-sensitive ones (≥ 20 % slower spread)."""
    mean_slowdown_vs_packed: float
    """Mean run time / packed run time (1.0 = every job ran as fast as packed)."""
    events: int
    passes: int
    energy_kwh: float = 0.0
    """GPU energy of the completed jobs (`powertrain.sim.power` profiles, under the power mode's caps)."""
    preemptions_per_job: float = 0.0
    max_preemptions: int = 0
    wider_fraction: float = 0.0
    """Starts of gangs that fit one node on more than one node, per start of such gangs."""
    energy_per_job_kwh: float = 0.0
    power_slowdown: float = 0.0
    """Mean over completed jobs of run time at their caps (mode and budgets) / at the default limit, minus 1."""
    budgets: int = 0
    """Budgeted domains (cluster included); the fields below are about them."""
    budget_slowdown: float = 0.0
    """Mean over completed jobs of run time under the budgets' cuts / at their mode's cap alone, minus 1."""
    budget_cut_jobs: int = 0
    """Jobs a budget held below their mode's cap for some of their run."""
    power_budget_waits: int = 0
    """Jobs that waited with reason PowerBudget."""
    power_budget_wait_mean_s: float = 0.0
    """Their mean wait for the budget."""
    over_budget_s: float = 0.0
    """Seconds any budgeted domain drew more than its budget."""
    peak_budget_fraction: float = 0.0
    """Highest draw / budget of any budgeted domain."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fraction_packed(records: Sequence[JobRecord]) -> float:
    return sum(1 for r in records if r.packed) / len(records) if records else 0.0


def _run_time(record: JobRecord) -> float:
    """Time the job ran: a preempted or moved job's time stopped in between is queueing, not run time."""
    if record.elastic:  # never stopped, but its size (so its GPU-seconds per second) changes
        return (record.end_s or 0.0) - (record.start_s or 0.0)
    return record.gpu_seconds / record.job.gpus


def summarize(result: SimResult) -> Summary:
    done = [r for r in result.records if r.start_s is not None and r.end_s is not None]
    jct = [r.end_s - r.submit_s for r in done if r.end_s is not None]
    queue = [r.start_s - r.submit_s for r in done if r.start_s is not None]
    busy = sum(r.gpu_seconds for r in done)
    first = min((r.submit_s for r in result.records), default=0.0)
    last = max((r.end_s for r in done if r.end_s is not None), default=first)
    makespan = last - first
    work = sum(r.job.gpus * r.job.packed_s for r in done)
    capacity = result.total_gpus * makespan
    multi = [r for r in done if r.job.gpus > 1]
    fits = [r for r in result.records if 1 < r.job.gpus <= result.largest_node]
    slowdown = [_run_time(r) / r.job.packed_s for r in done]
    waited = [r for r in result.records if r.power_wait_s > 0]
    return Summary(
        policy=str(result.policy),
        jobs=len(result.records),
        completed=len(done),
        never_started=len(result.records) - len(done),
        jct_mean_s=_mean(jct),
        jct_median_s=percentile(jct, 50),
        jct_p95_s=percentile(jct, 95),
        queue_mean_s=_mean(queue),
        queue_median_s=percentile(queue, 50),
        queue_p95_s=percentile(queue, 95),
        makespan_s=makespan,
        gpu_utilization=busy / capacity if capacity > 0 else 0.0,
        packed_work_utilization=work / capacity if capacity > 0 else 0.0,
        multi_gpu_jobs=len(multi),
        multi_gpu_packed_fraction=_fraction_packed(multi),
        sensitive_packed_fraction=_fraction_packed([r for r in multi if r.job.locality_sensitive]),
        mean_slowdown_vs_packed=_mean(slowdown),
        events=result.events,
        passes=result.passes,
        energy_kwh=sum(r.energy_j or 0.0 for r in done) / 3.6e6,
        preemptions_per_job=_mean([r.preemptions for r in result.records]),
        max_preemptions=max((r.preemptions for r in result.records), default=0),
        wider_fraction=sum(r.wider_starts for r in fits) / max(1, sum(r.starts for r in fits)),
        energy_per_job_kwh=sum(r.energy_j or 0.0 for r in done) / 3.6e6 / len(done) if done else 0.0,
        power_slowdown=_mean([r.productive_s / r.uncapped_s - 1.0 for r in done if r.uncapped_s > 0]),
        budgets=len(result.budgets),
        budget_slowdown=_mean([r.productive_s / r.mode_s - 1.0 for r in done if r.mode_s > 0]),
        budget_cut_jobs=sum(1 for r in result.records if r.budget_cut_s > 0),
        power_budget_waits=len(waited),
        power_budget_wait_mean_s=_mean([r.power_wait_s for r in waited]),
        over_budget_s=result.over_budget_s,
        peak_budget_fraction=max(
            (draw / result.budgets[label] for label, draw in result.budget_draws.items()), default=0.0
        ),
    )


def job_rows(result: SimResult) -> list[dict[str, Any]]:
    return [
        {
            "job_id": r.job.job_id,
            "model": r.job.model,
            "gpus": r.job.gpus,
            "submit_s": r.submit_s,
            "start_s": r.start_s,
            "end_s": r.end_s,
            "servers": r.servers if r.nodes else None,
            "nodes": list(r.nodes),
            "waiting": r.waiting,
            "cap_watts": r.mode_cap,
            "lowest_cap_watts": r.lowest_cap,
            "budget_cut_s": round(r.budget_cut_s, 1),
            "power_budget_wait_s": round(r.power_wait_s, 1),
            "energy_j": round(r.energy_j, 1) if r.energy_j is not None else None,
        }
        for r in result.records
    ]


def hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h"


COLUMNS = (
    ("policy", lambda s: s.policy),
    ("jobs done", lambda s: f"{s.completed}/{s.jobs}"),
    ("JCT mean", lambda s: hours(s.jct_mean_s)),
    ("JCT median", lambda s: hours(s.jct_median_s)),
    ("JCT p95", lambda s: hours(s.jct_p95_s)),
    ("queue mean", lambda s: hours(s.queue_mean_s)),
    ("queue p95", lambda s: hours(s.queue_p95_s)),
    ("makespan", lambda s: hours(s.makespan_s)),
    ("GPU util", lambda s: f"{s.gpu_utilization:.1%}"),
    ("packed-work util", lambda s: f"{s.packed_work_utilization:.1%}"),
    (
        "multi-GPU packed",
        lambda s: f"{s.multi_gpu_packed_fraction:.1%} of {s.multi_gpu_jobs}" if s.multi_gpu_jobs else "—",
    ),
    ("sensitive packed", lambda s: f"{s.sensitive_packed_fraction:.1%}" if s.multi_gpu_jobs else "—"),
    ("slowdown vs packed", lambda s: f"{s.mean_slowdown_vs_packed:.3f}×"),
    ("preemptions/job", lambda s: f"{s.preemptions_per_job:.2f} (max {s.max_preemptions})"),
    ("wider than level", lambda s: f"{s.wider_fraction:.1%}"),
)


POWER_COLUMNS = (
    ("GPU energy", lambda s: f"{s.energy_kwh:,.0f} kWh"),
    ("energy/job", lambda s: f"{s.energy_per_job_kwh:,.1f} kWh"),
    ("power slowdown", lambda s: f"{s.power_slowdown:+.1%}"),
)
BUDGET_COLUMNS = (
    ("budget slowdown", lambda s: f"{s.budget_slowdown:+.1%} ({s.budget_cut_jobs} jobs cut)"),
    ("PowerBudget waits", lambda s: f"{s.power_budget_waits} (mean {hours(s.power_budget_wait_mean_s)})"),
    ("over budget", lambda s: f"{s.over_budget_s:,.0f} s (peak {s.peak_budget_fraction:.0%})"),
)


def markdown_table(summaries: Sequence[Summary]) -> str:
    columns = [*COLUMNS, *POWER_COLUMNS, *(BUDGET_COLUMNS if any(s.budgets for s in summaries) else ())]
    head = "| " + " | ".join(name for name, _ in columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    rows = ["| " + " | ".join(str(fn(s)) for _, fn in columns) + " |" for s in summaries]
    return "\n".join([head, rule, *rows])


# Over time: what the plots draw -----------------------------------------------------------------------------


def _steps(result: SimResult, change: dict[str, Callable[[JobRecord], int]]) -> list[tuple[float, int]]:
    """A step series from the replay's timeline: the level after every instant at which it changed."""
    by_name = {r.name: r for r in result.records}
    level = 0
    out: list[tuple[float, int]] = []
    for when, what, name in result.timeline:
        delta = change.get(what)
        if delta is None:
            continue
        level += delta(by_name[name])
        if out and out[-1][0] == when:
            out[-1] = (when, level)
        else:
            out.append((when, level))
    return out


def gpus_in_use(result: SimResult) -> list[tuple[float, int]]:
    """(time, GPUs allocated to running gangs) after every change."""
    return _steps(
        result,
        {"start": lambda r: r.job.gpus, "complete": lambda r: -r.job.gpus, "preempt": lambda r: -r.job.gpus},
    )


def queue_length(result: SimResult) -> list[tuple[float, int]]:
    """(time, jobs submitted but not yet started) after every change."""
    return _steps(result, {"submit": lambda r: 1, "start": lambda r: -1, "preempt": lambda r: 1})


def completion_times(result: SimResult) -> list[float]:
    """Job completion times (submit to end) of the jobs that finished, seconds, shortest first."""
    return sorted(r.end_s - r.submit_s for r in result.records if r.end_s is not None)
