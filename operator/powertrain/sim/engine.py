"""Discrete-event replay of a job trace through the scheduling core, on a simulated cluster.

Events are job submissions, completions and the ends of locality waits (when the core says a waiting
`Preferred` gang may be placed wider). At each instant, completions are applied first (their GPUs are
free again), then submissions (in trace order), then one scheduling pass (skipped when no job waits: it
would decide nothing): `powertrain.core.schedule(snapshot, now)` decides which waiting gangs start and where,
exactly as in the operator. A started job holds its GPUs
(a placed gang's reservation in the snapshot) until it completes after `run_seconds(job, servers used)`.

Every job becomes a TrainingJob of `gpus` one-GPU workers at topology level `node` (an Alibaba pod: one worker
of all its GPUs), so all policies see the same queue and the same gang sizes and differ only in where (and so
when) the workers land:

- `topology`: the core's placement with `mode: Preferred` — one node when one has room; when none has but one
  could once gangs finish, the gang waits for one node while the cost-aware wait says it pays, at most the
  policy's `placement.preferredWaitSeconds` (default 86,400 s, `preferred_wait_s` here), then goes to the
  narrowest domain that fits (NVLink domain, rack, spine…), best fit, workers on the fewest nodes;
- `packed`: the core with `mode: Required` at the node level for every gang that fits on one node (larger
  gangs stay `Preferred`): a gang waits for one node rather than start scattered;
- `spread`: a topology-oblivious baseline. The core still decides *which* jobs start (queue order, backfill,
  GPU model), then each worker goes to the node with the most free GPUs of that model (ties: name order),
  as kube-scheduler's default LeastAllocated scoring would score one-GPU pods. It never waits for locality
  (preferredWaitSeconds 0): it has none to wait for.

`topology` uses the policy's cost-aware wait (`placement.costAwareWait`, the default) unless `cost_aware=False`:
each job declares `spec.topology.localitySensitivity` = its model's measured spread ÷ packed run time at its
size (Gavel's throughputs: what was measured for jobs like it, not the job's own run) and no duration hint,
so the core estimates durations from running gangs' elapsed times. `queueing` picks the queue order (FIFO,
FairShare, LAS; core.las). Trace priorities (Alibaba's QoS) are job priorities, so higher-priority jobs may
preempt; under LAS, jobs of one priority may preempt across bands. A preempted gang releases its GPUs at
once, keeps the work done (it checkpoints within the grace period) and pays `queueing.restartCostSeconds`
(checkpoint + restore, default 120 s) of unproductive time when it starts again; its attained GPU-time and
preemption count go into its status as the operator's lifecycle writes them. Nothing here reads a clock: the
same input gives the same result.

With `defragment=True` the policy's `rescheduling.defragmentation` is `Act` (its defaults otherwise): the core
may move smaller running gangs out of a node so a blocked gang fits in it; a moved gang loses `MOVE_OVERHEAD_S`
(checkpoint and restart) and keeps the work it had done, as a preempted gang does. Defragmentation and elastic
jobs are not simulated together (the two keep the work done differently), nor are elastic jobs and preemption
(the LAS order, or a trace with more than one priority): a stopped elastic gang's work is not modelled.

Elastic jobs (`elastic_share`, topology and packed policies): a deterministic share of the jobs get
`spec.elastic` around the trace's GPU count (jobs of one GPU per worker only; `elastic_range`: by default
minReplicas = max(1, gpus // 2) and maxReplicas = 2 × gpus), and the core's autoscaling (core.autoscale, the
policy's defaults) starts them smaller, grows and shrinks them.
Run-time model: throughput with n workers is the trace's throughput at its own GPU count × (n / gpus) ** α, with
α = log2(1.8): 90 % scaling efficiency per doubling, as Goyal et al. measured from 8 to 256 GPUs ("Accurate,
Large Minibatch SGD: Training ImageNet in 1 Hour", 2017, ~90 %); the locality effect of the trace (packed vs
spread) is kept. Every resize costs the job RESIZE_PENALTY_S of no progress (torchrun re-rendezvous and
reloading the last checkpoint; an assumption in the "tens of seconds" range, not a measurement).

With `power_mode`, every job runs under the cap that mode settles on for its model's power profile
(`powertrain.sim.power`): its run time grows by the cap's slowdown and its energy (GPUs × draw × run time) is
recorded; without it jobs run uncapped and their energy is recorded all the same.

With `power_budgets` (the policy's `spec.power`), the operator's budget allocation runs whenever the set of
running jobs changes, over the sim's GPU physics (`powertrain.sim.budget`): a job a budget cuts runs under the
lower cap until the next change, and its progress rate, end and energy are recomputed at every cap change (the
work done so far is kept, as for an elastic job's resize). The scheduler's own admission check keeps a gang that
cannot fit a budget even at minimum limits waiting with reason PowerBudget.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from powertrain.api import constants as c
from powertrain.api.policy import (
    ClusterTrainingPolicySpec,
    Defragmentation,
    PlacementPolicy,
    PowerBudgets,
    Queueing,
    Rescheduling,
)
from powertrain.api.trainingjob import TrainingJobStatus
from powertrain.core import conditions as cond
from powertrain.core.autoscale import Resize
from powertrain.core.placement import Placement
from powertrain.core.reschedule import record_defrag_move
from powertrain.core.scheduler import schedule
from powertrain.core.snapshot import ClusterSnapshot, JobKey
from powertrain.sim.budget import BudgetJob, SimBudgets, node_reports
from powertrain.sim.cluster import SimNode
from powertrain.sim.models import JobModels
from powertrain.sim.power import job_power, power_at
from powertrain.sim.runtime import run_seconds
from powertrain.sim.trace import TraceJob

EPOCH: Final = datetime(2026, 1, 1, tzinfo=UTC)
NAMESPACE: Final = "sim"
_COMPLETE: Final = 0  # at one instant, completions free GPUs before submissions and the pass that follows
_SUBMIT: Final = 1
_WAKE: Final = 2  # a locality wait ends: nothing changes but the pass that follows
SCALING_EXPONENT: Final = math.log2(1.8)
"""Throughput ∝ workers ** this: 90 % scaling efficiency per doubling (Goyal et al. 2017)."""
RESIZE_PENALTY_S: Final = 30.0
"""Seconds without progress per resize of an elastic job (re-rendezvous + checkpoint reload; assumed)."""
MOVE_OVERHEAD_S: Final = 60.0
"""What a move for defragmentation costs a gang: checkpoint at SIGTERM, restart, reload (its work is kept)."""


class Policy(StrEnum):
    TOPOLOGY = "topology"
    PACKED = "packed"
    SPREAD = "spread"


@dataclass
class JobRecord:
    job: TraceJob
    name: str
    submit_s: float
    start_s: float | None = None
    end_s: float | None = None
    nodes: tuple[str, ...] = ()
    """Node of each worker (one GPU each), by rank."""
    waiting: str | None = None
    """Why the core left it waiting at the end (jobs that never started)."""
    locality_wait_s: float | None = None
    """When the core first held it back for locality (a Preferred gang waiting for one node)."""
    elastic: bool = False
    resizes: int = 0
    gpu_seconds: float = 0.0
    """GPU-seconds held by earlier runs (the running one's are added at its end; an elastic job's as it goes)."""
    left: float = 1.0
    """Fraction of an elastic job's work still to do."""
    since: float = 0.0
    paused_until: float = 0.0
    status: dict[str, Any] = field(default_factory=dict)
    """Status fields of an elastic or moved job the core reads back (what the operator's status writes keep)."""
    energy_j: float | None = None
    """GPU energy of the run (its model's power profile under the power mode's cap)."""
    cap_watts: int | None = None
    run_start_s: float = 0.0
    """When the current run began (after a move or a preemption, later than start_s)."""
    work_left: float = 1.0
    """Share of the job's work still to do (less than 1 after a move or a preemption)."""
    run: int = 0
    """Runs so far: a completion event of an earlier run (moved or preempted since) is stale."""
    restart_s: float = 0.0
    """Unproductive start of the current run: the restart cost after a preemption, the move overhead after a move."""
    next_restart_s: float = 0.0
    """What the next start costs (set when the gang is stopped)."""
    base_run_s: float = 0.0
    """Run time of the whole job on the current placement (under the power mode's cap)."""
    stopped_s: float | None = None
    preemptions: int = 0
    starts: int = 0
    wider_starts: int = 0
    """Starts on more than one node although the gang fits one node."""
    running: bool = False
    mode_cap: int | None = None
    """The cap of the power mode (the budget may hold the job lower: `cap_watts`)."""
    mode_slowdown: float = 0.0
    slowdown: float = 0.0
    """Slowdown of the current cap (power_at), relative to the default limit."""
    watts_per_gpu: float = 0.0
    plain_run_s: float = 0.0
    """Run time of the whole job on the current placement at the default limit."""
    seg_start: float = 0.0
    """Since when the current cap holds (energy and progress are added up at each cap change)."""
    productive_s: float = 0.0
    """Seconds of progress so far (restart and resize pauses excluded), under whatever caps held."""
    mode_s: float = 0.0
    """The same progress at the mode's cap alone: productive_s / mode_s − 1 is the budgets' slowdown."""
    uncapped_s: float = 0.0
    """The same progress at the default limit."""
    budget_cut_s: float = 0.0
    """Seconds run while a budget held the job below its mode's cap."""
    lowest_cap: int | None = None
    """The lowest cap it ran under."""
    power_wait_s: float = 0.0
    """Seconds waited with reason PowerBudget."""
    power_wait_since: float | None = None

    @property
    def servers(self) -> int:
        return len(set(self.nodes))

    @property
    def packed(self) -> bool:
        return self.servers == 1


