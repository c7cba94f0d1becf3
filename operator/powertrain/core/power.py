"""Which GPU gets which power limit: its job's cap (explicit `spec.power.capWatts`, else what the job's power
mode found, see `power_modes`), lowered where a power budget needs it (see `power_budget`).

The GPU a pod holds is known only to the node's agent (pod→GPU attribution in NodeTelemetry status), so the
desired `spec.powerLimits` of a node is derived from that report, the jobs' caps and the budgets. The operator
owns the whole list: it holds the requests of every job on the node, so writing it replaces nothing another
job asked for, and a GPU left out of it goes back to its default limit (the agent restores it).

Requests carry an expiry (`spec.powerLimitsExpireAt`, REQUEST_TTL ahead) that the operator renews when less than
half of it is left: if the operator is gone, the agents put the GPUs back to their default limits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from powertrain.api.policy import BudgetStatus, ClusterTrainingPolicySpec
from powertrain.core.power_budget import plan_budgets
from powertrain.core.snapshot import ClusterSnapshot, JobKey
from powertrain.core.topology import CLUSTER, TopologyIndex, domain_name

PowerLimits = dict[str, int]
"""GPU UUID → requested limit, watts."""

REQUEST_TTL: Final = timedelta(seconds=60)
"""How long a node's requests stay valid without renewal; renewed when less than half is left."""


@dataclass
class PowerPlan:
    """The limits every node should run under, and what the budgets did."""

    caps: dict[JobKey, int]
    budget_limits: dict[str, int] = field(default_factory=dict)
    budgets: list[BudgetStatus] = field(default_factory=list)
    job_budget_caps: dict[JobKey, int] = field(default_factory=dict)
    """Job → the lowest limit a budget gives one of its GPUs."""


def plan_power(snapshot: ClusterSnapshot, caps: Mapping[JobKey, int]) -> PowerPlan:
    """Caps per job (explicit or from the job's mode) plus the budgets' cuts."""
    wanted: dict[str, int] = {}
    owner: dict[str, JobKey] = {}
    for node, report in snapshot.telemetry.items():
        if report.status is None:
            continue
        for gpu in report.status.gpus:
            job = _gpu_job(snapshot, node, gpu.pod)
            if job is None:
                continue
            owner[gpu.uuid] = job
            if job in caps:
                wanted[gpu.uuid] = caps[job]
    budget = plan_budgets(snapshot, wanted)
    plan = PowerPlan(dict(caps), budget.limits, budget.statuses)
    for uuid, watts in budget.limits.items():
        job = owner.get(uuid)
        if job is not None:
            plan.job_budget_caps[job] = min(watts, plan.job_budget_caps.get(job, watts))
    return plan


def _gpu_job(snapshot: ClusterSnapshot, node: str, ref: object) -> JobKey | None:
    namespace, name = getattr(ref, "namespace", None), getattr(ref, "name", None)
    if namespace is None or name is None:
        return None
    pod = snapshot.pods.get((namespace, name))
    if pod is None or pod.job is None or pod.node != node or not pod.holds_resources:
        return None
    return pod.job


def job_caps(snapshot: ClusterSnapshot) -> dict[JobKey, int]:
    """Jobs that ask for an explicit per-GPU cap and have not finished."""
    return {
        key: info.job.spec.power.cap_watts
        for key, info in snapshot.jobs.items()
        if info.job.spec.power.cap_watts is not None and not info.finished
    }


def desired_power_limits(
    snapshot: ClusterSnapshot, node: str, caps: Mapping[JobKey, int], budget_limits: Mapping[str, int] | None = None
) -> PowerLimits:
    """The limits `node` should run under: each GPU the agent attributes to a live pod of a capped job, and
    each GPU a budget lowers (whoever holds it).

    A pod counts while it holds resources (bound and not finished), terminating included: a preempted gang
    keeps drawing power while it checkpoints. A GPU attributed to a pod the operator does not know (gone,
    or another scheduler's) gets no request of a job, only a budget's.
    """
    report = snapshot.telemetry.get(node)
    if report is None or report.status is None or not (caps or budget_limits):
        return {}
    out: PowerLimits = {}
    for gpu in report.status.gpus:
        if budget_limits and gpu.uuid in budget_limits:
            out[gpu.uuid] = budget_limits[gpu.uuid]
            continue
        job = _gpu_job(snapshot, node, gpu.pod)
        cap = caps.get(job) if job is not None else None
        if cap is not None:
            out[gpu.uuid] = cap
    return out


