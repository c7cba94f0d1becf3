"""One scheduling pass: `schedule(snapshot, now)` decides which waiting gangs to place where, which gangs to
preempt for them, and why every other waiting job waits. The kopf shell, the simulator and the benchmarks
all call it; it reads nothing but its arguments.

A job is considered when it is not finished, not suspended, not holding a gang, has no pods left from a
previous gang, is past its restart backoff and has a valid spec. See queueing (order, quotas, backfill),
placement (where), locality and locality_cost (whether and how long a Preferred gang waits for its level), las
(the LAS queue order) and preemption (whom) for the rules.
A job whose evaluation raises is recorded in `Decisions.failed` (lifecycle sets it aside) and the pass goes on:
one job can never stop the scheduling of the others.
A placement that would break a power budget of the policy even with every GPU at its minimum limit is not
taken: the gang waits with reason PowerBudget (see power_budget.PowerFit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final

from powertrain.api.constants import GPU_RESOURCE
from powertrain.api.policy import QueueOrder, QueueSpec, ReschedulingMode
from powertrain.core import autoscale, las, locality_cost
from powertrain.core import conditions as cond
from powertrain.core.backoff import restart_not_before
from powertrain.core.locality import locality_deadline, waiting_message, wider_than_requested
from powertrain.core.placement import GangRequest, Placement, PlacementEngine, Unplaceable
from powertrain.core.power_budget import PowerFit
from powertrain.core.preemption import plan_preemption
from powertrain.core.queueing import (
    largest_potential,
    never_fits,
    order_for_admission,
    queue_order,
    quota_problem,
    reserve_for,
)
from powertrain.core.reschedule import DefragPlan, avoided_nodes, plan_defragmentation
from powertrain.core.snapshot import ClusterSnapshot, JobInfo, JobKey

MAX_BLOCKED_ANALYSED: Final = 64
"""Blocked jobs per pass that get a preemption search and a kept domain (the first ones in queue order); the
rest only learn why they do not fit (and, once per shape for up to as many more, whether they could ever fit),
so a long queue of misfits cannot make a pass slow. The same bound
applies to Preferred gangs waiting for locality: past it, one waits without keeping a domain and without the
check that it could ever fit inside its level."""


@dataclass(frozen=True)
class Preemption:
    victim: JobKey
    preemptor: JobKey
    message: str


@dataclass(frozen=True)
class DefragMove:
    job: JobKey
    for_job: JobKey
    message: str
    nodes: frozenset[str]
    """The freed domain's nodes: the moved gang keeps off them for the policy's cool-down."""


@dataclass(frozen=True)
class Waiting:
    reason: str
    message: str


@dataclass
class Decisions:
    placements: dict[JobKey, Placement] = field(default_factory=dict)
    preemptions: dict[JobKey, Preemption] = field(default_factory=dict)
    """Victim → why; the victim's whole gang is stopped (gracefully) and it goes back to its queue."""
    moves: dict[JobKey, DefragMove] = field(default_factory=dict)
    """Gangs moved to make room for a gang blocked by fragmentation (policy rescheduling.defragmentation: Act)."""
    waiting: dict[JobKey, Waiting] = field(default_factory=dict)
    positions: dict[JobKey, int] = field(default_factory=dict)
    """1-based place of each waiting job in its queue."""
    backing_off: dict[JobKey, datetime] = field(default_factory=dict)
    """Jobs not considered because their restart backoff runs until the given time."""
    defrag_hints: dict[JobKey, str] = field(default_factory=dict)
    """Blocked gang → the defragmentation that would make room (policy mode Warn), added to its message."""
    wake_at: datetime | None = None
    """When the first locality wait of this pass ends: a pass then may place that gang wider."""
    resizes: dict[JobKey, autoscale.Resize] = field(default_factory=dict)
    """Running elastic gangs to grow or shrink in place (see core.autoscale)."""
    growable: dict[JobKey, int] = field(default_factory=dict)
    """Elastic gangs that could grow into idle GPUs now, once those have stayed idle long enough."""
    failed: dict[JobKey, str] = field(default_factory=dict)
    """Jobs whose evaluation raised, with the error: set aside (see lifecycle.set_aside), never placed."""
    locality_notes: dict[JobKey, str] = field(default_factory=dict)
    """Placed wider than their level after the locality cost estimate said waiting does not pay: the estimate."""

    @property
    def placed_jobs(self) -> list[JobKey]:
        return list(self.placements)