@dataclass
class SimResult:
    policy: Policy
    records: list[JobRecord]
    total_gpus: int
    largest_node: int = 0
    events: int = 0
    passes: int = 0
    timeline: list[tuple[float, str, str]] = field(default_factory=list)
    """(time, "submit" | "start" | "complete" | "move", job name) in the order the simulator processed them."""
    moves: int = 0
    gpus_moved: int = 0
    budget_draws: dict[str, float] = field(default_factory=dict)
    """'level/domain' → the highest draw the budgets let it reach, watts (with budgets only)."""
    budgets: dict[str, int] = field(default_factory=dict)
    """'level/domain' → its budget, watts."""
    over_budget_s: float = 0.0
    """Seconds any budgeted domain drew more than its budget (0 unless a budget cannot be held at minimum limits:
    caps apply at once in the simulator)."""


@dataclass(frozen=True)
class Progress:
    """Where a replay is, reported every PROGRESS_EVERY event times (the caller decides whether to show it)."""

    policy: Policy
    events: int
    sim_time_s: float
    finished: int
    jobs: int


PROGRESS_EVERY = 256
"""Event times between progress reports: often enough for a line every few seconds, cheap enough to not matter."""


def at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


@dataclass(frozen=True)
class ElasticRange:
    """The bounds an elastic job gets around the trace's GPU count g: minReplicas = max(1, ⌊g × min_fraction⌋),
    maxReplicas = max(g, ⌊g × max_factor⌋). The default (½ g to 2 g) is narrow; min_fraction 0 means "any
    number of workers from one" (a data-parallel job keeps its global batch by accumulating gradients)."""

    min_fraction: float = 0.5
    max_factor: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_fraction <= 1.0:
            raise ValueError(f"elastic min_fraction={self.min_fraction} is invalid: must be within 0 and 1")
        if not 1.0 <= self.max_factor <= 64.0:
            raise ValueError(f"elastic max_factor={self.max_factor} is invalid: must be within 1 and 64")

    def bounds(self, gpus: int) -> tuple[int, int]:
        return max(1, math.floor(gpus * self.min_fraction)), max(gpus, math.floor(gpus * self.max_factor))