def current_power_limits(snapshot: ClusterSnapshot, node: str) -> PowerLimits:
    report = snapshot.telemetry.get(node)
    if report is None:
        return {}
    return {r.uuid: r.watts for r in report.spec.power_limits}


def power_limit_changes(
    snapshot: ClusterSnapshot, only: Iterable[str] | None = None, plan: PowerPlan | None = None
) -> dict[str, PowerLimits]:
    """Nodes whose requested limits must change, with the complete new request of each (empty = withdraw all).

    Without `only`, every node that runs a capped job, has a budget cut or already carries requests is looked
    at. A caller that knows which nodes' reports, pods or jobs changed passes them as `only`, so a pass costs
    what changed, not the size of the cluster (budgets make every node of a budgeted domain depend on the others:
    the caller passes no `only` then). Without `plan`, only explicit caps are requested.
    """
    caps = plan.caps if plan is not None else job_caps(snapshot)
    budget_limits = plan.budget_limits if plan is not None else {}
    if only is not None:
        nodes = set(only)
    else:
        nodes = {n for n, report in snapshot.telemetry.items() if report.spec.power_limits}
        for key in caps:
            nodes.update(p.node for p in snapshot.job_pods.get(key, {}).values() if p.node is not None)
        for node, report in snapshot.telemetry.items():
            if report.status is not None and any(g.uuid in budget_limits for g in report.status.gpus):
                nodes.add(node)
    changes: dict[str, PowerLimits] = {}
    for node in sorted(nodes):
        if node not in snapshot.telemetry:
            continue  # no report yet: no GPU is attributed, nothing to request
        desired = desired_power_limits(snapshot, node, caps, budget_limits)
        if desired != current_power_limits(snapshot, node):
            changes[node] = desired
    return changes


def renewals(snapshot: ClusterSnapshot, now: datetime) -> dict[str, PowerLimits]:
    """Nodes whose requests must be written again before they expire (the same limits, a new expiry)."""
    out: dict[str, PowerLimits] = {}
    for node, report in snapshot.telemetry.items():
        if not report.spec.power_limits:
            continue
        expires = report.spec.power_limits_expire_at
        if expires is None or expires - now < REQUEST_TTL / 2:
            out[node] = current_power_limits(snapshot, node)
    return out


def power_limits_wire(limits: Mapping[str, int]) -> list[dict[str, object]]:
    """`spec.powerLimits` as the API stores it, in a stable order so equal requests are equal writes."""
    return [{"uuid": uuid, "watts": watts} for uuid, watts in sorted(limits.items())]


def power_budgets(policy: ClusterTrainingPolicySpec, index: TopologyIndex) -> dict[tuple[str, str], int]:
    """(level, domain) → budget watts from the policy: the cluster's, and each domain's of `budgetLevel`.

    `domainWatts` applies to every domain of that level that has nodes; an override replaces it for its
    domain (and is listed even while the domain has no nodes, since it is configured).
    """
    budgets = policy.power
    out: dict[tuple[str, str], int] = {}
    if budgets.cluster_watts is not None:
        out[(CLUSTER, CLUSTER)] = budgets.cluster_watts
    level = str(budgets.budget_level)
    position = index.level_index(level)
    if budgets.domain_watts is not None and position is not None:
        for key in index.members[position]:
            out[(level, domain_name(key))] = budgets.domain_watts
    for override in budgets.overrides:
        out[(level, override.domain)] = override.watts
    return out
