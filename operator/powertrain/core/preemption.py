"""Priority preemption: which whole lower-priority gangs to stop so a higher-priority gang fits.

Rules:

- Only whole gangs of strictly lower priority are ever chosen (and, under the LAS queue order, gangs of equal
  priority that core.las admits); higher priority never, and pods Powertrain does not manage never.
- The freed resources must make the gang placeable under its own topology rule: victims are counted only
  for what they free inside one candidate domain, of the narrowest level where that works (up to L when
  Required, up to the whole cluster when Preferred).
- Fewest and least important victims: per domain, victims are added lowest priority first, then fewest GPUs,
  then youngest (least work lost), until the gang fits; then any victim that turns out unnecessary is dropped.
  Across domains the plan with the lowest highest-victim priority wins, then fewer victims, then fewer GPUs.
- Resources already on their way out (terminating pods, gangs already preempted or requeued whose pods are
  still there) count as free at no cost, so a gang waiting for its victims to exit never preempts again.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from powertrain.core.placement import GangRequest, PlacementEngine, ShapeView, _capacity
from powertrain.core.snapshot import FAR_FUTURE, ClusterSnapshot, JobInfo, JobKey
from powertrain.core.topology import DomainKey, domain_name, domain_path


@dataclass(frozen=True)
class PreemptionPlan:
    victims: tuple[JobKey, ...]  # empty: enough is already being released, just wait
    level: str
    domain: str
    domain_path: str
    nodes: frozenset[str]  # the domain's nodes the gang will use once freed (to keep for it)


def _victim_order(info: JobInfo) -> tuple[int, int, float, JobKey]:
    start = info.start_time or FAR_FUTURE
    youngest_first = -start.timestamp() if start != FAR_FUTURE else float("-inf")
    return (info.priority, info.held_gpus, youngest_first, info.key)


def _add(into: dict[str, int], more: Mapping[str, int], sign: int = 1) -> None:
    for key, amount in more.items():
        into[key] = into.get(key, 0) + sign * amount


@dataclass
class _DomainTrial:
    """Free resources of one domain's nodes as victims are added and removed."""

    per_replica: Mapping[str, int]
    free: dict[str, dict[str, int]]
    cap: dict[str, int]
    total: int

    def change(self, usage: Mapping[str, Mapping[str, int]], sign: int) -> None:
        for node, amounts in usage.items():
            if node not in self.free:
                continue
            _add(self.free[node], amounts, sign)
            new = _capacity(self.free[node], self.per_replica)
            self.total += new - self.cap[node]
            self.cap[node] = new


def plan_preemption(
    engine: PlacementEngine,
    request: GangRequest,
    priority: int,
    now: datetime,
    taken: Collection[JobKey] = (),
    eligible: Callable[[JobInfo], bool] | None = None,
) -> PreemptionPlan | None:
    """The cheapest set of lower-priority gangs to preempt for `request`, or None when no set suffices.

    `taken` are gangs already chosen as victims earlier in this pass (their resources go to that preemptor).
    `eligible` replaces "strictly lower priority" as the test of who may be stopped (defragmentation's moves).
    """
    test = eligible if eligible is not None else (lambda info: info.priority < priority)
    verdicts: dict[JobKey, bool] = {}

    def may_stop(info: JobInfo) -> bool:
        # Asked once per gang per domain tried, of every level: the answer does not change within this call.
        verdict = verdicts.get(info.key)
        if verdict is None:
            verdict = verdicts[info.key] = test(info)
        return verdict

    del now  # victim age comes from the jobs' start times; kept for a stable signature
    snapshot = engine.snapshot
    max_level = engine._max_level(request)
    if max_level is None:
        return None
    best: tuple[tuple[int, int, int, DomainKey], PreemptionPlan] | None = None
    for view in engine.views(request):
        most_per_node = max(
            (_capacity(snapshot.nodes[n].allocatable, request.per_replica) for n in view.cap), default=0
        )
        for level in range(max_level + 1):
            # A level whose biggest domain could not hold the gang even empty is skipped without a look.
            biggest = (
                max((len(m) for m in engine.topology.members[level].values()), default=0)
                if level < len(engine.topology.levels)
                else len(view.cap)
            )
            if biggest * most_per_node < request.replicas:
                continue
            found = _best_in_level(engine, snapshot, view, request, priority, level, taken, may_stop)
            if found is not None:
                if best is None or found[0] < best[0]:
                    best = found
                break
    return best[1] if best else None


def _usage_by_job(snapshot: ClusterSnapshot, nodes: Collection[str]) -> dict[JobKey, dict[str, dict[str, int]]]:
    out: dict[JobKey, dict[str, dict[str, int]]] = {}
    for node in nodes:
        for job, amounts in snapshot.node_job_usage.get(node, {}).items():
            out.setdefault(job, {})[node] = dict(amounts)
    return out


def _best_in_level(
    engine: PlacementEngine,
    snapshot: ClusterSnapshot,
    view: ShapeView,
    request: GangRequest,
    priority: int,
    level: int,
    taken: Collection[JobKey],
    may_stop: Callable[[JobInfo], bool],
) -> tuple[tuple[int, int, int, DomainKey], PreemptionPlan] | None:
    by_domain: dict[DomainKey, list[str]] = {}
    for name in view.cap:
        key = view.domains[level].get(name)
        if key is not None and name not in engine.masked:
            by_domain.setdefault(key, []).append(name)
    best: tuple[tuple[int, int, int, DomainKey], PreemptionPlan] | None = None
    for key in sorted(by_domain):
        if not engine.within_required(request, level, key):
            continue
        nodes = by_domain[key]
        usage = _usage_by_job(snapshot, nodes)
        free: dict[str, dict[str, int]] = {}
        for name in nodes:
            free[name] = dict(engine.node_free(name))
            _add(free[name], snapshot.nodes[name].releasing)
        trial = _DomainTrial(request.per_replica, free, {}, 0)
        for name in nodes:
            trial.cap[name] = _capacity(free[name], request.per_replica)
            trial.total += trial.cap[name]
        candidates: list[JobInfo] = []
        for job, job_usage in usage.items():
            info = snapshot.jobs.get(job)
            if job in snapshot.invalid_jobs:
                continue  # kept running until its spec is readable again; never a victim, never counted free
            if info is None or not info.placed or job in taken:
                trial.change(job_usage, +1)  # already leaving: free at no cost
            elif may_stop(info):
                candidates.append(info)
        if trial.total >= request.replicas:
            plan = PreemptionPlan(
                (), engine.topology.level_name(level), domain_name(key), domain_path(key), frozenset(nodes)
            )
            return (priority, 0, 0, key), plan
        candidates.sort(key=_victim_order)
        chosen: list[JobInfo] = []
        for info in candidates:
            trial.change(usage[info.key], +1)
            chosen.append(info)
            if trial.total >= request.replicas:
                break
        if trial.total < request.replicas:
            continue
        for info in reversed(list(chosen)):
            trial.change(usage[info.key], -1)
            if trial.total >= request.replicas:
                chosen.remove(info)
            else:
                trial.change(usage[info.key], +1)
        cost = (
            max(v.priority for v in chosen),
            len(chosen),
            sum(v.held_gpus for v in chosen),
            key,
        )
        if best is None or cost < best[0]:
            plan = PreemptionPlan(
                tuple(v.key for v in sorted(chosen, key=_victim_order)),
                engine.topology.level_name(level),
                domain_name(key),
                domain_path(key),
                frozenset(nodes),
            )
            best = (cost, plan)
    return best