NARROW: Final = ElasticRange()


def _job_object(
    record: JobRecord, required: bool = False, hint: bool = False, elastic: ElasticRange = NARROW
) -> dict[str, Any]:
    job = record.job
    topology: dict[str, Any] = {"level": "node", "mode": "Required" if required else "Preferred"}
    if hint:
        topology["localitySensitivity"] = round(job.sensitivity, 3)
    obj: dict[str, Any] = {
        "apiVersion": c.API_VERSION,
        "kind": "TrainingJob",
        "metadata": {
            "name": record.name,
            "namespace": NAMESPACE,
            "creationTimestamp": at(record.submit_s).isoformat(),
        },
        "spec": {
            "replicas": job.replicas,
            "gpusPerReplica": job.gpus_per_replica,
            "priority": job.priority,
            "topology": topology,
            "template": {"spec": {"containers": [{"name": "trainer", "image": f"sim/{job.model or 'job'}"}]}},
        },
    }
    if record.elastic:
        low, high = elastic.bounds(job.gpus)
        obj["spec"]["elastic"] = {"minReplicas": low, "maxReplicas": high}
    if record.starts:
        # What the lifecycle keeps in the status of a stopped gang: attained service, preemptions, when it stopped
        # (and a moved gang's move record).
        moved = {k: v for k, v in record.status.items() if k in ("moves", "lastMoveTime", "avoidNodes")}
        obj["status"] = {
            **moved,
            "phase": "Queued",
            "submitTime": at(record.submit_s).isoformat(),
            "startTime": at(record.start_s or 0.0).isoformat(),
            "attainedGpuSeconds": round(record.gpu_seconds, 1),
            "preemptions": record.preemptions,
            "conditions": [
                {
                    "type": cond.SCHEDULED,
                    "status": "False",
                    "lastTransitionTime": at(record.stopped_s or 0.0).isoformat(),
                }
            ],
        }
    return obj


