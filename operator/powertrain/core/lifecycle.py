"""What to do with one TrainingJob now: its next status, and whether to create, stop or delete anything.

`decide(snapshot, key, now, decisions)` is pure: it reads the job, its pods, the nodes and the scheduling
pass's decisions, and returns a `JobPlan`. Rules:

- Phases: Pending (not yet seen by a pass) → Queued → Running (gang placed) → Succeeded | Failed;
  Suspended while spec.runPolicy.suspend is true.
- Succeeded when rank 0 exits successfully (Kubeflow PyTorchJob semantics); the other workers are stopped.
- A failed pod, a worker pod that disappeared or is being deleted by someone else, or a node that is gone
  or not Ready for NODE_LOST_SECONDS, restarts the *whole* gang: all pods deleted, the job re-queued after
  an exponential backoff (backoff.py), up to runPolicy.backoffLimit restarts; one more failure → Failed
  (BackoffLimitExceeded) with the last failure as the message.
- A GPU reported unhealthy under a worker (policy.rescheduling.unhealthyGpu) moves the gang too, but does
  not count against backoffLimit: the hardware failed, not the job.
- A running gang gets status.efficiency (core/efficiency.py) and the straggler/idle decisions of
  core/reschedule.py: conditions Straggler and Idle, a move off a straggler's node (status.moves, not a
  restart) or a suspension of an idle job (plan.suspend_job: the shell sets spec.runPolicy.suspend).
- Preemption, suspension and a replica-count change (`kubectl scale`) of a fixed-size job stop the gang without
  counting a restart; the job keeps its submission time, so it returns to its old place in the queue.
- An elastic job is resized in place instead (core.autoscale decides): a grow creates and binds only the new
  ranks (pods of the gang's current generation), a shrink first shortens status.placement.nodes and then deletes
  the ranks beyond it with the autoscaling grace period; survivors are never touched. Pods of ranks beyond the
  placement (a shrink's, or a grow the operator stopped in the middle of) are deleted as leftovers.
- activeDeadlineSeconds counts from the first start; past it the job fails (DeadlineExceeded).
- ttlSecondsAfterFinished deletes a finished job after that many seconds.
- Pods left over from an earlier gang (e.g. the operator stopped halfway through creating one) are deleted
  before a new gang is placed; nothing is ever created twice: names are deterministic. A complete, bound gang
  of the current generation (the job's gang-generation annotation) whose status was never written is adopted
  (an elastic one at whatever size it has within [minReplicas, maxReplicas]: it may have started smaller).

Contract with the shell: write `status` (phase Running with the placement) only after every pod of a new
gang has been created and bound; a placed job with missing pods is a failed gang.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from powertrain.api import constants as c
from powertrain.api.common import Condition, ConditionStatus
from powertrain.api.trainingjob import Phase, TrainingJob, TrainingJobStatus, Verdict
from powertrain.api.trainingjob import Placement as PlacementStatus
from powertrain.api.trainingjob import Resize as ResizeStatus
from powertrain.core import conditions as cond
from powertrain.core.autoscale import Resize, fmt, growth_limit, recent_resize_times
from powertrain.core.backoff import backoff_seconds, restart_not_before
from powertrain.core.las import attained_gpu_seconds, running_gpus
from powertrain.core.locality import wider_than_requested
from powertrain.core.placement import Placement
from powertrain.core.reschedule import prune_avoided, record_defrag_move, record_move, review
from powertrain.core.scheduler import Decisions, describe_error
from powertrain.core.snapshot import ClusterSnapshot, JobKey, PodInfo, parse_time
from powertrain.core.topology import CLUSTER, domain_name

StopFn = Callable[..., None]
FinishFn = Callable[[Phase, str, str, str, bool], "JobPlan"]

_EMPTY_STATUS: Final = TrainingJobStatus()

NODE_LOST_SECONDS: Final = 40.0
"""How long a node may be NotReady before its workers count as lost (kube's node-monitor grace period)."""


@dataclass(frozen=True)
class Event:
    reason: str
    message: str
    warning: bool = False


@dataclass
class JobPlan:
    """Everything the shell must do for one job in this pass."""

    key: JobKey
    status: TrainingJobStatus
    create_gang: Placement | None = None
    generation: int | None = None
    """Gang generation of the pods to create (also to record in the job's gang-generation annotation)."""
    grow_from: int | None = None
    """An elastic grow: create only ranks from here on (the gang's generation is kept, survivors untouched)."""
    delete_pods: tuple[str, ...] = ()
    """Names of the job's pods to delete now (whole gang, or leftovers)."""
    delete_reason: str | None = None
    grace_period_seconds: int | None = None
    delete_job: bool = False
    requeue_after: float | None = None
    """Seconds until this job needs another look even if nothing changes (backoff, deadline, TTL)."""
    events: list[Event] = field(default_factory=list)
    suspend_job: bool = False
    """Set spec.runPolicy.suspend: true (an idle reservation under idle: Act); the next pass stops the gang."""


def _fmt(key: JobKey) -> str:
    return f"{key[0]}/{key[1]}" if key[0] else key[1]


def selector_for(name: str) -> str:
    return f"{c.JOB_NAME_LABEL}={name}"


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> None:
    """Set a condition, keeping its lastTransitionTime unless its status changes."""
    for i, existing in enumerate(conditions):
        if existing.type == type_:
            when = existing.last_transition_time if existing.status == status else now
            conditions[i] = Condition.model_construct(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=when,
                observed_generation=generation,
            )
            return
    conditions.append(
        Condition.model_construct(
            type=type_,
            status=status,
            reason=reason,
            message=message,
            last_transition_time=now,
            observed_generation=generation,
        )
    )


def _condition(status: TrainingJobStatus, type_: str) -> Condition | None:
    for existing in status.conditions:
        if existing.type == type_:
            return existing
    return None


def _clear(conditions: list[Condition], type_: str, reason: str, now: datetime, generation: int | None) -> None:
    for existing in conditions:
        if existing.type == type_ and existing.status == "True":
            set_condition(conditions, type_, "False", reason, "", now, generation)
            return


def _pod_failure(pod: PodInfo) -> str | None:
    if pod.phase != "Failed":
        return None
    status = pod.obj.get("status")
    detail = ""
    if isinstance(status, Mapping):
        for cs in status.get("containerStatuses") or []:
            terminated = ((cs or {}).get("state") or {}).get("terminated") if isinstance(cs, Mapping) else None
            if isinstance(terminated, Mapping) and terminated.get("exitCode", 0) != 0:
                detail = f" (container {cs.get('name')}: exit code {terminated.get('exitCode')}"
                detail += f", {terminated['reason']})" if terminated.get("reason") else ")"
                break
        if not detail and status.get("reason"):
            detail = f" ({status.get('reason')}: {status.get('message') or ''})".replace(": )", ")")
    return f"pod {pod.key[1]} failed{detail}"


def _node_lost(snapshot: ClusterSnapshot, node: str, now: datetime) -> str | None:
    info = snapshot.nodes.get(node)
    if info is None or not info.obj:
        return f"node {node} is gone"
    if info.ready:
        return None
    status = info.obj.get("status")
    since: datetime | None = None
    if isinstance(status, Mapping):
        for condition in status.get("conditions") or []:
            if isinstance(condition, Mapping) and condition.get("type") == "Ready":
                since = parse_time(condition.get("lastTransitionTime"))
    if since is None or (now - since).total_seconds() >= NODE_LOST_SECONDS:
        return f"node {node} is not Ready"
    return None


def gang_failure(snapshot: ClusterSnapshot, key: JobKey, nodes: Sequence[str], now: datetime) -> tuple[str, str] | None:
    """(reason, message) when the running gang is broken, else None."""
    pods = {p.rank: p for p in snapshot.live_pods(key) if p.rank is not None}
    for rank, node in enumerate(nodes):
        pod = pods.get(rank)
        if pod is None:
            return cond.REASON_POD_MISSING, f"worker pod of rank {rank} disappeared"
        failure = _pod_failure(pod)
        if failure is not None:
            return cond.REASON_POD_FAILED, failure
        if pod.terminating and pod.phase != "Succeeded":
            return cond.REASON_POD_MISSING, f"pod {pod.key[1]} is being deleted"
        lost = _node_lost(snapshot, pod.node or node, now)
        if lost is not None:
            return cond.REASON_NODE_LOST, f"{lost} (worker {pod.key[1]})"
    return None


def unhealthy_gpu(snapshot: ClusterSnapshot, key: JobKey) -> str | None:
    if not snapshot.policy.rescheduling.unhealthy_gpu:
        return None
    for pod in snapshot.live_pods(key):
        if pod.node is None:
            continue
        if snapshot.unhealthy_gpus_by_pod(pod.node).get(pod.key):
            return f"a GPU of worker {pod.key[1]} on node {pod.node} is reported unhealthy"
    return None


def _status_of(job: TrainingJob) -> TrainingJobStatus:
    # Shallow is enough: nested values (conditions, placement) are replaced, never changed in place; only the
    # conditions list itself is edited, so it gets its own copy.
    status = (job.status if job.status is not None else _EMPTY_STATUS).model_copy()
    status.conditions = list(status.conditions)
    return status


def decide(snapshot: ClusterSnapshot, key: JobKey, now: datetime, decisions: Decisions) -> JobPlan | None:
    """The plan for one job; None for a job the snapshot does not know (deleted)."""
    failed = decisions.failed.get(key)
    if failed is not None:
        return set_aside(snapshot, key, now, failed)
    if key in snapshot.invalid_jobs:
        return _invalid(snapshot, key, now)
    info = snapshot.jobs.get(key)
    if info is None:
        return None
    job = info.job
    gen = _metadata_generation(job.metadata)
    status = _status_of(job)
    plan = JobPlan(key=key, status=status)
    pods = snapshot.live_pods(key)
    name = key[1]
    status.selector = selector_for(name)
    status.observed_generation = gen
    status.replicas = sum(1 for p in pods if not p.terminating)
    status.ready_replicas = sum(1 for p in pods if p.phase == "Running" and not p.terminating)
    _clear(status.conditions, cond.INVALID, cond.REASON_SUBMITTED, now, gen)
    status.efficiency = None  # only a running gang has one (_running)
    prune_avoided(status, now)
    if not info.placed:
        _clear(status.conditions, cond.STRAGGLER, cond.REASON_NO_STRAGGLER, now, gen)
        if not info.suspended:
            _clear(status.conditions, cond.IDLE, cond.REASON_BUSY, now, gen)
    if status.submit_time is None:
        status.submit_time = info.submit_time if info.submit_time.year < 9999 else now
    phase = status.phase

    def stop(reason: str, grace: int | None = None, keep_finished: bool = False) -> None:
        doomed = [
            p.key[1] for p in pods if not p.terminating and not (keep_finished and p.phase in ("Succeeded", "Failed"))
        ]
        if doomed:
            plan.delete_pods = tuple(doomed)
            plan.delete_reason = reason
            plan.grace_period_seconds = grace

    def finish(new_phase: Phase, type_: str, reason: str, message: str, warning: bool) -> JobPlan:
        status.phase = new_phase
        status.completion_time = status.completion_time or now
        status.message = message
        status.gpus = 0
        set_condition(status.conditions, type_, "True", reason, message, now, gen)
        _clear(status.conditions, cond.RUNNING, reason, now, gen)
        _clear(status.conditions, cond.RESTARTING, reason, now, gen)
        stop(reason, keep_finished=True)
        plan.events.append(Event(reason, message, warning))
        _ttl(plan, job, now)
        return plan

    # Finished jobs only clean up and expire.
    if phase in (Phase.SUCCEEDED.value, Phase.FAILED.value):
        stop("finished", keep_finished=True)
        _ttl(plan, job, now)
        return plan

    # Deadline.
    deadline = job.spec.run_policy.active_deadline_seconds
    if deadline is not None and status.start_time is not None:
        left = (status.start_time + timedelta(seconds=deadline) - now).total_seconds()
        if left <= 0:
            return finish(
                Phase.FAILED,
                cond.FAILED,
                cond.REASON_DEADLINE_EXCEEDED,
                f"ran longer than activeDeadlineSeconds ({deadline}s)",
                True,
            )
        plan.requeue_after = left

    # Suspension.
    if job.spec.run_policy.suspend:
        if phase != Phase.SUSPENDED.value:
            plan.events.append(Event(cond.REASON_SUSPENDED, "Suspended: gang stopped, GPUs released"))
            if running_gpus(info):
                status.attained_gpu_seconds = round(attained_gpu_seconds(info, now), 1)
        stop(cond.REASON_SUSPENDED)
        status.phase = Phase.SUSPENDED
        status.placement = None
        status.gpus = 0
        idle = _condition(status, cond.IDLE)
        by_operator = idle is not None and idle.status == "True" and idle.reason == cond.REASON_IDLE_SUSPENDED
        status.message = (
            f"suspended: {idle.message}" if by_operator and idle else "suspended (spec.runPolicy.suspend is true)"
        )
        set_condition(status.conditions, cond.SUSPENDED, "True", cond.REASON_SUSPENDED, status.message, now, gen)
        _clear(status.conditions, cond.RUNNING, cond.REASON_SUSPENDED, now, gen)
        _clear(status.conditions, cond.SCHEDULED, cond.REASON_SUSPENDED, now, gen)
        return plan
    if phase == Phase.SUSPENDED.value:
        _clear(status.conditions, cond.SUSPENDED, cond.REASON_RESUMED, now, gen)
        _clear(status.conditions, cond.IDLE, cond.REASON_RESUMED, now, gen)
        plan.events.append(Event(cond.REASON_RESUMED, "Resumed: back in the queue"))
        status.phase = Phase.QUEUED

    if info.placed:
        return _running(snapshot, info.key, plan, status, pods, now, decisions, gen, stop, finish)
    return _waiting(snapshot, key, plan, status, pods, now, decisions, gen, stop)


def _running(
    snapshot: ClusterSnapshot,
    key: JobKey,
    plan: JobPlan,
    status: TrainingJobStatus,
    pods: list[PodInfo],
    now: datetime,
    decisions: Decisions,
    gen: int | None,
    stop: StopFn,
    finish: FinishFn,
) -> JobPlan:
    info = snapshot.jobs[key]
    job = info.job
    nodes = info.placement_nodes

    def requeue(reason: str, message: str, grace: int | None = None, type_: str | None = None) -> JobPlan:
        stop(reason, grace)
        status.attained_gpu_seconds = round(attained_gpu_seconds(info, now), 1)  # before Scheduled turns False
        status.phase = Phase.QUEUED
        status.placement = None
        status.gpus = 0
        status.message = message
        if type_ is not None:
            set_condition(status.conditions, type_, "True", reason, message, now, gen)
        _clear(status.conditions, cond.RUNNING, reason, now, gen)
        set_condition(status.conditions, cond.SCHEDULED, "False", reason, message, now, gen)
        plan.events.append(Event(reason, message, warning=reason != cond.REASON_RESIZED))
        return plan

    preempted = decisions.preemptions.get(key)
    if preempted is not None:
        grace = snapshot.policy.preemption.grace_period_seconds
        status.preemptions = (status.preemptions or 0) + 1
        return requeue(cond.REASON_PREEMPTED, preempted.message, grace, cond.PREEMPTED)

    move = decisions.moves.get(key)
    if move is not None:
        defrag = snapshot.policy.rescheduling.defragmentation
        record_defrag_move(status, move.nodes, now, defrag.cooldown_seconds)
        return requeue(cond.REASON_DEFRAGMENTED, move.message, defrag.grace_period_seconds)

    rank0 = next((p for p in pods if p.rank == 0), None)
    if rank0 is not None and rank0.phase == "Succeeded":
        return finish(Phase.SUCCEEDED, cond.SUCCEEDED, cond.REASON_COMPLETED, "rank 0 completed successfully", False)

    if job.spec.elastic is None and job.spec.replicas != len(nodes):
        message = f"re-forming the gang at {job.spec.replicas} replicas (was {len(nodes)})"
        return requeue(cond.REASON_RESIZED, message)

    failure = gang_failure(snapshot, key, nodes, now)
    if failure is not None:
        reason, message = failure
        restarts = status.restarts or 0
        limit = job.spec.run_policy.backoff_limit
        if restarts >= limit:
            return finish(
                Phase.FAILED,
                cond.FAILED,
                cond.REASON_BACKOFF_LIMIT_EXCEEDED,
                f"gang failed after {restarts} restart(s) (backoffLimit {limit}): {message}",
                True,
            )
        status.restarts = restarts + 1
        delay = backoff_seconds(status.restarts)
        text = f"restart {status.restarts} of {limit} in {delay:.0f}s: {message}"
        plan.requeue_after = delay
        result: JobPlan = requeue(reason, text, type_=cond.RESTARTING)
        # The backoff is measured from this condition's transition time, so it must be fresh for this restart.
        set_condition(status.conditions, cond.RESTARTING, "False", reason, text, now, gen)
        set_condition(status.conditions, cond.RESTARTING, "True", reason, text, now, gen)
        return result

    sick = unhealthy_gpu(snapshot, key)
    if sick is not None:
        return requeue(cond.REASON_GPU_UNHEALTHY, f"moving the gang: {sick}", type_=cond.RESTARTING)

    if job.spec.elastic is not None:
        nodes = _elastic(snapshot, key, plan, status, pods, now, decisions)
    status.gpus = len(nodes) * job.spec.gpus_per_replica
    moved = _efficiency(snapshot, key, plan, status, now, gen)
    if moved is not None:
        return requeue(cond.REASON_STRAGGLER_MOVED, moved)

    running = sum(
        1 for p in pods if p.phase == "Running" and not p.terminating and (p.rank is None or p.rank < len(nodes))
    )
    status.phase = Phase.RUNNING
    if running >= len(nodes):
        status.message = f"{running}/{len(nodes)} workers running"
        set_condition(status.conditions, cond.RUNNING, "True", cond.REASON_ALL_RUNNING, status.message, now, gen)
    else:
        status.message = f"{running}/{len(nodes)} workers running, starting"
        set_condition(status.conditions, cond.RUNNING, "False", cond.REASON_STARTING, status.message, now, gen)
    return plan


def _elastic(
    snapshot: ClusterSnapshot,
    key: JobKey,
    plan: JobPlan,
    status: TrainingJobStatus,
    pods: list[PodInfo],
    now: datetime,
    decisions: Decisions,
) -> tuple[str, ...]:
    """Resize a running elastic gang in place as the pass decided; returns the gang's nodes by rank from now on."""
    info = snapshot.jobs[key]
    spec = info.job.spec
    elastic = spec.elastic
    assert elastic is not None
    nodes = info.placement_nodes
    leftovers = [p.key[1] for p in pods if p.rank is not None and p.rank >= len(nodes) and not p.terminating]
    if leftovers:
        plan.delete_pods = tuple(leftovers)
        plan.delete_reason = "elastic gang shrank"
        plan.grace_period_seconds = snapshot.policy.autoscaling.grace_period_seconds
    if status.requested_replicas is None:
        status.requested_replicas = spec.replicas
    if status.desired_replicas is None:
        status.desired_replicas = len(nodes)
    if status.requested_replicas != spec.replicas:
        status.requested_replicas = spec.replicas
        status.desired_replicas = max(elastic.min_replicas, min(elastic.max_replicas, spec.replicas))
        if status.desired_replicas < len(nodes):
            to = status.desired_replicas
            why = f"shrank {len(nodes)}→{to}: spec.replicas is {spec.replicas}"
            resize: Resize | None = Resize(key, len(nodes), to, nodes[:to], why, None, True)
        else:
            resize = decisions.resizes.get(key)
    else:
        resize = decisions.resizes.get(key)
    _growth_limit(snapshot, key, plan, status, now)
    if resize is None:
        status.growable_since = (status.growable_since or now) if key in decisions.growable else None
        return nodes
    status.placement = _span(snapshot, resize.nodes)
    status.desired_replicas = resize.to_replicas
    status.growable_since = None
    status.resizes = (status.resizes or 0) + 1
    status.last_resize = ResizeStatus.model_construct(
        time=now, from_replicas=resize.from_replicas, to_replicas=resize.to_replicas, reason=resize.reason
    )
    if not resize.requested:
        status.resize_times = [*recent_resize_times(status.resize_times, now), now]
    if resize.for_job is not None:
        status.shrunk_for = fmt(resize.for_job)
    if resize.grow:
        plan.create_gang = Placement(
            status.placement.level or CLUSTER, status.placement.domain or CLUSTER, "", resize.nodes, ""
        )
        plan.grow_from = resize.from_replicas
        plan.generation = info.generation
    plan.events.append(Event(cond.REASON_GREW if resize.grow else cond.REASON_SHRANK, resize.reason))
    return resize.nodes


def _growth_limit(
    snapshot: ClusterSnapshot, key: JobKey, plan: JobPlan, status: TrainingJobStatus, now: datetime
) -> None:
    """Say (once, with a warning Event) when maxReplicas can never be reached under the job's topology rule, and
    keep desiredReplicas within what can."""
    info = snapshot.jobs[key]
    elastic = info.job.spec.elastic
    assert elastic is not None
    old = _condition(status, cond.GROWTH_LIMITED)
    gen = status.observed_generation
    limit = growth_limit(snapshot, info) if len(info.placement_nodes) < elastic.max_replicas else None
    if limit is None:
        if old is not None and old.status == "True":
            set_condition(status.conditions, cond.GROWTH_LIMITED, "False", cond.REASON_MAX_REACHABLE, "", now, gen)
        return
    most, why = limit
    if status.desired_replicas is not None and status.desired_replicas > most:
        status.desired_replicas = most
    set_condition(status.conditions, cond.GROWTH_LIMITED, "True", cond.REASON_MAX_NEVER_FITS, why, now, gen)
    if old is None or old.status != "True" or old.message != why:
        plan.events.append(Event(cond.REASON_MAX_NEVER_FITS, why, warning=True))


def _span(snapshot: ClusterSnapshot, nodes: Sequence[str]) -> PlacementStatus:
    """The narrowest domain holding all these nodes, as a placement status."""
    topology = snapshot.topology
    for level in range(len(topology.levels) + 1):
        keys = {topology.domain_of(n, level) for n in nodes}
        if len(keys) == 1 and None not in keys:
            (domain_key,) = keys
            assert domain_key is not None
            return PlacementStatus.model_construct(
                level=topology.level_name(level), domain=domain_name(domain_key), nodes=list(nodes)
            )
    return PlacementStatus.model_construct(level=CLUSTER, domain=CLUSTER, nodes=list(nodes))


def _efficiency(
    snapshot: ClusterSnapshot, key: JobKey, plan: JobPlan, status: TrainingJobStatus, now: datetime, gen: int | None
) -> str | None:
    """Set the running gang's efficiency and straggler/idle conditions; the message of a move, if it moves."""
    result = review(snapshot, key, status, now)
    if result.move is not None:
        record_move(status, result.move, now, snapshot.policy.rescheduling.avoid_node_seconds)
        _clear(status.conditions, cond.STRAGGLER, cond.REASON_STRAGGLER_MOVED, now, gen)
        return result.move.message
    before = snapshot.jobs[key].job.status
    old = before.efficiency if before is not None else None
    eff = result.efficiency
    status.efficiency = eff
    if eff.verdict != Verdict.UNKNOWN and (old is None or old.verdict != eff.verdict):
        was = f"{old.verdict} → " if old is not None else ""
        warn = eff.verdict != Verdict.HEALTHY
        plan.events.append(Event(cond.REASON_EFFICIENCY, f"efficiency {was}{eff.verdict}: {eff.message}", warn))
    for change in result.conditions:
        if change.status != "True":
            _clear(status.conditions, change.type, change.reason, now, gen)
            continue
        existing = _condition(status, change.type)
        set_condition(status.conditions, change.type, "True", change.reason, change.message, now, gen)
        if existing is None or existing.status != "True" or existing.reason != change.reason:
            plan.events.append(Event(change.reason, change.message, warning=True))
    if result.suspend is not None:
        plan.suspend_job = True
    return None


def _waiting(
    snapshot: ClusterSnapshot,
    key: JobKey,
    plan: JobPlan,
    status: TrainingJobStatus,
    pods: list[PodInfo],
    now: datetime,
    decisions: Decisions,
    gen: int | None,
    stop: StopFn,
) -> JobPlan:
    info = snapshot.jobs[key]
    job = info.job
    status.phase = Phase.QUEUED
    status.placement = None
    status.gpus = 0
    if pods:
        adopted = _adopt(snapshot, key, pods)
        if adopted is not None:
            # A whole, bound gang of the current generation whose status was never written (the operator
            # stopped in between): take it over instead of killing it.
            status.phase = Phase.RUNNING
            status.placement = adopted
            status.start_time = status.start_time or now
            status.gpus = len(adopted.nodes) * job.spec.gpus_per_replica
            status.message = f"adopted the running gang on {len(set(adopted.nodes))} node(s)"
            if job.spec.elastic is not None:
                status.requested_replicas = job.spec.replicas
                status.desired_replicas = len(adopted.nodes)
            set_condition(status.conditions, cond.SCHEDULED, "True", cond.REASON_PLACED, status.message, now, gen)
            _clear(status.conditions, cond.UNSCHEDULABLE, cond.REASON_PLACED, now, gen)
            _clear(status.conditions, cond.QUEUED, cond.REASON_PLACED, now, gen)
            return plan
        stop("leftover pods of an earlier gang")
        status.message = f"waiting for {len(pods)} pod(s) of the previous gang to terminate"
        return plan
    not_before = restart_not_before(job)
    if not_before is not None and not_before > now:
        left = (not_before - now).total_seconds()
        plan.requeue_after = min(plan.requeue_after or left, left)
        status.message = f"restarting in {left:.0f}s (backoff after restart {status.restarts or 0})"
        return plan
    failed_create = snapshot.create_backoff.get(key)
    if failed_create is not None and failed_create[0] > now:
        return _create_backoff(plan, status, failed_create, now, gen)
    placement = decisions.placements.get(key)
    if placement is not None:
        status.phase = Phase.RUNNING
        status.placement = PlacementStatus.model_construct(
            level=placement.level, domain=placement.domain, nodes=list(placement.nodes)
        )
        status.start_time = status.start_time or now
        status.locality_wait_start = None
        status.gpus = len(placement.nodes) * job.spec.gpus_per_replica
        message = placement.summary(job.spec.gpus_per_replica)
        if job.spec.elastic is not None:
            status.requested_replicas = job.spec.replicas
            status.desired_replicas = len(placement.nodes)
            status.growable_since = None
            if len(placement.nodes) < job.spec.replicas:
                message += f" (elastic: started with {len(placement.nodes)} of {job.spec.replicas} workers, will grow)"
        status.message = message
        plan.create_gang = placement
        plan.generation = info.generation + 1
        set_condition(status.conditions, cond.SCHEDULED, "True", cond.REASON_PLACED, message, now, gen)
        set_condition(status.conditions, cond.RUNNING, "False", cond.REASON_STARTING, "creating worker pods", now, gen)
        for type_ in (cond.UNSCHEDULABLE, cond.RESTARTING, cond.PREEMPTED, cond.QUEUED):
            _clear(status.conditions, type_, cond.REASON_PLACED, now, gen)
        plan.events.append(Event(cond.REASON_PLACED, message))
        _topology_degraded(
            plan, status, str(job.spec.topology.level), placement, now, gen, decisions.locality_notes.get(key)
        )
        return plan
    waiting = decisions.waiting.get(key)
    position = decisions.positions.get(key)
    queued_msg = f"queue {job.spec.queue!r}" + (f", position {position}" if position else "")
    set_condition(status.conditions, cond.QUEUED, "True", cond.REASON_SUBMITTED, queued_msg, now, gen)
    if waiting is None:
        status.message = f"queued ({queued_msg})"
        return plan
    if waiting.reason == cond.REASON_WAITING_FOR_LOCALITY and status.locality_wait_start is None:
        status.locality_wait_start = now  # the wait is bounded from here (see core.locality)
    old = _condition(status, cond.UNSCHEDULABLE)
    status.message = f"{waiting.message} ({queued_msg})"
    set_condition(status.conditions, cond.UNSCHEDULABLE, "True", waiting.reason, waiting.message, now, gen)
    if old is None or old.status != "True" or old.message != waiting.message:
        plan.events.append(Event(waiting.reason, waiting.message, warning=True))
    return plan


def _create_backoff(
    plan: JobPlan, status: TrainingJobStatus, failed: tuple[datetime, str], now: datetime, gen: int | None
) -> JobPlan:
    """The gang's pods could not be created: wait (exponential backoff), say why, warn once per failure."""
    not_before, error = failed
    left = (not_before - now).total_seconds()
    plan.requeue_after = min(plan.requeue_after or left, left)
    message = f"{error}; next try at {not_before.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    old = _condition(status, cond.UNSCHEDULABLE)
    status.message = message
    set_condition(status.conditions, cond.UNSCHEDULABLE, "True", cond.REASON_POD_CREATE_FAILED, message, now, gen)
    if old is None or old.message != message:
        plan.events.append(Event(cond.REASON_POD_CREATE_FAILED, message, warning=True))
    return plan


def _topology_degraded(
    plan: JobPlan,
    status: TrainingJobStatus,
    level: str,
    placement: Placement,
    now: datetime,
    gen: int | None,
    note: str | None = None,
) -> None:
    """Say whether the new gang runs wider than spec.topology.level (only a Preferred gang can), and warn if so."""
    if not wider_than_requested(level, placement.level):
        message = f"placed within one {level}"
        set_condition(status.conditions, cond.TOPOLOGY_DEGRADED, "False", cond.REASON_WITHIN_LEVEL, message, now, gen)
        return
    where = "the whole cluster" if placement.level == CLUSTER else f"{placement.level} {placement.domain}"
    message = (
        f"placed across {where}, wider than spec.topology.level {level}: no single {level} had room for the gang "
        "(it may train slower)"
    )
    if note:
        message = f"{message}; {note}"
    set_condition(status.conditions, cond.TOPOLOGY_DEGRADED, "True", cond.REASON_WIDER_THAN_LEVEL, message, now, gen)
    plan.events.append(Event(cond.REASON_WIDER_THAN_LEVEL, message, warning=True))


def _adopt(snapshot: ClusterSnapshot, key: JobKey, pods: list[PodInfo]) -> PlacementStatus | None:
    """The placement of a complete, bound, healthy gang of the job's current generation, else None."""
    info = snapshot.jobs[key]
    replicas = info.job.spec.replicas
    elastic = info.job.spec.elastic
    if elastic is not None:
        # An elastic gang may have started smaller (or been resized): ranks 0..n-1 within [min, max] are whole.
        replicas = len(pods)
        if not elastic.min_replicas <= replicas <= elastic.max_replicas:
            return None
    if info.generation <= 0 or len(pods) != replicas:
        return None
    nodes: list[str] = [""] * replicas
    for pod in pods:
        if (
            pod.rank is None
            or not 0 <= pod.rank < replicas
            or nodes[pod.rank]
            or pod.node is None
            or pod.generation != info.generation
            or pod.terminating
            or pod.phase in ("Succeeded", "Failed")
            or pod.node not in snapshot.nodes
        ):
            return None
        nodes[pod.rank] = pod.node
    return _span(snapshot, nodes)


def _ttl(plan: JobPlan, job: TrainingJob, now: datetime) -> None:
    ttl = job.spec.run_policy.ttl_seconds_after_finished
    done = plan.status.completion_time
    if ttl is None or done is None:
        return
    left = (done + timedelta(seconds=ttl) - now).total_seconds()
    if left <= 0:
        plan.delete_job = True
    else:
        plan.requeue_after = left if plan.requeue_after is None else min(plan.requeue_after, left)


def _metadata_generation(meta: Mapping[str, Any]) -> int | None:
    value = meta.get("generation")
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None


def _invalid(snapshot: ClusterSnapshot, key: JobKey, now: datetime) -> JobPlan:
    return _held_invalid(snapshot, key, now, cond.REASON_INVALID_SPEC, snapshot.invalid_jobs[key])


def set_aside(snapshot: ClusterSnapshot, key: JobKey, now: datetime, error: str) -> JobPlan:
    """The plan for a job whose evaluation raised: nothing is created or torn down for it, its condition
    Invalid (reason EvaluationFailed) and a warning Event name the error, and every other job goes on."""
    message = f"set aside: the operator could not evaluate this job ({error}); other jobs are not affected"
    return _held_invalid(snapshot, key, now, cond.REASON_EVALUATION_FAILED, message)


def _held_invalid(snapshot: ClusterSnapshot, key: JobKey, now: datetime, reason: str, message: str) -> JobPlan:
    """Condition Invalid with `reason`, and a warning Event when the message is new. Nothing is created for
    the job, and nothing already running is torn down because of what the operator cannot read or evaluate:
    the condition says what to fix."""
    obj = snapshot.job_objects.get(key, {})
    raw_status = obj.get("status") if isinstance(obj, Mapping) else None
    try:
        status = TrainingJobStatus.model_validate(raw_status or {})
    except ValueError:
        status = TrainingJobStatus()
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    gen = _metadata_generation(meta) if isinstance(meta, Mapping) else None
    old = _condition(status, cond.INVALID)
    if status.phase is None:
        status.phase = Phase.PENDING
    status.message = message
    set_condition(status.conditions, cond.INVALID, "True", reason, message, now, gen)
    plan = JobPlan(key=key, status=status)
    if old is None or old.message != message:
        plan.events.append(Event(reason, message, warning=True))
    return plan


def decide_all(snapshot: ClusterSnapshot, now: datetime, decisions: Decisions) -> list[JobPlan]:
    """Plans for every known job (valid or not), in a stable order. A job whose evaluation raises (in the
    pass or here) is set aside; it never stops the plans of the others."""
    keys = sorted(set(snapshot.jobs) | set(snapshot.invalid_jobs) | set(decisions.failed))
    plans: list[JobPlan | None] = []
    for key in keys:
        failed = decisions.failed.get(key)
        if failed is None:
            try:
                plans.append(decide(snapshot, key, now, decisions))
                continue
            except Exception as exc:  # see the docstring
                failed = describe_error(exc)
        plans.append(set_aside(snapshot, key, now, failed))
    return [p for p in plans if p is not None]


__all__ = ["Event", "JobPlan", "decide", "decide_all", "gang_failure", "selector_for", "set_aside", "set_condition"]
