"""Elastic autoscaling: when a running elastic gang grows, shrinks, and how a waiting one starts smaller.

Pure decisions over the scheduling pass's `PlacementEngine` (what is free after the pass's placements and
which nodes are kept for waiting gangs); the scheduler calls them, the lifecycle applies them. Rules:

- Sizes: a running elastic gang has `len(status.placement.nodes)` workers, ranks 0..n-1. Growing adds ranks
  n.. (one atomic step: all the step's pods are bound, or none); shrinking removes the highest ranks. Rank 0
  (the rendezvous host) and every other survivor are never touched. Never below minReplicas, never above
  maxReplicas.
- Who sizes: with `spec.elastic.scaler: Operator` (default) and `policy.autoscaling.enabled`, the operator
  resizes on its own as below. A change of spec.replicas (kubectl scale, an HPA/KEDA through the scale
  subresource, an edit) is a scale request, applied in place at once whatever the scaler: shrinking at once,
  growing as soon as the extra ranks fit. With `scaler: External` the operator never resizes on its own, so
  an external autoscaler and the operator never fight over the size.
- Starting smaller: a waiting Operator-scaled elastic gang that does not fit at spec.replicas starts with the
  most workers that fit now, at least minReplicas (it grows later like any other).
- Shrink before preempt: a gang that cannot be placed first asks running elastic gangs to shrink, inside one
  domain where that alone makes it fit: gangs of lower priority down to minReplicas; gangs of equal priority
  give back what they hold beyond their requested size (spec.replicas: GPUs they borrowed while idle), or down
  to minReplicas when the waiting gang's queue holds less than theirs per unit of weight (below its fair
  share). Lowest priority first, then the fewest workers removed. Only when shrinking cannot make room is anyone
  preempted whole (an elastic gang included: whole-gang preemption is what remains below its minimum).
- Grow: GPUs that stay free after the pass's placements and are not kept for a waiting gang are idle. A gang
  that could grow into idle GPUs for `autoscaling.growAfterIdleSeconds` (status.growableSince) grows toward
  maxReplicas in one step: onto nodes it already uses first, then the nodes closest to it, fullest free nodes
  first (whole nodes), never outside the domain its topology rule allows (its Required domain, else the domain
  it was placed in). Higher priority grows first, then the queue holding the fewest GPUs per unit of weight,
  then the earlier submitted; each growth is charged to its queue, within its gpuQuota.
- Limit: when the domain a gang grows in can never hold maxReplicas workers (even with every other pod gone),
  `growth_limit` says how many it can; a scale request beyond that grows to it instead of waiting forever, and
  the lifecycle reports it (condition GrowthLimited).
- Guards: the operator's own growth waits `cooldownSeconds` after the job's last resize and stops after
  `maxResizesPerHour`; a gang shrunk for a waiting gang does not grow while that gang waits (no oscillation).
  A shrink for a waiting gang is never delayed by them: it replaces preempting someone, which is not delayed
  either; it counts towards them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from powertrain.api.policy import Autoscaling, ClusterTrainingPolicySpec, QueueSpec
from powertrain.api.trainingjob import ElasticScaler
from powertrain.core.placement import GangRequest, Placement, PlacementEngine, _capacity
from powertrain.core.preemption import _DomainTrial
from powertrain.core.snapshot import ClusterSnapshot, JobInfo, JobKey
from powertrain.core.topology import CLUSTER, DomainKey, TopologyIndex, domain_name

HOUR: Final = timedelta(hours=1)


@dataclass(frozen=True)
class Resize:
    """A change of a running elastic gang's size, decided this pass."""

    job: JobKey
    from_replicas: int
    to_replicas: int
    nodes: tuple[str, ...]
    """The gang's node of each rank after the resize (a prefix of today's when shrinking)."""
    reason: str
    for_job: JobKey | None = None
    """Shrink: the waiting gang it makes room for."""
    requested: bool = False
    """A scale request (spec.replicas changed), not the operator's own decision."""

    @property
    def grow(self) -> bool:
        return self.to_replicas > self.from_replicas


def fmt(key: JobKey) -> str:
    return f"{key[0]}/{key[1]}" if key[0] else key[1]


def is_elastic(info: JobInfo) -> bool:
    return info.job.spec.elastic is not None