def _fmt(key: JobKey) -> str:
    return f"{key[0]}/{key[1]}" if key[0] else key[1]


def describe_error(exc: BaseException) -> str:
    """An exception as a condition message can carry it (type and text, bounded)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


def candidates(snapshot: ClusterSnapshot, now: datetime, decisions: Decisions) -> list[JobInfo]:
    out: list[JobInfo] = []
    for info in snapshot.jobs.values():
        if info.finished or info.suspended or info.placed:
            continue
        if snapshot.job_pods.get(info.key):
            continue  # the previous gang's pods must be gone first (names are deterministic)
        try:
            not_before = restart_not_before(info.job)
        except Exception as exc:  # one job's bad numbers must not stop the pass
            decisions.failed[info.key] = describe_error(exc)
            continue
        if not_before is not None and not_before > now:
            decisions.backing_off[info.key] = not_before
            continue
        failed_create = snapshot.create_backoff.get(info.key)
        if failed_create is not None and failed_create[0] > now:
            decisions.backing_off[info.key] = failed_create[0]
            continue
        out.append(info)
    return out


def _shape_key(request: GangRequest) -> tuple[object, ...]:
    return request.shape_key


def schedule(snapshot: ClusterSnapshot, now: datetime, jobs: Iterable[JobInfo] | None = None) -> Decisions:
    """Decide one pass. `jobs` restricts the pass to these waiting jobs (default: every eligible job)."""
    decisions = Decisions()
    engine = PlacementEngine(snapshot)
    policy = snapshot.policy
    queues = {q.name: q for q in policy.queues}
    used = snapshot.queue_usage()
    quota_blocked: dict[str, JobKey] = {}
    taken: set[JobKey] = set()
    # Same shape as a job that already failed this pass with at most as many replicas: it fails the same way.
    failed_shapes: dict[tuple[object, ...], tuple[int, int, Waiting, JobKey]] = {}
    queue_positions: dict[str, int] = {}
    waiting_jobs = candidates(snapshot, now, decisions) if jobs is None else jobs
    order = policy.queueing.order
    bands: dict[JobKey, int] = {}
    if order == QueueOrder.FIFO:
        pending = queue_order(waiting_jobs)
    elif order == QueueOrder.LAS:
        limits = las.thresholds_seconds(policy.queueing)
        q = policy.queueing

        def band_of(j: JobInfo) -> int:
            known = bands.get(j.key)
            if known is None:
                known = bands[j.key] = las.band(j, now, q, limits)
            return known

        pending = order_for_admission(
            waiting_jobs,
            used,
            queues,
            tier=band_of,
        )
    else:
        pending = order_for_admission(waiting_jobs, used, queues)
    lowest_placed = snapshot.lowest_placed_priority()
    analysed = 0
    # (shape, replicas) → the first job of that shape held for locality this pass, or None: never fits its level.
    held_shapes: dict[tuple[tuple[object, ...], int], JobKey | None] = {}
    power = (
        PowerFit.build(snapshot)
        if snapshot.policy.power.cluster_watts
        or snapshot.policy.power.domain_watts
        or (snapshot.policy.power.overrides)
        else None
    )

    def power_problem(info: JobInfo, placement: Placement) -> str | None:
        return power.problem(list(placement.nodes), info.gpus_per_replica) if power is not None else None

    def take(info: JobInfo, request: GangRequest, placement: Placement) -> None:
        engine.commit(placement, request.per_replica)
        if power is not None:
            power.commit(list(placement.nodes), info.gpus_per_replica)

    wait_cache: dict[tuple[object, ...], float | None] = {}  # shape → expected wait for its level, this pass
    scattering: list[_Scatter] = []  # held gangs the cost estimate would start wider: placed at the end of the pass

    def wait(info: JobInfo, reason: str, message: str) -> None:
        hint = decisions.defrag_hints.get(info.key)
        if hint is not None:
            message += f"; defragmentation (Warn, not acted on): {hint}"
        decisions.waiting[info.key] = Waiting(reason, message)
        queue_positions[info.queue] = queue_positions.get(info.queue, 0) + 1
        decisions.positions[info.key] = queue_positions[info.queue]

    def may_preempt(info: JobInfo) -> bool:
        """Whether a blocked job could have gangs preempted for it (lower priority running, or LAS bands)."""
        lower = lowest_placed is not None and lowest_placed < info.priority
        return policy.preemption.enabled and (lower or order == QueueOrder.LAS)

    def hold_for_locality(info: JobInfo, request: GangRequest, until: datetime) -> Placement | Waiting | None:
        """Place a Preferred gang inside its level, or keep it waiting for that; None: treat it as usual."""
        nonlocal analysed
        key = (_shape_key(request), request.replicas)
        behind = _held_ahead(held_shapes, key, info.priority, engine.snapshot)
        if behind is not None and not may_preempt(info):
            # A gang of its shape with no more workers is held for its level this pass, so it cannot get a domain
            # of the level before that one (masks only grow within a pass): no search needed.
            return _behind(held_shapes[behind], request.level, None)
        held = request.held()
        result = engine.find(held)
        if isinstance(result, Placement):
            problem = power_problem(info, result)
            if problem is not None:
                return Waiting(cond.REASON_POWER_BUDGET, problem)
            take(info, request, result)
            return result
        wider = engine.find(request)
        if behind is not None and isinstance(wider, Placement):
            return _behind(held_shapes[behind], request.level, result.message)
        if not isinstance(wider, Placement):
            return None  # it could not start anywhere now: blocked like any other job, no locality to wait for
        if not wider_than_requested(request.level, wider.level):
            # Only nodes without a label of its level had room (they belong to no domain of it): as narrow as asked.
            problem = power_problem(info, wider)
            if problem is not None:
                return Waiting(cond.REASON_POWER_BUDGET, problem)
            take(info, request, wider)
            return wider
        note = ""
        scatter = False
        if policy.placement.cost_aware_wait:
            estimate = locality_cost.estimate(engine, request, info, wider.node_count, now, wait_cache)
            note = "; " + estimate.describe()
            scatter = not estimate.wait
        kept: str | None = None
        kept_nodes: frozenset[str] = frozenset()
        if analysed < MAX_BLOCKED_ANALYSED:
            analysed += 1
            if order == QueueOrder.LAS and may_preempt(info):
                # Under LAS a gang that has attained less service takes room inside its level from more-served
                # gangs (as a blocked job does) rather than drain a domain or run scattered.
                preempting = _preempt_for(engine, held, info, now, taken, decisions, lowest_placed, bands.get(info.key))
                if preempting is not None:
                    held_shapes[key] = info.key
                    return preempting
            defrag = _defragment(engine, held, info, now, taken, decisions)
            if defrag is not None:
                held_shapes[key] = info.key
                return Waiting(cond.REASON_WAITING_FOR_LOCALITY, defrag)
            reservation = reserve_for(engine, held)
            if reservation is None:
                held_shapes[key] = None  # it could never fit inside one domain of its level: widen at once
                return None
            engine.mask(reservation.nodes)
            kept = f"{reservation.level} {reservation.domain}"
            kept_nodes = reservation.nodes
        held_shapes[key] = info.key
        if scatter:
            # Scattered, it would take GPUs the jobs behind it may start on now: it waits like a held gang (its
            # domain kept, so it cannot starve), and the end of the pass places it wider on what they leave.
            scattering.append(_Scatter(info, request, kept_nodes))
            note += SCATTER_NOTE
        return Waiting(
            cond.REASON_WAITING_FOR_LOCALITY, waiting_message(result.message, request.level, until, kept) + note
        )

    potential: dict[tuple[object, ...], int] = {}
    late_checks = 0

    def never_fits_late(request: GangRequest, shape: tuple[object, ...], result: Unplaceable) -> tuple[str, str] | None:
        """Past the analysed jobs, still tell a job that can never fit: once per shape (and at most
        MAX_BLOCKED_ANALYSED more checks per pass), so a long queue of misfits stays cheap."""
        nonlocal late_checks
        if result.reason != cond.REASON_WAITING_FOR_RESOURCES:
            return None
        most = potential.get(shape)
        if most is None or request.replicas > most:
            if late_checks >= MAX_BLOCKED_ANALYSED:
                return None
            late_checks += 1
            if most is None:
                most = potential[shape] = largest_potential(engine, request)[0]
            never = never_fits(engine, request) if request.replicas > most else None
            if never is not None:
                return cond.REASON_NEVER_FITS, never
        return None

    def consider(info: JobInfo) -> None:
        nonlocal analysed
        queue = queues.get(info.queue)
        if queue is None:
            known = ", ".join(sorted(queues))
            wait(
                info,
                cond.REASON_UNKNOWN_QUEUE,
                f"spec.queue: {info.queue!r} is not a queue of the ClusterTrainingPolicy (queues: {known})",
            )
            return
        if info.queue in quota_blocked:
            wait(
                info,
                cond.REASON_QUOTA_EXCEEDED,
                f"queue {info.queue!r} is at its GPU quota; waiting behind {_fmt(quota_blocked[info.queue])}",
            )
            return
        problem = quota_problem(info, queue, used.get(info.queue, 0))
        if problem is not None:
            message, could_fit = problem
            wait(info, cond.REASON_QUOTA_EXCEEDED, message)
            if could_fit:
                quota_blocked[info.queue] = info.key
            return
        request = GangRequest.from_job(info, avoid=avoided_nodes(info.job.status, now))
        shape = _shape_key(request)
        earlier = failed_shapes.get(shape)
        if earlier is not None and request.replicas >= earlier[0] and info.priority <= earlier[1]:
            _, _, why, ahead = earlier
            wait(info, why.reason, f"{why.message} (as for {_fmt(ahead)}, ahead in the queue)")
            return
        until = locality_deadline(info, request, engine.topology, policy.placement.preferred_wait_seconds, now)
        if until is not None and now < until:
            held = hold_for_locality(info, request, until)
            if isinstance(held, Placement):
                decisions.placements[info.key] = held
                used[info.queue] = used.get(info.queue, 0) + request.gpus
                return
            if held is not None:
                wait(info, held.reason, held.message)
                if held.reason != cond.REASON_POWER_BUDGET:  # power frees with events, not at the locality deadline
                    decisions.wake_at = min(decisions.wake_at or until, until)
                return
        result = engine.find(request)
        if not isinstance(result, Placement) and request.avoid:
            # Keeping off a straggler's node is a preference: a gang with nowhere else to go runs there anyway.
            result = engine.find(replace(request, avoid=frozenset()))
        if isinstance(result, Placement):
            over_budget = power_problem(info, result)
            if over_budget is not None:
                wait(info, cond.REASON_POWER_BUDGET, over_budget)
                return
            take(info, request, result)
            decisions.placements[info.key] = result
            used[info.queue] = used.get(info.queue, 0) + request.gpus
            return
        smaller = autoscale.place_smaller(engine, request, info)  # elastic: start with what fits
        if smaller is not None:
            decisions.placements[info.key] = smaller
            used[info.queue] = used.get(info.queue, 0) + len(smaller.nodes) * request.gpus_per_replica
            return
        if analysed >= MAX_BLOCKED_ANALYSED:
            late = never_fits_late(request, shape, result)
            wait(info, *(late or (result.reason, result.message)))
            return
        analysed += 1
        waiting = _shrink_for(engine, request, info, result, used, queues, decisions) or _blocked(
            engine, request, info, result, now, taken, decisions, lowest_placed, bands.get(info.key)
        )
        wait(info, waiting.reason, waiting.message)
        if waiting.reason not in (cond.REASON_WAITING_FOR_PREEMPTION, cond.REASON_WAITING_FOR_SHRINK):
            failed_shapes[shape] = (request.replicas, info.priority, waiting, info.key)

    for info in pending:
        try:
            consider(info)
        except Exception as exc:  # a job whose evaluation raises is set aside, the rest go on
            decisions.failed[info.key] = describe_error(exc)
            decisions.placements.pop(info.key, None)
            decisions.waiting.pop(info.key, None)
    if scattering and not _contested(engine, scattering, decisions):
        _place_scattering(engine, scattering, decisions, used, queues, now, wait_cache, power_problem, take)
    busy = set(decisions.resizes) | set(decisions.preemptions) | taken | set(decisions.failed)
    growth = autoscale.plan_growth(engine, now, used, queues, busy, set(decisions.waiting))
    decisions.resizes.update(growth.resizes)
    decisions.growable = growth.growable
    if growth.wake_at is not None:
        decisions.wake_at = min(decisions.wake_at or growth.wake_at, growth.wake_at)
    return decisions


def _behind(ahead: JobKey | None, level: str, shortfall: str | None) -> Waiting | None:
    """Queued behind a gang of its shape that waits for its level: a queue wait, not yet a locality wait (its
    preferredWaitSeconds starts once it is the first held back). None: that gang could never fit inside one
    domain of the level, and neither can this one (treated as usual)."""
    if ahead is None:
        return None
    why = f": {shortfall}" if shortfall else " (it cannot get one before that gang)"
    return Waiting(
        cond.REASON_WAITING_FOR_RESOURCES,
        f"waiting behind {_fmt(ahead)}, a gang of the same shape that waits for one {level}{why}",
    )


def _held_ahead(
    held: dict[tuple[tuple[object, ...], int], JobKey | None],
    key: tuple[tuple[object, ...], int],
    priority: int,
    snapshot: ClusterSnapshot,
) -> tuple[tuple[object, ...], int] | None:
    """The entry of an earlier gang of the same shape, with at most as many replicas and at least this
    priority, held for its level this pass (or found never to fit inside it): a gang as large cannot get a
    domain of the level before that one."""
    shape, replicas = key
    for (other, fewer), ahead in held.items():
        if other != shape or fewer > replicas:
            continue
        first = snapshot.jobs.get(ahead) if ahead is not None else None
        if ahead is None or (first is not None and first.priority >= priority):
            return (other, fewer)
    return None


@dataclass(frozen=True)
class _Scatter:
    info: JobInfo
    request: GangRequest
    kept: frozenset[str]


SCATTER_NOTE: Final = "; it starts wider only on GPUs no other waiting job can use"


def _contested(engine: PlacementEngine, scattering: list[_Scatter], decisions: Decisions) -> bool:
    """Whether another waiting job could start on the GPUs free now (kept ones included): then they are not left
    over, and a gang that would run wider than its level leaves them to it. Starting big gangs scattered ahead of
    a queue that can use the room delays many jobs for one (bench/results/scheduling.md: up to +156 % mean JCT)."""
    snapshot = engine.snapshot
    free = sum(engine.node_free(name).get(GPU_RESOURCE, 0) for name in snapshot.nodes)
    mine = {item.info.key for item in scattering}
    for key, waiting in decisions.waiting.items():
        if key in mine or waiting.reason not in _WANTS_ROOM:
            continue  # a job held by its quota, an unknown queue or a power budget could not use the GPUs
        info = snapshot.jobs.get(key)
        if info is not None and info.spec_replicas * info.gpus_per_replica <= free:
            return True
    return False


_WANTS_ROOM: Final = frozenset({cond.REASON_WAITING_FOR_RESOURCES, cond.REASON_WAITING_FOR_LOCALITY})


def _place_scattering(
    engine: PlacementEngine,
    scattering: list[_Scatter],
    decisions: Decisions,
    used: dict[str, int],
    queues: dict[str, QueueSpec],
    now: datetime,
    wait_cache: dict[tuple[object, ...], float | None],
    power_problem: Callable[[JobInfo, Placement], str | None],
    take: Callable[[JobInfo, GangRequest, Placement], None],
) -> None:
    """Start the held gangs whose cost estimate said "wider now" on the GPUs the rest of the queue left (queue
    order): a scattered gang never takes GPUs a job behind it could have started on in the same pass."""
    placed = False
    for item in scattering:
        info, request = item.info, item.request
        queue = queues.get(info.queue)
        if queue is None or quota_problem(info, queue, used.get(info.queue, 0)) is not None:
            continue
        engine.unmask(item.kept)
        result = engine.find(request)
        if isinstance(result, Placement) and wider_than_requested(request.level, result.level):
            estimate = locality_cost.estimate(engine, request, info, result.node_count, now, wait_cache)
            if estimate.wait:
                result = Unplaceable(cond.REASON_WAITING_FOR_LOCALITY, estimate.describe())
            else:
                decisions.locality_notes[info.key] = estimate.describe()
        if not isinstance(result, Placement) or power_problem(info, result) is not None:
            engine.mask(item.kept)
            continue
        take(info, request, result)
        decisions.placements[info.key] = result
        decisions.waiting.pop(info.key, None)
        used[info.queue] = used.get(info.queue, 0) + request.gpus
        placed = True
    if placed:
        _renumber(decisions, engine.snapshot)


def _renumber(decisions: Decisions, snapshot: ClusterSnapshot) -> None:
    """Queue positions without the jobs placed at the end of the pass (1-based, per queue, order kept)."""
    by_queue: dict[str, list[tuple[int, JobKey]]] = {}
    for key, position in decisions.positions.items():
        if key in decisions.waiting:
            info = snapshot.jobs.get(key)
            by_queue.setdefault(info.queue if info is not None else "", []).append((position, key))
    decisions.positions = {}
    for entries in by_queue.values():
        for i, (_, key) in enumerate(sorted(entries), start=1):
            decisions.positions[key] = i


def _shrink_for(
    engine: PlacementEngine,
    request: GangRequest,
    info: JobInfo,
    result: Unplaceable,
    used: dict[str, int],
    queues: dict[str, QueueSpec],
    decisions: Decisions,
) -> Waiting | None:
    """Shrink running elastic gangs for a gang that does not fit, before anyone is preempted whole."""
    if result.reason != cond.REASON_WAITING_FOR_RESOURCES:
        return None
    plan = autoscale.plan_shrink(
        engine, request, info, used, queues, set(decisions.resizes), f"priority {info.priority}, queue {info.queue}"
    )
    if plan is None:
        return None
    engine.mask(plan.nodes)
    if not plan.shrinks:
        return Waiting(
            cond.REASON_WAITING_FOR_SHRINK, f"waiting for shrinking gangs to release {plan.level} {plan.domain}"
        )
    for resize in plan.shrinks:
        decisions.resizes[resize.job] = resize
    return Waiting(cond.REASON_WAITING_FOR_SHRINK, autoscale.shrink_message(plan))


def _preempt_for(
    engine: PlacementEngine,
    request: GangRequest,
    info: JobInfo,
    now: datetime,
    taken: set[JobKey],
    decisions: Decisions,
    lowest_placed: int | None,
    band: int | None,
) -> Waiting | None:
    """Preempt gangs to make room for a job that does not fit (priority, or LAS band), keeping the room for it;
    None when no eligible gang frees enough."""
    # Only a gang of lower priority (or, under LAS, of a higher band) can be a victim; without one, keeping a
    # domain is all there is to do.
    lower_exists = lowest_placed is not None and lowest_placed < info.priority
    queueing = engine.snapshot.policy.queueing
    more_served = None if band is None else las.preemptible_for(band, info.priority, now, queueing)

    def eligible(victim: JobInfo) -> bool:
        return victim.priority < info.priority or (more_served is not None and more_served(victim))

    may_preempt = engine.snapshot.policy.preemption.enabled and (lower_exists or more_served is not None)
    if may_preempt:
        plan = plan_preemption(engine, request, info.priority, now, taken, eligible)
        if plan is not None:
            engine.mask(plan.nodes)
            where = f"{plan.level} {plan.domain}"
            if not plan.victims:
                return Waiting(
                    cond.REASON_WAITING_FOR_PREEMPTION, f"waiting for preempted or finished gangs to release {where}"
                )
            names = ", ".join(_fmt(v) for v in plan.victims)
            for victim in plan.victims:
                taken.add(victim)
                same = engine.snapshot.jobs[victim].priority == info.priority
                why = (
                    f"least attained service: band {band} before the victim's, restart cost "
                    f"{queueing.restart_cost_seconds}s assumed"
                    if same
                    else f"priority {info.priority}"
                )
                decisions.preemptions[victim] = Preemption(
                    victim, info.key, f"preempted by {_fmt(info.key)} ({why}) to free {where}"
                )
            what = "lower-priority or more-served" if band is not None else "lower-priority"
            return Waiting(
                cond.REASON_WAITING_FOR_PREEMPTION,
                f"preempting {len(plan.victims)} {what} job(s) in {where}: {names}",
            )
    return None


def _blocked(
    engine: PlacementEngine,
    request: GangRequest,
    info: JobInfo,
    result: Unplaceable,
    now: datetime,
    taken: set[JobKey],
    decisions: Decisions,
    lowest_placed: int | None,
    band: int | None = None,
) -> Waiting:
    """Preempt for a job that does not fit, or keep a domain for it, and say why it waits. `band`: the job's
    LAS band when the queue order is LAS (gangs of its priority in a higher band may be victims too)."""
    if result.reason == cond.REASON_WAITING_FOR_RESOURCES:
        preempting = _preempt_for(engine, request, info, now, taken, decisions, lowest_placed, band)
        if preempting is not None:
            return preempting
        defrag = _defragment(engine, request, info, now, taken, decisions)
        if defrag is not None:
            return Waiting(cond.REASON_WAITING_FOR_DEFRAGMENTATION, defrag)
    reservation = reserve_for(engine, request)
    if reservation is None:
        if result.reason != cond.REASON_WAITING_FOR_RESOURCES:
            return Waiting(result.reason, result.message)
        never = never_fits(engine, request)
        if never is not None:
            return Waiting(cond.REASON_NEVER_FITS, never)
        # It could fit, but only where jobs ahead of it keep their domains this pass.
        return Waiting(result.reason, f"{result.message}; where it could fit is kept for jobs ahead of it")
    engine.mask(reservation.nodes)
    return Waiting(result.reason, f"{result.message}; {reservation.level} {reservation.domain} is kept for it")


def _defragment(
    engine: PlacementEngine,
    request: GangRequest,
    info: JobInfo,
    now: datetime,
    taken: set[JobKey],
    decisions: Decisions,
) -> str | None:
    """Move smaller gangs out of one domain for a blocked gang (Act), keeping it for the gang; the waiting
    message, or None when defragmentation has nothing to do (Off, no plan) or only reports it (Warn)."""
    plan: DefragPlan | None = plan_defragmentation(engine, request, info, now, taken)
    if plan is None:
        return None
    if not plan.victims:
        engine.mask(plan.nodes)
        return f"waiting for gangs leaving {plan.where()}, which then fits it"
    if engine.snapshot.policy.rescheduling.defragmentation.mode != ReschedulingMode.ACT:
        decisions.defrag_hints[info.key] = plan.summary()
        return None
    engine.mask(plan.nodes)
    for victim, landing in zip(plan.victims, plan.landing, strict=True):
        # Keep the moved gang's new room for it in this pass, so a later job cannot take it.
        engine.commit(landing, engine.snapshot.jobs[victim].per_replica)
        taken.add(victim)
        decisions.moves[victim] = DefragMove(
            victim,
            info.key,
            f"moved out of {plan.where()} to make room for {_fmt(info.key)} ({request.gpus} GPUs, blocked by "
            "fragmentation); not counted as a restart",
            plan.nodes,
        )
    return plan.summary()