def _running_object(
    record: JobRecord, placement: Placement, required: bool, hint: bool, elastic: ElasticRange = NARROW
) -> dict[str, Any]:
    obj = _job_object(record, required, hint, elastic)
    moved = {k: v for k, v in (record.status or {}).items() if k in ("moves", "lastMoveTime", "avoidNodes")}
    obj["status"] = {
        **moved,
        "phase": "Running",
        "placement": {"level": placement.level, "domain": placement.domain, "nodes": list(record.nodes)},
        "submitTime": at(record.submit_s).isoformat(),
        "startTime": at(record.start_s or 0.0).isoformat(),
        "attainedGpuSeconds": round(record.gpu_seconds, 1) if not record.elastic else 0.0,
        "preemptions": record.preemptions,
        "conditions": [
            {"type": cond.SCHEDULED, "status": "True", "lastTransitionTime": at(record.run_start_s).isoformat()}
        ],
        # An elastic job's status fields the core reads back; a moved job's status is only its move record above.
        **(record.status if record.elastic else {}),
    }
    return obj


def spread_nodes(free: dict[str, int], candidates: Sequence[str], gpus: int) -> tuple[str, ...] | None:
    """One worker at a time onto the candidate with the most free GPUs (ties: name order); None if short."""
    heap = [(-free[name], name) for name in candidates if free[name] > 0]
    heapq.heapify(heap)
    out: list[str] = []
    while len(out) < gpus and heap:
        neg, name = heapq.heappop(heap)
        out.append(name)
        if neg + 1 < 0:
            heapq.heappush(heap, (neg + 1, name))
    return tuple(out) if len(out) == gpus else None