def operator_scaled(info: JobInfo, policy: ClusterTrainingPolicySpec) -> bool:
    """The operator may resize this job on its own."""
    elastic = info.job.spec.elastic
    return elastic is not None and elastic.scaler == ElasticScaler.OPERATOR.value and policy.autoscaling.enabled


def requested_size(info: JobInfo) -> int | None:
    """The size a scale request asks a running elastic gang for, or None when there is none pending."""
    elastic = info.job.spec.elastic
    if elastic is None or not info.placed:
        return None
    status = info.job.status
    requested = status.requested_replicas if status is not None else None
    want = info.job.spec.replicas
    if requested is not None and requested != want:
        return max(elastic.min_replicas, min(elastic.max_replicas, want))
    desired = status.desired_replicas if status is not None else None
    if desired is not None and desired > len(info.placement_nodes):
        return desired  # a requested grow still waiting for room
    return None


def base_size(info: JobInfo) -> int:
    """What the job asked for (its fair claim); beyond it, a gang holds GPUs it borrowed while they were idle."""
    status = info.job.status
    requested = status.requested_replicas if status is not None else None
    return requested if requested is not None else info.job.spec.replicas


def growth_blocked(info: JobInfo, auto: Autoscaling, now: datetime) -> str | None:
    """Why the operator may not grow this job now (cooldown or rate limit), or None."""
    status = info.job.status
    if status is None:
        return None
    last = status.last_resize.time if status.last_resize is not None else None
    if last is not None and (now - last).total_seconds() < auto.cooldown_seconds:
        return f"cooldown ({auto.cooldown_seconds}s after the last resize)"
    recent = [t for t in status.resize_times or [] if now - t < HOUR]
    if len(recent) >= auto.max_resizes_per_hour:
        return f"resize rate limit ({auto.max_resizes_per_hour} per hour)"
    return None


def recent_resize_times(times: list[datetime] | None, now: datetime) -> list[datetime]:
    return [t for t in times or [] if now - t < HOUR]


# --- starting smaller ------------------------------------------------------------------------------------


def place_smaller(engine: PlacementEngine, request: GangRequest, info: JobInfo) -> Placement | None:
    """The largest placement of at least minReplicas workers, for an elastic gang that does not fit whole."""
    elastic = info.job.spec.elastic
    if elastic is None or not operator_scaled(info, engine.snapshot.policy):
        return None
    low, high = elastic.min_replicas, request.replicas - 1
    best: Placement | None = None
    # Fitting is monotone in the size (a subset of a fitting gang fits in the same domain): bisect.
    while low <= high:
        mid = (low + high) // 2
        found = engine.find(replace(request, replicas=mid))
        if isinstance(found, Placement):
            best, low = found, mid + 1
        else:
            high = mid - 1
    if best is not None:
        engine.commit(best, request.per_replica)
    return best


# --- shrink before preempt -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShrinkPlan:
    shrinks: tuple[Resize, ...]  # empty: enough is already being released, just wait
    level: str
    domain: str
    nodes: frozenset[str]


def _floor(victim: JobInfo, gang: JobInfo, used: Mapping[str, int], queues: Mapping[str, QueueSpec]) -> int | None:
    """The fewest workers `victim` may be shrunk to for `gang`, or None when it may not be shrunk for it."""
    elastic = victim.job.spec.elastic
    assert elastic is not None
    if victim.priority < gang.priority:
        return elastic.min_replicas
    if victim.priority > gang.priority:
        return None
    if victim.queue != gang.queue:
        weight = {q: (queues[q].weight if q in queues else 1) for q in (victim.queue, gang.queue)}
        mine = (used.get(gang.queue, 0) + gang.gpus_per_replica * gang.spec_replicas) / weight[gang.queue]
        theirs = used.get(victim.queue, 0) / weight[victim.queue]
        if mine <= theirs:
            return elastic.min_replicas  # the waiting gang's queue is below its fair share
    return max(elastic.min_replicas, base_size(victim))


