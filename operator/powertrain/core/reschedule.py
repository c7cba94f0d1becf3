"""Decisions from the efficiency verdict: report or move stragglers, report or suspend idle reservations.

Pure: `review(snapshot, key, previous, now)` computes the running job's `status.efficiency` (core/efficiency.py,
over the last `spec.efficiency.windowSeconds` of telemetry) and what `spec.rescheduling` says to do about it.
Rules (policy defaults in brackets):

- Straggler (mode `straggler` [Warn]): once the same worker has stayed below stragglerRatio [0.7] × its gang's
  median SM activity for stragglerWindowSeconds [600], the condition Straggler=True and one Event. The clock
  restarts whenever the worker is back above the ratio (+ 0.1 for a worker already named), so short dips
  never add up to a decision. With Act the gang is moved: stopped and re-queued without counting a restart
  (status.moves + 1) and kept off that node for avoidNodeSeconds [3600] (status.avoidNodes; a gang with no
  placement without it is placed anyway). At most maxMovesPerHour [2] moves in any hour; past that the
  straggler is only reported, and the condition says why.
- Idle reservation (mode `idle` [Warn], or suspendIdle: true = Act): once the gang's mean SM activity has
  stayed below idleUtilizationPercent [5 %] for idleWindowSeconds [1800], the condition Idle=True and one
  Event; with Act the job is suspended (spec.runPolicy.suspend: true, which releases its GPUs), and the
  condition's message says how to resume.
- Off: the condition is not evaluated (and cleared if it was set).
- Defragmentation (`defragmentation.mode` [Off]): for a gang that cannot start (nowhere at all, or a Required
  gang in no domain of its level) or a Preferred gang waiting for one domain of its level, once it has waited
  minWaitSeconds [120] since submission, `plan_defragmentation` looks for one domain of its level where moving
  a few running gangs makes it fit: gangs of lower or equal priority, each holding fewer GPUs than the blocked gang, not
  moved for defragmentation within cooldownSeconds [3600], each of which fits elsewhere right now (outside
  that domain). Fewest and least important gangs first (lowest priority, then fewest GPUs: preemption's
  search with that test of who may move). Within the disruption budget: at most maxGpusPerMove [64] GPUs
  for one blocked gang and maxGpusPerHour [256] across the cluster (counted from the moved jobs'
  status.lastMoveTime). Warn: the blocked gang's message names the plan; Act: the gangs are stopped with
  gracePeriodSeconds [60], re-queued without a restart (status.moves), and kept off the domain's nodes for
  cooldownSeconds (status.avoidNodes) so they land elsewhere; the domain is kept for the blocked gang. The
  message reports the domain's usable free GPUs before and after.

Network-aware placement needs no decision of its own: a moved or restarted gang is placed again like a new
one (narrowest domain that fits, and a Preferred gang waits for one domain of its level again), so a
CommunicationBound gang placed wider than its level comes back narrower whenever a domain has room.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from powertrain.api.common import ConditionStatus
from powertrain.api.policy import ReschedulingMode
from powertrain.api.trainingjob import AvoidedNode, JobEfficiency, TrainingJobStatus
from powertrain.core import conditions as cond
from powertrain.core.efficiency import assess, carry_forward
from powertrain.core.locality import wider_than_requested
from powertrain.core.placement import GangRequest, Placement, PlacementEngine, _capacity
from powertrain.core.preemption import plan_preemption
from powertrain.core.snapshot import ClusterSnapshot, JobInfo, JobKey

MOVE_BUDGET_SECONDS: Final = 3600.0
"""maxMovesPerHour counts the moves of the last hour; avoidNodes entries are kept at least this long."""


@dataclass(frozen=True)
class ConditionChange:
    type: str
    status: ConditionStatus
    reason: str
    message: str


@dataclass(frozen=True)
class Move:
    node: str
    message: str


@dataclass
class Review:
    efficiency: JobEfficiency
    conditions: list[ConditionChange] = field(default_factory=list)
    move: Move | None = None
    suspend: str | None = None
    """Why the job is suspended (the Idle condition's message), when it is."""


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def recent_moves(status: TrainingJobStatus, now: datetime) -> int:
    horizon = now - timedelta(seconds=MOVE_BUDGET_SECONDS)
    return sum(1 for a in status.avoid_nodes if a.since > horizon)


def prune_avoided(status: TrainingJobStatus, now: datetime) -> None:
    """Drop entries that neither keep a node off nor count against the hourly move budget any more."""
    horizon = now - timedelta(seconds=MOVE_BUDGET_SECONDS)
    kept = [a for a in status.avoid_nodes if a.until > now or a.since > horizon]
    if len(kept) != len(status.avoid_nodes):
        status.avoid_nodes = kept


def avoided_nodes(status: TrainingJobStatus | None, now: datetime) -> frozenset[str]:
    if status is None:
        return frozenset()
    return frozenset(a.node for a in status.avoid_nodes if a.until > now)


def review(snapshot: ClusterSnapshot, key: JobKey, status: TrainingJobStatus, now: datetime) -> Review:
    """The running job's efficiency for this pass and the decisions it leads to (see the module docstring).

    `status` is the job's next status (placement, GPUs, avoidNodes, moves); the previous verdict and its
    'since' times come from the job as last written. A condition change with status False means: clear it
    if it is set."""
    info = snapshot.jobs[key]
    policy = snapshot.policy
    resched = policy.rescheduling
    previous = info.job.status.efficiency if info.job.status is not None else None
    seconds = float(policy.efficiency.window_seconds)
    window = snapshot.job_telemetry(key, now, seconds)
    placement = status.placement
    wide = placement is not None and wider_than_requested(str(info.job.spec.topology.level), placement.level or "")
    assessment = assess(
        window, policy, wider_than_level=wide, previous_straggler=previous.straggler if previous else None
    )
    eff = carry_forward(previous, assessment, now, seconds)
    out = Review(eff)

    if resched.straggler == ReschedulingMode.OFF:
        out.conditions.append(ConditionChange(cond.STRAGGLER, "False", cond.REASON_CHECK_OFF, "straggler: Off"))
    elif eff.straggler is not None and eff.straggler_since is not None and eff.straggler_node is not None:
        held = (now - eff.straggler_since).total_seconds()
        if held >= resched.straggler_window_seconds:
            text = (
                f"worker {eff.straggler} on node {eff.straggler_node} has run below {resched.straggler_ratio:g}× "
                f"its gang's median SM activity since {_stamp(eff.straggler_since)} (stragglerWindowSeconds "
                f"{resched.straggler_window_seconds}): {assessment.straggler.ratio if assessment.straggler else 0:.2f}×"
            )
            if resched.straggler == ReschedulingMode.ACT:
                moves = recent_moves(status, now)
                if moves < resched.max_moves_per_hour:
                    out.move = Move(eff.straggler_node, f"moving the gang off node {eff.straggler_node}: {text}")
                    return out
                text += f"; not moved: {moves} move(s) in the last hour (maxMovesPerHour {resched.max_moves_per_hour})"
            out.conditions.append(ConditionChange(cond.STRAGGLER, "True", cond.REASON_STRAGGLER, text))
        else:
            out.conditions.append(
                ConditionChange(cond.STRAGGLER, "False", cond.REASON_NO_STRAGGLER, "no worker straggles long enough")
            )
    else:
        out.conditions.append(
            ConditionChange(cond.STRAGGLER, "False", cond.REASON_NO_STRAGGLER, "every worker keeps up with the gang")
        )

    idle_mode = resched.idle_mode
    if idle_mode == ReschedulingMode.OFF:
        out.conditions.append(ConditionChange(cond.IDLE, "False", cond.REASON_CHECK_OFF, "idle: Off"))
    elif eff.idle_since is not None and (now - eff.idle_since).total_seconds() >= resched.idle_window_seconds:
        held_gpus = status.gpus or 0
        text = (
            f"the gang's {held_gpus} GPU(s) have stayed below {resched.idle_utilization_percent:g}% SM activity "
            f"since {_stamp(eff.idle_since)} (idleWindowSeconds {resched.idle_window_seconds})"
        )
        if idle_mode == ReschedulingMode.ACT:
            text += (
                f"; suspended to release them. Resume: kubectl patch trainingjob {key[1]} -n {key[0]} --type merge "
                """-p '{"spec":{"runPolicy":{"suspend":false}}}'"""
            )
            out.suspend = text
            out.conditions.append(ConditionChange(cond.IDLE, "True", cond.REASON_IDLE_SUSPENDED, text))
        else:
            out.conditions.append(ConditionChange(cond.IDLE, "True", cond.REASON_IDLE, text))
    else:
        out.conditions.append(ConditionChange(cond.IDLE, "False", cond.REASON_BUSY, "the gang's GPUs are in use"))
    return out


MAX_AVOIDED: Final = 64


def record_defrag_move(status: TrainingJobStatus, nodes: Collection[str], now: datetime, cooldown: int) -> None:
    """Count a defragmentation move; the gang keeps off the freed domain's nodes during its cool-down."""
    status.moves = (status.moves or 0) + 1
    status.last_move_time = now
    until = now + timedelta(seconds=cooldown)
    fresh = [AvoidedNode(node=n, reason="defragmentation", since=now, until=until) for n in sorted(nodes)]
    kept = [a for a in status.avoid_nodes if a.node not in set(nodes)]
    status.avoid_nodes = (kept + fresh)[-MAX_AVOIDED:]


def record_move(status: TrainingJobStatus, move: Move, now: datetime, avoid_seconds: int) -> None:
    """Count the move and keep the gang off the straggler's node for a while."""
    status.moves = (status.moves or 0) + 1
    entry = AvoidedNode(
        node=move.node,
        reason="straggler",
        since=now,
        until=now + timedelta(seconds=avoid_seconds),
    )
    status.avoid_nodes = [a for a in status.avoid_nodes if a.node != move.node] + [entry]


@dataclass(frozen=True)
class DefragPlan:
    victims: tuple[JobKey, ...]
    """Empty: gangs already leaving free enough; the blocked gang only waits for them."""
    level: str
    domain: str
    nodes: frozenset[str]
    gpus_moved: int
    free_before: int
    free_after: int
    landing: tuple[Placement, ...] = ()
    """Where each moved gang fits now (outside the domain), to keep for it in this pass."""

    def where(self) -> str:
        return f"{self.level} {self.domain}"

    def summary(self) -> str:
        names = ", ".join(f"{k[0]}/{k[1]}" if k[0] else k[1] for k in self.victims)
        return (
            f"moving {len(self.victims)} smaller gang(s) ({self.gpus_moved} GPUs: {names}) out of {self.where()} "
            f"makes room: its free GPUs usable by this gang go from {self.free_before} to {self.free_after}"
        )


def _moved_recently(info: JobInfo, now: datetime, seconds: float) -> bool:
    status = info.job.status
    last = status.last_move_time if status is not None else None
    return last is not None and (now - last).total_seconds() < seconds


def gpus_moved_last_hour(snapshot: ClusterSnapshot, now: datetime) -> int:
    total = 0
    for info in snapshot.jobs.values():
        if _moved_recently(info, now, MOVE_BUDGET_SECONDS):
            total += info.job.spec.replicas * info.gpus_per_replica
    return total


def _usable_gpus(engine: PlacementEngine, request: GangRequest, nodes: Collection[str]) -> int:
    return sum(_capacity(engine.node_free(n), request.per_replica) for n in nodes) * request.gpus_per_replica


def plan_defragmentation(
    engine: PlacementEngine, request: GangRequest, info: JobInfo, now: datetime, taken: Collection[JobKey]
) -> DefragPlan | None:
    """A domain of the blocked gang's level to free by moving a few smaller gangs (module docstring), or None."""
    snapshot = engine.snapshot
    policy = snapshot.policy.rescheduling.defragmentation
    if policy.mode == ReschedulingMode.OFF or (now - info.submit_time).total_seconds() < policy.min_wait_seconds:
        return None

    def movable(victim: JobInfo) -> bool:
        return (
            victim.key != info.key
            and victim.priority <= info.priority
            and victim.held_gpus < request.gpus
            and not _moved_recently(victim, now, policy.cooldown_seconds)
        )

    plan = plan_preemption(engine, request, info.priority, now, taken, eligible=movable)
    if plan is None:
        return None
    before = _usable_gpus(engine, request, plan.nodes)
    after = before
    gpus = sum(snapshot.jobs[v].held_gpus for v in plan.victims)
    if plan.victims:
        budget = policy.max_gpus_per_hour - gpus_moved_last_hour(snapshot, now)
        if gpus > policy.max_gpus_per_move or gpus > budget:
            return None
        # Each moved gang must have somewhere else to go right now, or moving it only trades one blocked gang
        # for another.
        trial = PlacementEngine(snapshot)
        trial.mask(engine.masked | plan.nodes)
        landing = []
        for key in plan.victims:
            victim = snapshot.jobs[key]
            placed = trial.find(GangRequest.from_job(victim))
            if not isinstance(placed, Placement):
                return None
            trial.commit(placed, victim.per_replica)
            landing.append(placed)
        after = _usable_after(engine, request, plan.nodes, set(plan.victims))
        return DefragPlan(plan.victims, plan.level, plan.domain, plan.nodes, gpus, before, after, tuple(landing))
    return DefragPlan(plan.victims, plan.level, plan.domain, plan.nodes, gpus, before, after)


def _usable_after(engine: PlacementEngine, request: GangRequest, nodes: Collection[str], moved: set[JobKey]) -> int:
    total = 0
    for node in nodes:
        free = dict(engine.node_free(node))
        for job, amounts in engine.snapshot.node_job_usage.get(node, {}).items():
            if job in moved:
                for resource, amount in amounts.items():
                    free[resource] = free.get(resource, 0) + amount
        total += _capacity(free, request.per_replica)
    return total * request.gpus_per_replica


__all__ = [
    "ConditionChange",
    "DefragPlan",
    "Move",
    "Review",
    "avoided_nodes",
    "gpus_moved_last_hour",
    "plan_defragmentation",
    "prune_avoided",
    "record_defrag_move",
    "record_move",
    "review",
]
