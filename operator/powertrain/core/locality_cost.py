"""Whether a Preferred gang should wait for one domain of its level or start scattered now: a cost estimate.

Waiting pays exactly when the expected wait for a domain of the gang's level is shorter than the time the
gang would lose by running scattered: wait  <  run time × (slowdown at the width it would get now − 1).
Both sides are estimated from the snapshot (rules below); `placement.preferredWaitSeconds` stays the cap
(core.locality), so an estimate can shorten a wait, never lengthen it past the cap. The estimate weighs the gang
alone; the scheduler adds the queue's side: a gang that should start wider takes only GPUs no other waiting job
could start on (core.scheduler._contested), else it keeps waiting for its domain.

Locality sensitivity S — how many times longer the gang takes with every worker on a different node than
inside one domain of its level: `spec.topology.localitySensitivity` when given; else the value declared by
the most recently submitted job with the same first-container image that declares one (jobs like it); else
DEFAULT_SENSITIVITY (1.5, below the median of Gavel's measured 8-GPU slowdowns — most jobs gain from locality,
the default must not overstate it). The slowdown at a width of k nodes for g replicas interpolates linearly in
the share of ring all-reduce hops that cross a node boundary: 1 + (S − 1) × min(k, g) / g (1 when k = 1).

Run time T of the waiting gang: `spec.runPolicy.expectedDurationSeconds`; else activeDeadlineSeconds (an upper
bound); else the median expected total run time of the running gangs (below); else DEFAULT_RUN_SECONDS.

Expected wait D: per domain of the level the gang could ever fit in (same GPU model, its filters, not kept for
an earlier job), the running Powertrain gangs on its nodes are released in order of their expected remaining
time; D is the first time enough capacity is free, the minimum over domains. A running gang's expected
remaining time: its expected total (expectedDurationSeconds, else activeDeadlineSeconds) minus its elapsed time
(since condition Scheduled turned True, else status.startTime), at least MIN_REMAINING_SECONDS; with no
known total, its elapsed time (durations are heavy-tailed: a gang that ran t tends to run about t more).
Resources held by others (non-Powertrain pods) never count as freeing up. The cost of keeping a domain for
the gang meanwhile (others cannot use it) is not counted.

Pure: time is an argument.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from powertrain.core import conditions as cond
from powertrain.core.placement import GangRequest, PlacementEngine, _capacity
from powertrain.core.snapshot import ClusterSnapshot, JobInfo, parse_time
from powertrain.core.topology import DomainKey

DEFAULT_SENSITIVITY: Final = 1.5
DEFAULT_RUN_SECONDS: Final = 3600.0
MIN_REMAINING_SECONDS: Final = 60.0


@dataclass(frozen=True)
class LocalityEstimate:
    wait: bool
    expected_wait_s: float | None
    """None: no domain of the level frees up from running gangs alone."""
    run_s: float
    slowdown: float
    sensitivity: float
    source: str

    def describe(self) -> str:
        wait = "never (no running gang frees one)" if self.expected_wait_s is None else _dur(self.expected_wait_s)
        verdict = "waiting pays" if self.wait else "starting wider now is expected to finish sooner"
        return (
            f"cost estimate: a domain of its level expected free in {wait}; scattered now it would run "
            f"{self.slowdown:.2f}× slower (locality sensitivity {self.sensitivity:g}, {self.source}) for an "
            f"expected {_dur(self.run_s)}: {verdict}"
        )


def _dur(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _image(info: JobInfo) -> str:
    containers = info.job.spec.template.spec.containers
    return containers[0].image if containers else ""


def sensitivity(info: JobInfo, snapshot: ClusterSnapshot) -> tuple[float, str]:
    """The gang's locality sensitivity and where it comes from (module rule)."""
    own = info.job.spec.topology.locality_sensitivity
    if own is not None:
        return own, "spec.topology.localitySensitivity"
    image = _image(info)
    like: JobInfo | None = None
    for other in snapshot.jobs.values():
        if other.key == info.key or other.job.spec.topology.locality_sensitivity is None or _image(other) != image:
            continue
        if like is None or (other.submit_time, other.key) > (like.submit_time, like.key):
            like = other
    if like is not None:
        value = like.job.spec.topology.locality_sensitivity
        assert value is not None
        return value, f"as job {like.key[0]}/{like.key[1]} with the same image"
    return DEFAULT_SENSITIVITY, "default"


def slowdown(sens: float, replicas: int, servers: int) -> float:
    """How many times longer the gang runs spread over `servers` nodes than inside one domain."""
    if replicas <= 1 or servers <= 1:
        return 1.0
    return 1.0 + (sens - 1.0) * min(servers, replicas) / replicas


def known_total(info: JobInfo) -> float | None:
    policy = info.job.spec.run_policy
    hint = policy.expected_duration_seconds or policy.active_deadline_seconds
    return float(hint) if hint is not None else None