def plan_shrink(
    engine: PlacementEngine,
    request: GangRequest,
    gang: JobInfo,
    used: Mapping[str, int],
    queues: Mapping[str, QueueSpec],
    taken: Collection[JobKey],
    reason_for: str,
) -> ShrinkPlan | None:
    """Shrink running elastic gangs so `request` fits inside one domain, or None when shrinking alone cannot."""
    snapshot = engine.snapshot
    max_level = engine._max_level(request)
    if max_level is None:
        return None
    candidates: list[tuple[JobInfo, int]] = []
    for info in snapshot.jobs.values():
        if not info.placed or info.key in taken or info.key == gang.key or not operator_scaled(info, snapshot.policy):
            continue
        if info.key in snapshot.invalid_jobs:
            continue
        floor = _floor(info, gang, used, queues)
        if floor is not None and floor < len(info.placement_nodes):
            candidates.append((info, floor))
    if not candidates:
        return None
    candidates.sort(key=lambda t: (t[0].priority, -(len(t[0].placement_nodes) - base_size(t[0])), t[0].key))
    for view in engine.views(request):
        for level in range(max_level + 1):
            best: tuple[tuple[int, DomainKey], ShrinkPlan] | None = None
            by_domain: dict[DomainKey, list[str]] = {}
            for name in view.cap:
                key = view.domains[level].get(name)
                if key is not None and name not in engine.masked:
                    by_domain.setdefault(key, []).append(name)
            for key in sorted(by_domain):
                if not engine.within_required(request, level, key):
                    continue
                found = _shrink_in(engine, snapshot, request, by_domain[key], candidates, gang, reason_for)
                if found is None:
                    continue
                cost = sum(r.from_replicas - r.to_replicas for r in found)
                if best is None or (cost, key) < best[0]:
                    plan = ShrinkPlan(
                        found, engine.topology.level_name(level), domain_name(key), frozenset(by_domain[key])
                    )
                    best = ((cost, key), plan)
            if best is not None:
                return best[1]
    return None


def _shrink_in(
    engine: PlacementEngine,
    snapshot: ClusterSnapshot,
    request: GangRequest,
    nodes: list[str],
    candidates: list[tuple[JobInfo, int]],
    gang: JobInfo,
    reason_for: str,
) -> tuple[Resize, ...] | None:
    members = set(nodes)
    free: dict[str, dict[str, int]] = {}
    for name in nodes:
        free[name] = dict(engine.node_free(name))
        for k, v in snapshot.nodes[name].releasing.items():
            free[name][k] = free[name].get(k, 0) + v
    trial = _DomainTrial(request.per_replica, free, {}, 0)
    for name in nodes:
        trial.cap[name] = _capacity(free[name], request.per_replica)
        trial.total += trial.cap[name]
    for info, _ in candidates:
        # Workers beyond the placement (left by an earlier shrink, about to be deleted) are free already.
        leaving = _leaving(snapshot, info, members)
        if leaving:
            trial.change(leaving, +1)
    if trial.total >= request.replicas:
        return ()
    out: list[Resize] = []
    for info, floor in candidates:
        ranks = info.placement_nodes
        if not any(n in members for n in ranks[floor:]):
            continue
        size = len(ranks)
        while size > floor and trial.total < request.replicas:
            size -= 1
            trial.change({ranks[size]: dict(info.per_replica)}, +1)
        out.append(
            Resize(
                info.key,
                len(ranks),
                size,
                tuple(ranks[:size]),
                f"shrank {len(ranks)}→{size} for {fmt(gang.key)} ({reason_for})",
                for_job=gang.key,
            )
        )
        if trial.total >= request.replicas:
            return tuple(out)
    return None


def _leaving(snapshot: ClusterSnapshot, info: JobInfo, members: set[str]) -> dict[str, dict[str, int]]:
    """What the job's pods hold on `members` beyond its placement (ranks a shrink removed, not yet deleted)."""
    placed: dict[str, int] = {}
    for name in info.placement_nodes:
        placed[name] = placed.get(name, 0) + 1
    out: dict[str, dict[str, int]] = {}
    for name in members:
        held = snapshot.node_job_usage.get(name, {}).get(info.key)
        if not held:
            continue
        extra = {k: v - placed.get(name, 0) * info.per_replica.get(k, 0) for k, v in held.items()}
        if any(v > 0 for v in extra.values()):
            out[name] = {k: max(v, 0) for k, v in extra.items()}
    return out


# --- grow ------------------------------------------------------------------------------------------------


def _grow_domain(engine: PlacementEngine, info: JobInfo) -> set[str] | None:
    """Nodes the gang may grow onto under its topology rule; None: anywhere its GPU model is."""
    return grow_domain(engine.topology, info)[0]


