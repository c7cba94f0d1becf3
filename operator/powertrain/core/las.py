"""Least-attained-service queue order (`ClusterTrainingPolicy.spec.queueing.order: LAS`), after Tiresias'
discretized two-dimensional LAS (Gu et al., NSDI '19): short jobs finish first without knowing durations.

Rules:

- Attained service is GPU-time: the GPU-seconds the job's earlier gangs held (`status.attainedGpuSeconds`,
  added up by the lifecycle whenever a gang stops) plus the running gang's GPUs × the time since its
  condition Scheduled turned True. Both live in the job's status, so the order survives operator restarts.
- Bands: `queueing.lasThresholdsGpuHours` (sorted) cut attained service into bands; band 0 holds the jobs
  below the lowest threshold. Within one priority, a lower band always comes first; inside a band queues take
  turns by weighted fair share and jobs keep their submission order (as with `FairShare`).
- Starvation guard: a waiting job that has waited `queueing.starvationSeconds` since it was submitted or its
  gang last stopped (condition Scheduled turning False) ranks in band 0, whatever it attained.
- Preemption between bands: a waiting job that does not fit may preempt running gangs of its own priority in a
  strictly higher band (besides lower-priority gangs, as always), through the same graceful path as priority
  preemption (SIGTERM, `preemption.gracePeriodSeconds` to checkpoint). The cost it assumes per preemption is
  `queueing.restartCostSeconds` (checkpoint + restore); to keep that cost small a gang is never preempted by LAS
  before it has run 10 × restartCostSeconds since it last started (so restarts cost it at most ~10 % of its run
  time), nor once it was preempted `queueing.maxPreemptionsPerJob` times (`status.preemptions`): at most that
  many LAS preemptions per job, ever.

Pure: time is an argument.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from datetime import datetime
from typing import Final

from powertrain.api.policy import Queueing
from powertrain.api.trainingjob import Phase
from powertrain.core import conditions as cond
from powertrain.core.locality_cost import gang_started
from powertrain.core.snapshot import JobInfo, parse_time

MIN_RUN_RESTART_COSTS: Final = 10
"""A gang runs at least this many restart costs between LAS preemptions."""


def running_gpus(info: JobInfo) -> int:
    """GPUs of a gang that holds its nodes (also while a suspension is being applied)."""
    return len(info.placement_nodes) * info.gpus_per_replica if info.phase == Phase.RUNNING.value else 0


def attained_gpu_seconds(info: JobInfo, now: datetime) -> float:
    status = info.job.status
    total = (status.attained_gpu_seconds or 0.0) if status is not None else 0.0
    gpus = running_gpus(info)
    if gpus:
        started = gang_started(info)
        if started is not None:
            total += gpus * max(0.0, (now - started).total_seconds())
    return total


def queued_since(info: JobInfo) -> datetime:
    """When the job last entered the queue: its gang last stopping, else its submission."""
    status = info.job.status
    if status is not None:
        for c in status.conditions:
            if c.type == cond.SCHEDULED and c.status == "False" and c.last_transition_time is not None:
                return parse_time(c.last_transition_time) or info.submit_time
    return info.submit_time


def thresholds_seconds(queueing: Queueing) -> list[float]:
    return sorted(h * 3600.0 for h in queueing.las_thresholds_gpu_hours)


def band(info: JobInfo, now: datetime, queueing: Queueing, limits: list[float] | None = None) -> int:
    """The job's LAS band (0 first); a waiting job past the starvation guard is in band 0."""
    if not info.placed and (now - queued_since(info)).total_seconds() >= queueing.starvation_seconds:
        return 0
    cuts = limits if limits is not None else thresholds_seconds(queueing)
    return bisect.bisect_right(cuts, attained_gpu_seconds(info, now))


def preemptible_for(waiting_band: int, priority: int, now: datetime, queueing: Queueing) -> Callable[[JobInfo], bool]:
    """Which running gangs a waiting job of `priority` in `waiting_band` may preempt by LAS (module rule)."""
    limits = thresholds_seconds(queueing)
    min_run = MIN_RUN_RESTART_COSTS * queueing.restart_cost_seconds

    def eligible(victim: JobInfo) -> bool:
        if victim.priority != priority or not victim.placed:
            return False
        status = victim.job.status
        if status is not None and (status.preemptions or 0) >= queueing.max_preemptions_per_job:
            return False
        started = gang_started(victim)
        if started is None or (now - started).total_seconds() < min_run:
            return False
        return band(victim, now, queueing, limits) > waiting_band

    return eligible