def gang_started(info: JobInfo) -> datetime | None:
    """When the running gang started: condition Scheduled turning True, else the job's first start."""
    # Asked for every running gang by every estimate of a pass; a JobInfo never changes, so kept with it.
    if "gang_started" not in info.derived:
        info.derived["gang_started"] = _gang_started(info)
    started = info.derived["gang_started"]
    return started if isinstance(started, datetime) else None


def _gang_started(info: JobInfo) -> datetime | None:
    status = info.job.status
    if status is not None:
        for c in status.conditions:
            if c.type == cond.SCHEDULED and c.status == "True" and c.last_transition_time is not None:
                return parse_time(c.last_transition_time)
    return info.start_time


def expected_remaining(info: JobInfo, now: datetime) -> float:
    started = gang_started(info)
    elapsed = max(0.0, (now - started).total_seconds()) if started is not None else 0.0
    total = known_total(info)
    if total is not None:
        return max(total - elapsed, MIN_REMAINING_SECONDS)
    return max(elapsed, MIN_REMAINING_SECONDS)


def own_run_seconds(info: JobInfo, snapshot: ClusterSnapshot, now: datetime) -> tuple[float, str]:
    total = known_total(info)
    if total is not None:
        return total, "its duration hint"
    totals: list[float] = []
    for other in snapshot.jobs.values():
        if other.placed:
            started = gang_started(other)
            elapsed = (now - started).total_seconds() if started is not None else 0.0
            totals.append(max(0.0, elapsed) + expected_remaining(other, now))
    if totals:
        return statistics.median(totals), "running gangs' median"
    return DEFAULT_RUN_SECONDS, "default run time"


def expected_wait(engine: PlacementEngine, request: GangRequest, now: datetime) -> float | None:
    """Seconds until some domain of the gang's level is expected to hold it (module rule); 0: one does now."""
    snapshot = engine.snapshot
    level = engine.topology.level_index(request.level)
    if level is None:
        return None
    best: float | None = None
    remaining: dict[tuple[str, str], float] = {}
    for view in engine.views(request):
        members: dict[DomainKey, list[str]] = {}
        for name in view.cap:
            key = view.domains[level].get(name)
            if key is not None and name not in engine.masked:
                members.setdefault(key, []).append(name)
        for nodes in members.values():
            free = {n: dict(engine.node_free(n)) for n in nodes}
            for n in nodes:
                for resource, amount in snapshot.nodes[n].releasing.items():
                    free[n][resource] = free[n].get(resource, 0) + amount
            cap = {n: _capacity(free[n], request.per_replica) for n in nodes}
            total = sum(cap.values())
            if total >= request.replicas:
                return 0.0
            releases: list[tuple[float, str, str, dict[str, int]]] = []
            for n in nodes:
                for job, amounts in snapshot.node_job_usage.get(n, {}).items():
                    info = snapshot.jobs.get(job)
                    if info is None or not info.placed:
                        continue
                    rkey = job
                    if rkey not in remaining:
                        remaining[rkey] = expected_remaining(info, now)
                    releases.append((remaining[rkey], n, f"{job[0]}/{job[1]}", dict(amounts)))
            releases.sort(key=lambda r: (r[0], r[2], r[1]))
            for when, n, _, amounts in releases:
                if best is not None and when >= best:
                    break
                for resource, amount in amounts.items():
                    free[n][resource] = free[n].get(resource, 0) + amount
                new = _capacity(free[n], request.per_replica)
                total += new - cap[n]
                cap[n] = new
                if total >= request.replicas:
                    best = when
                    break
    return best


def estimate(
    engine: PlacementEngine,
    request: GangRequest,
    info: JobInfo,
    servers_now: int,
    now: datetime,
    cache: dict[tuple[object, ...], float | None] | None = None,
) -> LocalityEstimate:
    """Wait or not, for a gang that would start on `servers_now` nodes if placed wider now. `cache` keeps
    expected waits by gang shape within one pass (kept domains only ever lengthen a wait)."""
    sens, source = sensitivity(info, engine.snapshot)
    if known_total(info) is None and cache is not None and ("run",) in cache:
        run_s = cache[("run",)] or DEFAULT_RUN_SECONDS
    else:
        run_s, _ = own_run_seconds(info, engine.snapshot, now)
        if known_total(info) is None and cache is not None:
            cache[("run",)] = run_s
    factor = slowdown(sens, request.replicas, servers_now)
    shape = (
        request.filter_shape(),
        tuple(sorted(request.per_replica.items())),
        request.models,
        request.level,
        request.replicas,
    )
    if cache is not None and shape in cache:
        wait_s = cache[shape]
    else:
        wait_s = expected_wait(engine, request, now)
        if cache is not None:
            cache[shape] = wait_s
    worth = wait_s is not None and wait_s < run_s * (factor - 1.0)
    return LocalityEstimate(worth, wait_s, run_s, factor, sens, source)