def grow_domain(topology: TopologyIndex, info: JobInfo) -> tuple[set[str] | None, str]:
    """Nodes the gang may grow onto under its topology rule (None: anywhere its GPU model is), and that domain
    in words."""
    anchor = info.placement_nodes[0]
    spec = info.job.spec
    level = topology.level_index(str(spec.topology.level))
    placed = info.placement_level
    if placed == CLUSTER:
        return None, "the cluster"
    placed_level = topology.level_index(placed) if placed else None
    if level is None or (placed_level is not None and placed_level > level):
        level = placed_level  # a Preferred gang already placed wider than its level grows within that domain
    if level is None:
        return None, "the cluster"
    key = topology.domain_of(anchor, level)
    if key is None:
        return {anchor}, f"node {anchor}"
    return set(topology.nodes_in(level, key)), f"{topology.level_name(level)} {domain_name(key)}"


def growth_limit(snapshot: ClusterSnapshot, info: JobInfo) -> tuple[int, str] | None:
    """(most workers, why) when a running elastic gang can never reach maxReplicas: even with every other pod
    gone, the domain its topology rule keeps it in holds fewer workers of its GPU model. None when it can."""
    elastic = info.job.spec.elastic
    if elastic is None or not info.placement_nodes or info.placement_nodes[0] not in snapshot.nodes:
        return None
    allowed, where = grow_domain(snapshot.topology, info)
    model = snapshot.nodes[info.placement_nodes[0]].gpu_model
    names = snapshot.nodes.keys() if allowed is None else allowed
    most = 0
    for name in names:
        node = snapshot.nodes.get(name)
        if node is not None and node.gpu_model == model:
            most += max(0, _capacity(node.allocatable, info.per_replica))
    most = max(most, len(info.placement_nodes))
    if most >= elastic.max_replicas:
        return None
    why = (
        f"elastic.maxReplicas {elastic.max_replicas} can never be reached: {where} holds at most {most} workers of "
        f"{info.gpus_per_replica} {model} GPUs; the job grows to {most} at most"
    )
    return most, why


def grow_nodes(engine: PlacementEngine, info: JobInfo, extra: int) -> tuple[str, ...]:
    """Nodes for up to `extra` more workers of a running gang, rank order, keeping its topology rule."""
    request = GangRequest.from_job(info)
    current = info.placement_nodes
    model = engine.snapshot.nodes[current[0]].gpu_model if current[0] in engine.snapshot.nodes else None
    allowed = _grow_domain(engine, info)
    eligible = engine.eligible_by_model(request).get(model or "", [])
    mine = set(current)
    topology = engine.topology

    def closeness(name: str) -> int:
        for level in range(len(topology.levels)):
            if topology.domain_of(name, level) is not None and topology.domain_of(name, level) == topology.domain_of(
                current[0], level
            ):
                return level
        return len(topology.levels)

    options: list[tuple[int, int, int, str]] = []
    for name in eligible:
        if name in engine.masked or (allowed is not None and name not in allowed):
            continue
        cap = _capacity(engine.node_free(name), request.per_replica)
        if cap > 0:
            options.append((0 if name in mine else 1, closeness(name), -cap, name))
    options.sort()
    out: list[str] = []
    for _, _, neg_cap, name in options:
        take = min(-neg_cap, extra - len(out))
        out.extend([name] * take)
        if len(out) >= extra:
            break
    return tuple(out)


@dataclass(frozen=True)
class GrowthOutcome:
    resizes: dict[JobKey, Resize]
    growable: dict[JobKey, int]
    """Jobs that could grow by this many workers now but have not seen idle GPUs long enough (yet)."""
    wake_at: datetime | None


def _describe(engine: PlacementEngine, info: JobInfo, nodes: tuple[str, ...]) -> str:
    topology = engine.topology
    for level in range(len(topology.levels)):
        keys = {topology.domain_of(n, level) for n in nodes}
        if len(keys) == 1 and None not in keys:
            (key,) = keys
            assert key is not None
            return f"{topology.level_name(level)} {domain_name(key)}"
    return "the cluster"