class Simulator:
    def __init__(
        self,
        jobs: Sequence[TraceJob],
        nodes: Sequence[SimNode],
        policy: Policy,
        time_scale: float = 1.0,
        preferred_wait_s: int | None = None,
        progress: Callable[[Progress], None] | None = None,
        elastic_share: float = 0.0,
        power_mode: str | None = None,
        elastic_range: ElasticRange = NARROW,
        defragment: bool = False,
        queueing: Queueing | None = None,
        cost_aware: bool | None = None,
        power_budgets: PowerBudgets | None = None,
    ):
        self.power_mode = power_mode
        self.elastic_range = elastic_range
        if not 0.0 <= elastic_share <= 1.0:
            raise ValueError(f"elastic_share={elastic_share} is invalid: must be within 0 and 1")
        if elastic_share and policy is Policy.SPREAD:
            raise ValueError("elastic jobs are simulated with the topology and packed policies, not spread")
        if defragment and elastic_share:
            raise ValueError("defragmentation and elastic jobs are not simulated together")
        self._progress = progress
        self._finished = 0
        if time_scale <= 0:
            raise ValueError(f"time_scale={time_scale} is invalid: must be > 0")
        self.policy = policy
        settings: dict[str, Any] = {}
        if preferred_wait_s is not None:
            settings["preferred_wait_seconds"] = preferred_wait_s
        if cost_aware is not None:
            settings["cost_aware_wait"] = cost_aware
        placement = PlacementPolicy(**settings)
        if policy is Policy.SPREAD:
            placement = PlacementPolicy(preferred_wait_seconds=0)
        rescheduling = Rescheduling(defragmentation=Defragmentation(mode="Act")) if defragment else Rescheduling()
        self.queueing = queueing or Queueing()
        if elastic_share and (self.queueing.order == "LAS" or len({j.priority for j in jobs}) > 1):
            raise ValueError(
                "elastic jobs and preemption (queue order LAS, or a trace with more than one priority) are not "
                "simulated together"
            )
        self.hint = policy is Policy.TOPOLOGY and placement.cost_aware_wait
        self.snapshot = ClusterSnapshot.build(
            nodes=[n.to_object() for n in nodes],
            policy=ClusterTrainingPolicySpec(
                placement=placement,
                rescheduling=rescheduling,
                queueing=self.queueing,
                power=power_budgets or PowerBudgets(),
            ),
        )
        self.budgets = SimBudgets(self.snapshot, {n.name: n.gpus for n in nodes})
        if self.budgets:
            for report in node_reports({n.name: n.gpus for n in nodes}):
                self.snapshot.upsert_telemetry(report)
        self._power_changed = False
        self._over_since: float | None = None
        self._power_waiting: set[str] = set()
        self.models = JobModels(self.snapshot)
        self._wakes: set[float] = set()
        self.free = {n.name: n.gpus for n in nodes}
        self.capacity = dict(self.free)
        self.largest_node = max(self.capacity.values(), default=0)
        self.by_model: dict[str, list[str]] = {}
        for n in sorted(nodes, key=lambda n: n.name):
            self.by_model.setdefault(n.model, []).append(n.name)
        width = max(5, len(str(len(jobs))))
        self.records = [
            JobRecord(job=j, name=f"j{i:0{width}d}", submit_s=j.submit_s * time_scale) for i, j in enumerate(jobs)
        ]
        for i, record in enumerate(self.records):
            # Golden-ratio stride: a share spread evenly over the trace, the same for every run (jobs of one GPU
            # per worker: the elastic model scales workers of one GPU).
            stride = (i * 0.6180339887498949) % 1.0 < elastic_share
            record.elastic = stride and record.job.gpus_per_replica == 1
        self._any_elastic = any(r.elastic for r in self.records)
        self._growable: set[str] = set()
        self.by_name = {r.name: r for r in self.records}
        self.result = SimResult(policy, self.records, sum(self.capacity.values()), self.largest_node)
        self.result.budgets = {f"{level}/{name}": watts for (level, name), watts, _ in self.budgets.domains}
        self._queued = 0
        """Jobs submitted and waiting (not running, not finished)."""
        self._heap: list[tuple[float, int, int, str]] = []
        self._seq = 0
        for r in self.records:
            self._push(r.submit_s, _SUBMIT, r.name)

    def _push(self, when: float, kind: int, name: str) -> None:
        heapq.heappush(self._heap, (when, kind, self._seq, name))
        self._seq += 1

    def run(self) -> SimResult:
        ticks = 0
        while self._heap:
            now = self._heap[0][0]
            ticks += 1
            if self._progress is not None and ticks % PROGRESS_EVERY == 0:
                self._report(now)
            while self._heap and self._heap[0][0] == now:
                _, kind, _, name = heapq.heappop(self._heap)
                self.result.events += 1
                if kind == _COMPLETE:
                    name, _, run = name.partition("#")
                    record = self.by_name[name]
                    # Stale: an earlier run's (moved or preempted since) or an elastic job's earlier estimate.
                    if record.running and int(run or 0) == record.run and record.end_s == now:
                        self._complete(name, now)
                elif kind == _WAKE:
                    self._wakes.discard(now)
                else:
                    record = self.by_name[name]
                    self.models.upsert(_job_object(record, self._required(record), self.hint, self.elastic_range))
                    self.result.timeline.append((now, "submit", name))
                    self._queued += 1
            if self._queued or self._any_elastic:  # with no job waiting (nor any to grow) a pass decides nothing
                self._pass(now)
            if self._power_changed:
                self._replan(now)
        end = self.result.timeline[-1][0] if self.result.timeline else 0.0
        if self._over_since is not None:
            self.result.over_budget_s += end - self._over_since
        for name in self._power_waiting:  # never started: waited until the end
            record = self.by_name[name]
            record.power_wait_s += end - (record.power_wait_since or end)
            record.power_wait_since = None
        if self._progress is not None:
            self._report(self.result.timeline[-1][0] if self.result.timeline else 0.0)
        return self.result

    def _report(self, now: float) -> None:
        assert self._progress is not None
        self._progress(Progress(self.policy, self.result.events, now, self._finished, len(self.records)))

    def _required(self, record: JobRecord) -> bool:
        return self.policy is Policy.PACKED and record.job.gpus <= self.largest_node

    def _stop(self, record: JobRecord, now: float, restart_s: float) -> None:
        """A running gang stops with its work kept (it checkpoints within the grace period) and waits in its
        queue again; its next start first pays `restart_s`. GPUs are freed, later completion events are stale."""
        if not record.running or record.end_s is None:
            raise RuntimeError(f"internal: {record.name} was stopped but is not running")
        self._settle(record, now)
        self.snapshot.remove_job(NAMESPACE, record.name)  # releases the gang's GPUs
        self._release(record, now)
        record.nodes, record.end_s, record.run = (), None, record.run + 1
        record.next_restart_s = restart_s
        record.stopped_s = now
        self._queued += 1

    def _move(self, record: JobRecord, avoid: frozenset[str], now: float) -> None:
        """Stop a running gang to defragment (what the operator's lifecycle does): its GPUs are free, its work kept."""
        self.result.moves += 1
        self.result.gpus_moved += record.job.gpus
        self._stop(record, now, MOVE_OVERHEAD_S)
        status = TrainingJobStatus.model_validate(record.status or {})
        record_defrag_move(status, avoid, at(now), self.snapshot.policy.rescheduling.defragmentation.cooldown_seconds)
        record.status = status.to_wire()
        self.models.upsert(_job_object(record, self._required(record), self.hint, self.elastic_range))
        self.result.timeline.append((now, "move", record.name))

    def _complete(self, name: str, now: float) -> None:
        record = self.by_name[name]
        if record.elastic:
            self._advance(record, now)
        else:
            self._settle(record, now)
        self.snapshot.remove_job(NAMESPACE, name)  # releases the gang's GPUs
        self._release(record, now)
        self._finished += 1
        self.result.timeline.append((now, "complete", name))

    def _release(self, record: JobRecord, now: float) -> None:
        per = record.job.gpus_per_replica
        for node in record.nodes:
            self.free[node] += per
        if not record.elastic:  # an elastic job's GPU-seconds are added up as it goes (its size changes)
            record.gpu_seconds += record.job.gpus * (now - record.run_start_s)
        record.running = False
        self._power_changed = True

    def _preempt(self, name: str, now: float) -> None:
        """Stop a gang the core preempted: it keeps its work (checkpointed) and waits in its queue again."""
        record = self.by_name[name]
        if not record.running:
            return
        record.preemptions += 1
        self._stop(record, now, float(self.queueing.restart_cost_seconds))
        self.models.upsert(_job_object(record, self._required(record), self.hint, self.elastic_range))
        self.result.timeline.append((now, "preempt", name))
        # The victims' pods are gone a moment later: the preemptor's pass.
        self._push(now + 1.0, _WAKE, "")

    def _pass(self, now: float) -> None:
        decisions = schedule(self.snapshot, at(now))
        self.result.passes += 1
        for key in decisions.preemptions:
            self._preempt(key[1], now)
        for key, move in decisions.moves.items():
            self._move(self.by_name[key[1]], move.nodes, now)
        if decisions.moves:
            self._push(now, _WAKE, "")  # a pass right away: the moved gangs and the one they made room for start
        for key, placement in decisions.placements.items():
            record = self.by_name[key[1]]
            nodes = placement.nodes
            if self.policy is Policy.SPREAD and record.job.gpus_per_replica == 1:
                spread = spread_nodes(self.free, self.by_model.get(placement.gpu_model, []), record.job.gpus)
                if spread is None:  # the core only places where the model has room, so this is a bug
                    raise RuntimeError(f"spread placement of {record.name} found fewer free GPUs than the core")
                nodes = spread
            per = record.job.gpus_per_replica
            for node in nodes:
                self.free[node] -= per
                if self.free[node] < 0:
                    raise RuntimeError(f"over-allocation on {node} placing {record.name}")
            self._queued -= 1
            if record.start_s is None:
                record.start_s = now
            record.nodes, record.waiting, record.running = tuple(nodes), None, True
            record.locality_wait_s = None  # as the lifecycle clears status.localityWaitStart
            record.run_start_s = now
            record.starts += 1
            if record.servers > 1 and record.job.gpus <= self.largest_node:
                record.wider_starts += 1
            power = job_power(record.job.model, self.power_mode)
            record.mode_cap, record.mode_slowdown = power.cap_watts, power.slowdown
            self._use_cap(record, power.cap_watts)
            record.seg_start = now
            record.energy_j = record.energy_j or 0.0
            self._power_changed = True
            if record.elastic:
                record.since = now
                record.status = {"requestedReplicas": record.job.gpus, "desiredReplicas": len(nodes)}
                self._estimate(record, now)
            else:
                record.restart_s, record.next_restart_s = record.next_restart_s, 0.0
                record.plain_run_s = run_seconds(record.job, record.servers)
                self._estimate_fixed(record, now)
            self.models.upsert(
                _running_object(record, placement, self._required(record), self.hint, self.elastic_range)
            )
            self.result.timeline.append((now, "start", record.name))
        for resize in decisions.resizes.values():
            self._resize(self.by_name[resize.job[1]], resize, now)
        self._mark_growable(set(decisions.growable), now)
        started_elastic = any(self.by_name[k[1]].elastic for k in decisions.placements)
        if (started_elastic or decisions.resizes) and now not in self._wakes:
            # The operator passes again once its status writes land; autoscaling sees the new gangs from then on.
            self._wakes.add(now)
            self._push(now, _WAKE, "")
        self._count_power_waits(decisions.waiting, now)
        for key, waiting in decisions.waiting.items():
            record = self.by_name[key[1]]
            record.waiting = waiting.message
            if waiting.reason == cond.REASON_WAITING_FOR_LOCALITY and record.locality_wait_s is None:
                # What the operator's status write does: the wait is bounded from this pass on.
                record.locality_wait_s = now
                obj = _job_object(record, self._required(record), self.hint, self.elastic_range)
                obj["status"] = {
                    **(record.status or {}),
                    **obj.get("status", {"phase": "Queued"}),
                    "localityWaitStart": at(now).isoformat(),
                }
                self.models.upsert(obj)
        if decisions.wake_at is not None:
            wake = (decisions.wake_at - EPOCH).total_seconds()
            if wake > now and wake not in self._wakes:
                self._wakes.add(wake)
                self._push(wake, _WAKE, "")

    # --- power: caps, budgets, energy ---------------------------------------------------------------------

    def _use_cap(self, record: JobRecord, cap: int | None) -> None:
        power = power_at(record.job.model, cap)
        record.cap_watts, record.slowdown, record.watts_per_gpu = cap, power.slowdown, power.watts_per_gpu
        if cap is not None and (record.lowest_cap is None or cap < record.lowest_cap):
            record.lowest_cap = cap

    def _account(self, record: JobRecord, now: float, productive: float) -> None:
        """Energy and progress of the segment since the last cap change (the cap held all of it)."""
        span = max(0.0, now - record.seg_start)
        gpus = len(record.nodes) * record.job.gpus_per_replica
        record.energy_j = (record.energy_j or 0.0) + gpus * record.watts_per_gpu * span
        record.productive_s += productive
        record.uncapped_s += productive / (1.0 + record.slowdown)
        record.mode_s += productive * (1.0 + record.mode_slowdown) / (1.0 + record.slowdown)
        if record.cap_watts != record.mode_cap:
            record.budget_cut_s += span
        record.seg_start = now

    def _settle(self, record: JobRecord, now: float) -> None:
        """A gang of fixed size: the work done since the last cap change comes off what is left."""
        productive = max(0.0, now - max(record.seg_start, record.run_start_s + record.restart_s))
        if record.base_run_s:
            record.work_left = max(0.0, record.work_left - productive / record.base_run_s)
        self._account(record, now, productive)

    def _estimate_fixed(self, record: JobRecord, now: float) -> None:
        record.base_run_s = record.plain_run_s * (1.0 + record.slowdown)
        begin = max(now, record.run_start_s + record.restart_s)
        record.end_s = begin + record.work_left * record.base_run_s
        self._push(record.end_s, _COMPLETE, f"{record.name}#{record.run}")

    def _recap(self, record: JobRecord, cap: int | None, now: float) -> None:
        """A budget changed the job's cap: keep the work done, go on at the new rate."""
        if cap == record.cap_watts:
            return
        if record.elastic:
            self._advance(record, now)
            self._use_cap(record, cap)
            self._estimate(record, now)
        else:
            self._settle(record, now)
            self._use_cap(record, cap)
            self._estimate_fixed(record, now)

    def _replan(self, now: float) -> None:
        """The running set changed: every job's cap as the budgets give it now (see powertrain.sim.budget)."""
        self._power_changed = False
        if not self.budgets:
            return
        running = [r for r in self.records if r.running]
        outcome = self.budgets.plan(
            [
                BudgetJob(r.name, r.job.priority, r.job.model, r.mode_cap, r.nodes, r.job.gpus_per_replica)
                for r in running
            ]
        )
        for record in running:
            self._recap(record, outcome.caps[record.name], now)
        over = False
        for (level, name), draw in outcome.draws.items():
            label = f"{level}/{name}"
            self.result.budget_draws[label] = max(self.result.budget_draws.get(label, 0.0), round(draw, 1))
            over = over or draw > self.result.budgets[label] + 1e-6
        if over and self._over_since is None:
            self._over_since = now
        elif not over and self._over_since is not None:
            self.result.over_budget_s += now - self._over_since
            self._over_since = None

    def _count_power_waits(self, waiting: Mapping[JobKey, Any], now: float) -> None:
        """Time each job waits with reason PowerBudget, from the pass that first says so to the first that does not."""
        if not self.budgets:
            return
        now_waiting = {k[1] for k, w in waiting.items() if w.reason == cond.REASON_POWER_BUDGET}
        for name in self._power_waiting - now_waiting:
            record = self.by_name[name]
            record.power_wait_s += now - (record.power_wait_since or now)
            record.power_wait_since = None
        for name in now_waiting - self._power_waiting:
            self.by_name[name].power_wait_since = now
        self._power_waiting = now_waiting

    # --- elastic jobs ------------------------------------------------------------------------------------

    def _rate(self, record: JobRecord) -> float:
        """Fraction of the job done per second at its current size and spread."""
        gpus = record.job.gpus
        size = (len(record.nodes) / gpus) ** SCALING_EXPONENT
        return float(size / (run_seconds(record.job, record.servers) * (1.0 + record.slowdown)))

    def _advance(self, record: JobRecord, now: float) -> None:
        working = max(0.0, now - max(record.since, record.paused_until))
        record.left = max(0.0, record.left - working * self._rate(record))
        record.gpu_seconds = (record.gpu_seconds or 0.0) + len(record.nodes) * (now - record.since)
        self._account(record, now, working)
        record.since = now

    def _estimate(self, record: JobRecord, now: float) -> None:
        record.end_s = max(now, record.paused_until) + record.left / self._rate(record)
        self._push(record.end_s, _COMPLETE, f"{record.name}#{record.run}")

    def _resize(self, record: JobRecord, resize: Resize, now: float) -> None:
        self._advance(record, now)
        self._power_changed = True
        for node in record.nodes:
            self.free[node] += 1
        record.nodes = resize.nodes
        for node in record.nodes:
            self.free[node] -= 1
            if self.free[node] < 0:
                raise RuntimeError(f"over-allocation on {node} resizing {record.name}")
        record.resizes += 1
        record.paused_until = now + RESIZE_PENALTY_S
        stamp = at(now).isoformat()
        status = record.status
        status["desiredReplicas"] = resize.to_replicas
        status["resizes"] = record.resizes
        status["lastResize"] = {"time": stamp, "fromReplicas": resize.from_replicas, "toReplicas": resize.to_replicas}
        if not resize.requested:
            recent = [t for t in status.get("resizeTimes", []) if now - _seconds(t) < 3600]
            status["resizeTimes"] = [*recent, stamp]
        if resize.for_job is not None:
            status["shrunkFor"] = f"{resize.for_job[0]}/{resize.for_job[1]}"
        status.pop("growableSince", None)
        self._growable.discard(record.name)
        self._estimate(record, now)
        self._upsert_running(record)

    def _mark_growable(self, growable: set[tuple[str, str]], now: float) -> None:
        names = {key[1] for key in growable}
        for name in names - self._growable:
            self.by_name[name].status["growableSince"] = at(now).isoformat()
            self._upsert_running(self.by_name[name])
        for name in self._growable - names:
            record = self.by_name[name]
            if record.end_s is not None and record.end_s > now and record.status.pop("growableSince", None):
                self._upsert_running(record)
        self._growable = names

    def _upsert_running(self, record: JobRecord) -> None:
        info = self.snapshot.jobs.get((NAMESPACE, record.name))
        if info is None:
            return  # already completed
        level, domain = info.placement_level or "", info.placement_domain or ""
        placement = Placement(level, domain, "", record.nodes, "")
        self.models.upsert(_running_object(record, placement, self._required(record), self.hint, self.elastic_range))


def _seconds(stamp: str) -> float:
    return (datetime.fromisoformat(stamp) - EPOCH).total_seconds()


def simulate(
    jobs: Sequence[TraceJob],
    nodes: Sequence[SimNode],
    policy: Policy,
    time_scale: float = 1.0,
    preferred_wait_s: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    elastic_share: float = 0.0,
    power_mode: str | None = None,
    elastic_range: ElasticRange = NARROW,
    defragment: bool = False,
    queueing: Queueing | None = None,
    cost_aware: bool | None = None,
    power_budgets: PowerBudgets | None = None,
) -> SimResult:
    return Simulator(
        jobs,
        nodes,
        policy,
        time_scale,
        preferred_wait_s,
        progress,
        elastic_share,
        power_mode,
        elastic_range,
        defragment,
        queueing,
        cost_aware,
        power_budgets,
    ).run()
