"""Which GPU gets which power limit: a job's explicit `spec.power.capWatts` on every GPU its live pods hold.

The GPU a pod holds is known only to the node's agent (pod→GPU attribution in NodeTelemetry status), so the
desired `spec.powerLimits` of a node is derived from that report and the jobs' specs. The operator owns the
whole list: it holds the requests of every job on the node, so writing it replaces nothing another job asked
for, and a GPU left out of it goes back to its default limit (the agent restores it).

Only explicit caps are requested. Balanced and Efficiency modes without `capWatts` change nothing yet:
choosing caps automatically (from measured slowdown, under the policy's power budgets) is future work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from powertrain.api.policy import ClusterTrainingPolicySpec
from powertrain.core.snapshot import ClusterSnapshot, JobKey
from powertrain.core.topology import CLUSTER, TopologyIndex, domain_name

PowerLimits = dict[str, int]
"""GPU UUID → requested limit, watts."""


def job_caps(snapshot: ClusterSnapshot) -> dict[JobKey, int]:
    """Jobs that ask for an explicit per-GPU cap and have not finished."""
    return {
        key: info.job.spec.power.cap_watts
        for key, info in snapshot.jobs.items()
        if info.job.spec.power.cap_watts is not None and not info.finished
    }


def desired_power_limits(snapshot: ClusterSnapshot, node: str, caps: Mapping[JobKey, int]) -> PowerLimits:
    """The limits `node` should run under: each GPU the agent attributes to a live pod of a capped job.

    A pod counts while it holds resources (bound and not finished), terminating included: a preempted gang
    keeps drawing power while it checkpoints. A GPU attributed to a pod the operator does not know (gone,
    or another scheduler's) gets no request.
    """
    report = snapshot.telemetry.get(node)
    if report is None or report.status is None or not caps:
        return {}
    out: PowerLimits = {}
    for gpu in report.status.gpus:
        if gpu.pod is None:
            continue
        pod = snapshot.pods.get((gpu.pod.namespace, gpu.pod.name))
        if pod is None or pod.job is None or pod.node != node or not pod.holds_resources:
            continue
        cap = caps.get(pod.job)
        if cap is not None:
            out[gpu.uuid] = cap
    return out


def current_power_limits(snapshot: ClusterSnapshot, node: str) -> PowerLimits:
    report = snapshot.telemetry.get(node)
    if report is None:
        return {}
    return {r.uuid: r.watts for r in report.spec.power_limits}


def power_limit_changes(snapshot: ClusterSnapshot, only: Iterable[str] | None = None) -> dict[str, PowerLimits]:
    """Nodes whose requested limits must change, with the complete new request of each (empty = withdraw all).

    Without `only`, every node that runs a capped job or already carries requests is looked at. A caller that
    knows which nodes' reports, pods or jobs changed passes them as `only`, so a pass costs what changed, not
    the size of the cluster.
    """
    caps = job_caps(snapshot)
    if only is not None:
        nodes = set(only)
    else:
        nodes = {n for n, report in snapshot.telemetry.items() if report.spec.power_limits}
        for key in caps:
            nodes.update(p.node for p in snapshot.job_pods.get(key, {}).values() if p.node is not None)
    changes: dict[str, PowerLimits] = {}
    for node in sorted(nodes):
        if node not in snapshot.telemetry:
            continue  # no report yet: no GPU is attributed, nothing to request
        desired = desired_power_limits(snapshot, node, caps)
        if desired != current_power_limits(snapshot, node):
            changes[node] = desired
    return changes


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
