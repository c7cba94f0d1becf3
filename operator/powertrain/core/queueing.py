"""Queue order, per-queue GPU quotas, and the reservation that lets smaller jobs backfill without starving
the head of the queue.

Order: higher priority first, then earlier submission (status.submitTime, else creation), then
namespace/name, across all queues.

Quotas: a queue's placed gangs together never hold more GPUs than its `gpuQuota`. Within a queue the order is
strict for quota: once a job waits for quota, later jobs of that queue wait behind it (otherwise a stream
of small jobs would keep a large one below its own queue's quota forever). A job larger than the whole quota
is refused with that reason and blocks nobody.

Backfill rule: when a job cannot be placed now but could be once running gangs finish, it *reserves* one
domain: the domain of the narrowest level it could ever fit in (counting only resources it is allowed to use
and that are not held by other schedulers' pods) that is closest to fitting it now. Later jobs in the order
may not use that domain's nodes that the blocked job can use; everything else (other domains, other GPU
models, nodes the blocked job's selector or tolerations exclude) stays open to them. The reserved domain only
drains, so the blocked job starts as soon as enough gangs in it finish. A job that could never fit reserves
nothing and blocks nobody. Jobs identical in shape to one already waiting do not reserve a second domain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from powertrain.api.policy import QueueSpec
from powertrain.core.placement import GangRequest, PlacementEngine, _capacity
from powertrain.core.snapshot import JobInfo
from powertrain.core.topology import DomainKey, domain_name, domain_path


def queue_order(jobs: Iterable[JobInfo]) -> list[JobInfo]:
    return sorted(jobs, key=lambda j: (-j.priority, j.submit_time, j.key))


def quota_problem(job: JobInfo, queue: QueueSpec, used: int) -> tuple[str, bool] | None:
    """Why the queue's quota keeps the job waiting, and whether it ever could fit; None when within quota."""
    quota = queue.gpu_quota
    need = job.spec_replicas * job.gpus_per_replica
    if quota is None or used + need <= quota:
        return None
    if need > quota:
        return f"the job needs {need} GPUs, more than queue {queue.name!r} may ever hold (gpuQuota {quota})", False
    return f"queue {queue.name!r} holds {used} of its {quota} GPU quota; the job needs {need} more", True


@dataclass(frozen=True)
class Reservation:
    level: str
    domain: str
    domain_path: str
    nodes: frozenset[str]


def reserve_for(engine: PlacementEngine, request: GangRequest) -> Reservation | None:
    """The domain a blocked job holds so later jobs cannot starve it (see the module rule), or None when
    the job could not fit even with every Powertrain gang gone."""
    max_level = engine._max_level(request)
    if max_level is None:
        return None
    snapshot = engine.snapshot
    best: tuple[int, int, DomainKey, frozenset[str]] | None = None
    for view in engine.views(request):
        potential_cap: dict[str, int] = {}
        for name in view.cap:
            if name in engine.masked:
                continue
            node = snapshot.nodes[name]
            free = node.free()
            for amounts in snapshot.node_job_usage.get(name, {}).values():
                for resource, amount in amounts.items():
                    free[resource] = free.get(resource, 0) + amount
            for resource, amount in node.releasing.items():
                free[resource] = free.get(resource, 0) + amount
            potential_cap[name] = _capacity(free, request.per_replica)
        for level in range(max_level + 1):
            potential: dict[DomainKey, int] = {}
            members: dict[DomainKey, list[str]] = {}
            for name, cap in potential_cap.items():
                key = view.domains[level].get(name)
                if key is None:
                    continue
                potential[key] = potential.get(key, 0) + cap
                members.setdefault(key, []).append(name)
            fitting = [
                k
                for k, total in potential.items()
                if total >= request.replicas and engine.within_required(request, level, k)
            ]
            if not fitting:
                continue
            # Closest to fitting now: the most capacity already free.
            key = min(fitting, key=lambda k: (-view.levels[level].cap.get(k, 0), k))
            candidate = (level, -view.levels[level].cap.get(key, 0), key, frozenset(members[key]))
            if best is None or candidate[:3] < best[:3]:
                best = candidate
            break
    if best is None:
        return None
    level, _, key, nodes = best
    return Reservation(engine.topology.level_name(level), domain_name(key), domain_path(key), nodes)