def plan_growth(
    engine: PlacementEngine,
    now: datetime,
    used: dict[str, int],
    queues: Mapping[str, QueueSpec],
    busy: Collection[JobKey],
    waiting: Collection[JobKey],
) -> GrowthOutcome:
    """Grow running elastic gangs into what this pass left idle. `busy`: jobs resized or preempted already this
    pass; `waiting`: jobs left waiting by it (a gang shrunk for one of them does not grow meanwhile)."""
    snapshot = engine.snapshot
    auto = snapshot.policy.autoscaling
    resizes: dict[JobKey, Resize] = {}
    growable: dict[JobKey, int] = {}
    wake: datetime | None = None
    jobs = [
        j
        for j in snapshot.jobs.values()
        if j.placed and is_elastic(j) and j.key not in busy and j.key not in snapshot.invalid_jobs
    ]

    def order(j: JobInfo) -> tuple[int, float, datetime, JobKey]:
        weight = queues[j.queue].weight if j.queue in queues else 1
        return (-j.priority, used.get(j.queue, 0) / weight, j.submit_time, j.key)

    for info in sorted(jobs, key=order):
        elastic = info.job.spec.elastic
        assert elastic is not None
        current = len(info.placement_nodes)
        quota = queues[info.queue].gpu_quota if info.queue in queues else None
        room = None if quota is None else max(0, (quota - used.get(info.queue, 0)) // info.gpus_per_replica)
        wanted = requested_size(info)
        if wanted is not None and wanted > current:
            limit = growth_limit(snapshot, info)
            if limit is not None:
                wanted = max(current, min(wanted, limit[0]))  # a size its domain can never hold is not waited for
        if wanted is not None and wanted > current:
            extra = wanted - current if room is None else min(wanted - current, room)
            nodes = grow_nodes(engine, info, extra) if extra > 0 else ()
            if len(nodes) == wanted - current:
                _commit(engine, info, nodes)
                used[info.queue] = used.get(info.queue, 0) + len(nodes) * info.gpus_per_replica
                resizes[info.key] = Resize(
                    info.key,
                    current,
                    wanted,
                    (*info.placement_nodes, *nodes),
                    f"grew {current}→{wanted}: scaled",
                    None,
                    True,
                )
            continue  # a requested size is followed, not exceeded by the operator's own growth
        if not operator_scaled(info, snapshot.policy) or current >= elastic.max_replicas:
            continue
        status = info.job.status
        shrunk_for = status.shrunk_for if status is not None else None
        if shrunk_for is not None and _key_of(shrunk_for) in waiting:
            continue
        if growth_blocked(info, auto, now) is not None:
            continue
        extra = elastic.max_replicas - current if room is None else min(elastic.max_replicas - current, room)
        nodes = grow_nodes(engine, info, extra) if extra > 0 else ()
        if not nodes:
            continue
        since = status.growable_since if status is not None else None
        if since is None and auto.grow_after_idle_seconds == 0:
            since = now
        due = (since or now) + timedelta(seconds=auto.grow_after_idle_seconds)
        if since is None or now < due:
            growable[info.key] = len(nodes)
            wake = due if wake is None else min(wake, due)
            continue
        _commit(engine, info, nodes)
        used[info.queue] = used.get(info.queue, 0) + len(nodes) * info.gpus_per_replica
        to = current + len(nodes)
        idle = (now - since).total_seconds()
        where = _describe(engine, info, nodes)
        resizes[info.key] = Resize(
            info.key,
            current,
            to,
            (*info.placement_nodes, *nodes),
            f"grew {current}→{to}: {len(nodes) * info.gpus_per_replica} GPUs idle for {idle:.0f} s in {where}",
        )
    return GrowthOutcome(resizes, growable, wake)


def _commit(engine: PlacementEngine, info: JobInfo, nodes: tuple[str, ...]) -> None:
    engine.commit(Placement("", "", "", nodes, ""), info.per_replica)


def _key_of(text: str) -> JobKey:
    namespace, _, name = text.rpartition("/")
    return (namespace, name)


def shrink_message(plan: ShrinkPlan) -> str:
    names = ", ".join(f"{fmt(r.job)} {r.from_replicas}→{r.to_replicas}" for r in plan.shrinks)
    return f"shrinking {len(plan.shrinks)} elastic job(s) in {plan.level} {plan.domain}: {names}"


__all__ = [
    "GrowthOutcome",
    "Resize",
    "ShrinkPlan",
    "base_size",
    "grow_domain",
    "grow_nodes",
    "growth_blocked",
    "growth_limit",
    "is_elastic",
    "operator_scaled",
    "place_smaller",
    "plan_growth",
    "plan_shrink",
    "recent_resize_times",
    "requested_size",
    "shrink_message",
]
