"""Power budgets: per-GPU limits that keep every budgeted domain's measured draw under its budget.

Rules (per budget of the ClusterTrainingPolicy: the cluster's, and each domain's of `budgetLevel`):
- The domain's draw is the sum of its GPUs' reported power plus `nodeOverheadWatts` for each of its nodes.
- GPUs that no pod holds are not capped (an idle H200 draws 77-123 W, under any limit it accepts); their draw
  and the overhead come off the budget first. What is left, the allowance A, is for the GPUs that pods hold.
- Each held GPU wants a limit: its job's cap (explicit or its mode's), else its default limit. When the wanted
  limits fit in A, the budget caps nothing. Otherwise every held GPU gets a limit, and the limits sum to A:
  1. every GPU gets its minimum limit;
  2. what is left goes by priority, highest first (a GPU of a pod no TrainingJob owns counts as priority 0):
     first up to each GPU's demand (what it draws now, plus 10 % and 10 W; a GPU drawing at its limit demands
     its wanted limit), then up to its wanted limit; within one priority, evenly (water-filling), so equal
     priorities are cut evenly and lower priorities are cut first.
- Nested budgets: narrower domains first, then wider ones with each GPU's wanted limit lowered to what the
  narrower budget gave it; a GPU's limit is the lowest any budget gives it.

Control law and settling: this is a feed-forward allocation from the last measured draw, not an integrator:
one pass computes limits whose sum (plus idle draw and overhead) is the budget, so once the agents apply them
(on the NodeTelemetry watch, well under a second) and the GPUs follow (within ~1 s, nvml_power_step.csv) the
draw is under budget, whatever it drew before. Because a capped GPU draws at most its limit, the bound holds
without waiting for a new report; reports only redistribute (a GPU that stopped needing power lends it to
others at the next pass). So a lowered budget settles in one pass plus ~1 s.

When the minimum limits of the busy GPUs already exceed the allowance, every GPU gets its minimum and the
budget's status says by how much it cannot be held; `gang_power_need` lets the scheduler keep further gangs out
(reason PowerBudget).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from powertrain.api import constants as c
from powertrain.api.policy import BudgetStatus
from powertrain.api.telemetry import GpuReading
from powertrain.core.snapshot import ClusterSnapshot, JobKey
from powertrain.core.topology import CLUSTER, domain_name

DEMAND_MARGIN: Final = 1.10
DEMAND_EXTRA_W: Final = 10.0
POWER_BOUND_FRACTION: Final = 0.95
LIMIT_STEP_W: Final = 5


@dataclass(frozen=True)
class HeldGpu:
    uuid: str
    node: str
    priority: int
    job: JobKey | None
    min_watts: int
    default_watts: int
    wanted: int
    demand: int


@dataclass
class BudgetPlan:
    limits: dict[str, int] = field(default_factory=dict)
    """GPU UUID → the limit its budgets give it, only where that is below what the GPU wanted."""
    statuses: list[BudgetStatus] = field(default_factory=list)


Domain = tuple[str, str]


def _limit_range(gpu: GpuReading) -> tuple[int, int]:
    low = int(gpu.min_power_limit_watts or 0)
    top = gpu.default_power_limit_watts or gpu.max_power_limit_watts or gpu.power_limit_watts or 0
    return low, int(top)


def gpu_demand(power_watts: float | None, limit: float, want: int, low: int, sw_power_cap: bool) -> int:
    """What a GPU that wants `want` W needs: what it draws plus a margin, or all of `want` when it draws at its
    limit (it would draw more if let) or draws nothing known."""
    bound = sw_power_cap or (power_watts is not None and power_watts >= POWER_BOUND_FRACTION * limit)
    if power_watts is None or bound:
        return want
    return max(low, min(want, int(power_watts * DEMAND_MARGIN + DEMAND_EXTRA_W)))


def held_gpus(snapshot: ClusterSnapshot, wanted: Mapping[str, int]) -> dict[str, HeldGpu]:
    """Every GPU a live pod holds, as the agents report it, with what it wants and what it demands."""
    out: dict[str, HeldGpu] = {}
    for node, report in snapshot.telemetry.items():
        if report.status is None:
            continue
        for gpu in report.status.gpus:
            if gpu.pod is None:
                continue
            pod = snapshot.pods.get((gpu.pod.namespace, gpu.pod.name))
            if pod is None or not pod.holds_resources:
                continue
            info = snapshot.jobs.get(pod.job) if pod.job is not None else None
            low, top = _limit_range(gpu)
            if top <= 0:
                continue  # a GPU without known limits cannot be budgeted
            want = max(low, min(wanted.get(gpu.uuid, top), top))
            limit = gpu.power_limit_watts or top
            demand = gpu_demand(gpu.power_watts, limit, want, low, "SwPowerCap" in gpu.clock_event_reasons)
            out[gpu.uuid] = HeldGpu(gpu.uuid, node, info.priority if info else 0, pod.job, low, top, want, demand)
    return out


def budget_domains(snapshot: ClusterSnapshot) -> list[tuple[Domain, int, list[str]]]:
    """(level, domain), budget, nodes — narrowest level first, the cluster last."""
    budgets = snapshot.policy.power
    index = snapshot.topology
    out: list[tuple[Domain, int, list[str]]] = []
    level = str(budgets.budget_level)
    position = index.level_index(level)
    per_domain: dict[str, int] = {}
    if budgets.domain_watts is not None and position is not None:
        for key in index.members[position]:
            per_domain[domain_name(key)] = budgets.domain_watts
    for override in budgets.overrides:
        per_domain[override.domain] = override.watts
    members: dict[str, list[str]] = {}
    if position is not None:
        for node in sorted(snapshot.nodes):
            found = index.domain_of(node, position)
            if found is not None:
                members.setdefault(domain_name(found), []).append(node)
    for name in sorted(per_domain):
        out.append(((level, name), per_domain[name], members.get(name, [])))
    if budgets.cluster_watts is not None:
        out.append(((CLUSTER, CLUSTER), budgets.cluster_watts, sorted(snapshot.nodes)))
    return out


def _fill(gpus: list[HeldGpu], alloc: dict[str, float], target: Mapping[str, int], budget: float) -> float:
    """Raise allocations toward `target`, highest priority first, evenly within a priority; returns the rest."""
    for priority in sorted({g.priority for g in gpus}, reverse=True):
        tier = [g for g in gpus if g.priority == priority and alloc[g.uuid] < target[g.uuid]]
        while tier and budget > 1e-6:
            share = budget / len(tier)
            room = min(target[g.uuid] - alloc[g.uuid] for g in tier)
            step = min(share, room)
            for g in tier:
                alloc[g.uuid] += step
            budget -= step * len(tier)
            tier = [g for g in tier if alloc[g.uuid] < target[g.uuid] - 1e-6]
        if budget <= 1e-6:
            break
    return budget


@dataclass(frozen=True)
class DomainLoad:
    """One budgeted domain as measured: what it draws, what of that no limit can cut, and the GPUs pods hold."""

    level: str
    name: str
    budget: int
    nodes: int
    draw: float
    """Measured draw: GPUs' reported power plus node overhead."""
    fixed: float
    """Node overhead plus the draw of GPUs no pod holds: comes off the budget first."""
    held: tuple[str, ...]
    """UUIDs of the GPUs pods hold in it."""


