"""Power budgets in the simulator: the operator's own allocation (`powertrain.core.power_budget.allocate_budgets`:
minimum limits first, then by priority up to each GPU's demand, then up to its wanted limit; equal priorities
evenly) over the simulator's GPU physics (`powertrain.sim.power`) instead of the agents' reports.

- The budgeted domains are the core's (`budget_domains` over the policy and the simulated nodes' topology).
- A running job's GPUs want the cap of its power mode (else the default limit, 700 W) and demand what the core's
  `gpu_demand` says for the draw of its model's profile at that cap. A GPU no job holds draws IDLE_GPU_WATTS and,
  with `nodeOverheadWatts` per node, comes off the budget first, as in the operator.
- A gang runs at the pace of its slowest GPU, so a job's cap is the lowest limit any budget gives one of its
  GPUs, and all its GPUs are taken to draw at that cap (a faster GPU would wait at the next collective).
- Caps apply at once: there is no report delay and no settling time, so a domain is never over its budget while
  the budget can be held (the engine measures it anyway, `SimResult.over_budget_s`).
- Admission is the scheduler's own check (`PowerFit`, reason PowerBudget), fed one static report per node
  (`node_reports`) with each GPU's limit range and idle draw: all it reads from reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from powertrain.api.policy import PowerBudgets
from powertrain.core.power_budget import DomainLoad, HeldGpu, allocate_budgets, budget_domains, gpu_demand
from powertrain.core.snapshot import ClusterSnapshot
from powertrain.core.topology import CLUSTER
from powertrain.sim.power import DEFAULT_LIMIT, IDLE_GPU_WATTS, MIN_LIMIT, power_at

NAMESPACE: Final = "sim"


class BudgetError(ValueError):
    """A budget the simulated cluster cannot have; the message says which and why."""


@dataclass(frozen=True)
class BudgetJob:
    """A running job as the budgets see it."""

    name: str
    priority: int
    model: str
    mode_cap: int | None
    nodes: tuple[str, ...]
    """Node of each worker."""
    gpus_per_worker: int


@dataclass
class BudgetOutcome:
    caps: dict[str, int | None] = field(default_factory=dict)
    """Job name → the cap it runs under now (its mode's, or lower where a budget cuts it)."""
    draws: dict[tuple[str, str], float] = field(default_factory=dict)
    """(level, domain) → its draw under those caps, watts."""
    cut: set[str] = field(default_factory=set)
    """Jobs a budget holds below their mode's cap."""


def node_reports(gpus_per_node: Mapping[str, int]) -> list[dict[str, Any]]:
    """One NodeTelemetry per node: every GPU idle, with the H200's limit range (what the admission check reads)."""
    out: list[dict[str, Any]] = []
    for node, gpus in sorted(gpus_per_node.items()):
        readings = [
            {
                "index": i,
                "uuid": f"{node}/gpu{i}",
                "powerWatts": IDLE_GPU_WATTS,
                "powerLimitWatts": DEFAULT_LIMIT,
                "defaultPowerLimitWatts": DEFAULT_LIMIT,
                "minPowerLimitWatts": MIN_LIMIT,
                "maxPowerLimitWatts": DEFAULT_LIMIT,
            }
            for i in range(gpus)
        ]
        out.append({"metadata": {"name": node}, "status": {"backend": "sim", "gpus": readings}})
    return out


class SimBudgets:
    """The policy's budgets over a simulated cluster (the snapshot carries the policy and the topology)."""

    def __init__(self, snapshot: ClusterSnapshot, gpus_per_node: Mapping[str, int]):
        self.gpus = dict(gpus_per_node)
        self.overhead = snapshot.policy.power.node_overhead_watts
        self.domains = budget_domains(snapshot)
        check_budgets(snapshot.policy.power, snapshot, self.gpus, self.domains)

    def __bool__(self) -> bool:
        return bool(self.domains)

    def plan(self, jobs: Sequence[BudgetJob]) -> BudgetOutcome:
        held: dict[str, HeldGpu] = {}
        on_node: dict[str, list[str]] = {}
        owner: dict[str, BudgetJob] = {}
        uncut: dict[str, float] = {}
        for job in jobs:
            wanted = job.mode_cap if job.mode_cap is not None else DEFAULT_LIMIT
            draw = uncut[job.name] = power_at(job.model, wanted).watts_per_gpu
            demand = gpu_demand(draw, wanted, wanted, MIN_LIMIT, False)
            for rank, node in enumerate(job.nodes):
                for k in range(job.gpus_per_worker):
                    uuid = f"{job.name}/{rank}.{k}"
                    held[uuid] = HeldGpu(
                        uuid, node, job.priority, (NAMESPACE, job.name), MIN_LIMIT, DEFAULT_LIMIT, wanted, demand
                    )
                    on_node.setdefault(node, []).append(uuid)
                    owner[uuid] = job
        loads: list[DomainLoad] = []
        for (level, name), budget, nodes in self.domains:
            mine = [u for node in nodes for u in on_node.get(node, ())]
            fixed = self.overhead * len(nodes) + sum(
                (self.gpus.get(node, 0) - len(on_node.get(node, ()))) * IDLE_GPU_WATTS for node in nodes
            )
            draw = fixed + sum(uncut[owner[u].name] for u in mine)
            loads.append(DomainLoad(level, name, budget, len(nodes), draw, fixed, tuple(mine)))
        plan = allocate_budgets(loads, held)
        out = BudgetOutcome()
        for job in jobs:
            out.caps[job.name] = job.mode_cap
        for uuid, limit in plan.limits.items():
            name = owner[uuid].name
            cap = out.caps[name]
            if cap is None or limit < cap:
                out.caps[name] = limit
                out.cut.add(name)
        now = {job.name: power_at(job.model, out.caps[job.name]).watts_per_gpu for job in jobs}
        for load in loads:
            out.draws[(load.level, load.name)] = load.fixed + sum(now[owner[u].name] for u in load.held)
        return out


def idle_draw(nodes: Sequence[str], gpus_per_node: Mapping[str, int], overhead: int) -> float:
    """What the nodes draw with no job on them: node overhead and idle GPUs."""
    return sum(overhead + gpus_per_node.get(n, 0) * IDLE_GPU_WATTS for n in nodes)


def check_budgets(
    budgets: PowerBudgets,
    snapshot: ClusterSnapshot,
    gpus_per_node: Mapping[str, int],
    domains: Sequence[tuple[tuple[str, str], int, Sequence[str]]],
) -> None:
    """Refuse budgets the simulated cluster cannot have: a level or domain its topology lacks, or a budget under
    the domain's idle draw (it could never be held, whatever the scheduler does)."""
    level = str(budgets.budget_level)

    def has(name: str) -> bool:
        position = snapshot.topology.level_index(name)
        return position is not None and bool(snapshot.topology.members[position])

    if (budgets.domain_watts is not None or budgets.overrides) and not has(level):
        present = [lvl for lvl in ("nvlink", "rack", "spine", "zone") if has(lvl)]
        raise BudgetError(
            f"power budget for level {level!r}: the simulated cluster has no {level} level (its topology has "
            f"{', '.join(present) or 'no levels'}; add it with --cluster topology=...)"
        )
    known = {name for (lvl, name), _, nodes in domains if lvl != CLUSTER and nodes}
    for override in budgets.overrides:
        if override.domain not in known:
            raise BudgetError(
                f"power budget for {level} {override.domain!r}: no such {level} in the simulated cluster "
                f"(it has {', '.join(sorted(known)[:8]) or 'none'}{'…' if len(known) > 8 else ''})"
            )
    for (lvl, name), budget, nodes in domains:
        idle = idle_draw(nodes, gpus_per_node, budgets.node_overhead_watts)
        if budget < idle:
            where = "the cluster" if lvl == CLUSTER else f"{lvl} {name}"
            raise BudgetError(
                f"power budget of {where} is {budget} W, below its idle draw {idle:.0f} W ({len(nodes)} nodes at "
                f"{budgets.node_overhead_watts} W overhead each, {sum(gpus_per_node.get(n, 0) for n in nodes)} GPUs "
                f"idle at {IDLE_GPU_WATTS:.0f} W): it could never be held"
            )