def plan_budgets(snapshot: ClusterSnapshot, wanted: Mapping[str, int]) -> BudgetPlan:
    """Limits that hold every budget, and each budget's status (see the module docstring)."""
    domains = budget_domains(snapshot)
    if not domains:
        return BudgetPlan()
    overhead = snapshot.policy.power.node_overhead_watts
    held = held_gpus(snapshot, wanted)
    loads: list[DomainLoad] = []
    for (level, name), budget, nodes in domains:
        draw = float(overhead * len(nodes))
        idle = 0.0
        mine: list[str] = []
        for node in nodes:
            report = snapshot.telemetry.get(node)
            if report is None or report.status is None:
                continue
            for gpu in report.status.gpus:
                draw += gpu.power_watts or 0.0
                if gpu.uuid in held:
                    mine.append(gpu.uuid)
                else:
                    idle += gpu.power_watts or 0.0
        loads.append(DomainLoad(level, name, budget, len(nodes), draw, overhead * len(nodes) + idle, tuple(mine)))
    return allocate_budgets(loads, held)


def allocate_budgets(loads: Sequence[DomainLoad], held: Mapping[str, HeldGpu]) -> BudgetPlan:
    """The allocation itself, over measured loads (narrowest domains first): the operator feeds it the agents'
    reports, the simulator its own GPU physics."""
    plan = BudgetPlan()
    current = {u: g.wanted for u, g in held.items()}
    for load in loads:
        level, name, budget = load.level, load.name, load.budget
        mine = [held[u] for u in load.held]
        allowance = budget - load.fixed
        status = BudgetStatus(
            level=level,
            domain=name,
            budget_watts=budget,
            draw_watts=round(load.draw, 1),
            headroom_watts=round(budget - load.draw, 1),
            nodes=load.nodes,
        )
        if not load.nodes:
            status.message = f"no node is in {level} {name!r}: the budget applies to nothing"
        plan.statuses.append(status)
        if not mine or sum(current[g.uuid] for g in mine) <= allowance:
            continue
        alloc = {g.uuid: float(g.min_watts) for g in mine}
        floor = sum(alloc.values())
        if floor > allowance:
            status.message = (
                f"cannot be held: the minimum limits of its {len(mine)} busy GPUs ({floor:.0f} W) plus idle GPUs and "
                f"node overhead ({budget - allowance:.0f} W) exceed the budget {budget} W"
            )
        else:
            wants = {g.uuid: current[g.uuid] for g in mine}
            demands = {g.uuid: min(g.demand, wants[g.uuid]) for g in mine}
            rest = _fill(mine, alloc, demands, allowance - floor)
            _fill(mine, alloc, wants, rest)
        capped = 0
        for g in mine:
            # Whole 5 W steps (never below the minimum): a draw that wobbles does not rewrite every node's request.
            limit = max(g.min_watts, int(alloc[g.uuid]) // LIMIT_STEP_W * LIMIT_STEP_W)
            if limit < current[g.uuid]:
                current[g.uuid] = limit
                capped += 1
        status.capped_gpus = capped
    for uuid, held_gpu in held.items():
        if current[uuid] < held_gpu.wanted:
            plan.limits[uuid] = current[uuid]
    return plan


def gpu_power_floor(snapshot: ClusterSnapshot, node: str) -> tuple[float, float]:
    """(minimum limit, idle draw) of one GPU of `node`, from its report; (0, 0) when it has not reported."""
    report = snapshot.telemetry.get(node)
    if report is None or report.status is None or not report.status.gpus:
        return 0.0, 0.0
    low = max((g.min_power_limit_watts or 0.0) for g in report.status.gpus)
    idle = [g.power_watts for g in report.status.gpus if g.pod is None and g.power_watts is not None]
    return low, (sum(idle) / len(idle) if idle else 0.0)


@dataclass
class PowerFit:
    """What every budgeted domain must hold at the least: node overhead, busy GPUs at their minimum limit, idle
    GPUs' draw. A gang fits where adding its GPUs at their minimum limits stays within every budget."""

    snapshot: ClusterSnapshot
    floors: dict[Domain, float] = field(default_factory=dict)
    budgets: dict[Domain, tuple[int, list[str]]] = field(default_factory=dict)
    domains_of: dict[str, list[Domain]] = field(default_factory=dict)
    """Node → the budgeted domains it is in."""

    @classmethod
    def build(cls, snapshot: ClusterSnapshot) -> PowerFit:
        fit = cls(snapshot)
        overhead = snapshot.policy.power.node_overhead_watts
        for domain, budget, nodes in budget_domains(snapshot):
            floor = float(overhead * len(nodes))
            for node in nodes:
                info = snapshot.nodes[node]
                low, idle = gpu_power_floor(snapshot, node)
                busy = min(info.used.get(c.GPU_RESOURCE, 0), info.gpus)
                floor += busy * low + (info.gpus - busy) * idle
            fit.floors[domain] = floor
            fit.budgets[domain] = (budget, nodes)
            for node in nodes:
                fit.domains_of.setdefault(node, []).append(domain)
        return fit

    def need(self, nodes: list[str], gpus_per_node: int) -> dict[Domain, float]:
        out: dict[Domain, float] = {}
        for node in nodes:
            low, idle = gpu_power_floor(self.snapshot, node)
            extra = gpus_per_node * max(low - idle, 0.0)
            if extra <= 0:
                continue
            for domain in self.domains_of.get(node, ()):
                out[domain] = out.get(domain, 0.0) + extra
        return out

    def problem(self, nodes: list[str], gpus_per_node: int) -> str | None:
        """Why a gang on `nodes` would break a budget even at minimum limits; None when it fits."""
        for domain, extra in sorted(self.need(nodes, gpus_per_node).items()):
            budget, _ = self.budgets[domain]
            floor = self.floors[domain]
            if floor + extra > budget:
                level, name = domain
                where = "the cluster" if level == CLUSTER else f"{level} {name}"
                return (
                    f"power budget of {where} is {budget} W; its busy GPUs at their minimum limits, idle GPUs and "
                    f"node overhead take {floor:.0f} W and this gang needs {extra:.0f} W more at minimum limits"
                )
        return None

    def commit(self, nodes: list[str], gpus_per_node: int) -> None:
        for domain, extra in self.need(nodes, gpus_per_node).items():
            self.floors[domain] += extra
