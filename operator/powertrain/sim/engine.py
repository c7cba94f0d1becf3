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
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from powertrain.api import constants as c
from powertrain.api.policy import ClusterTrainingPolicySpec, PlacementPolicy, Queueing
from powertrain.core import conditions as cond
from powertrain.core.placement import Placement
from powertrain.core.scheduler import schedule
from powertrain.core.snapshot import ClusterSnapshot
from powertrain.sim.cluster import SimNode
from powertrain.sim.runtime import run_seconds
from powertrain.sim.trace import TraceJob

EPOCH: Final = datetime(2026, 1, 1, tzinfo=UTC)
NAMESPACE: Final = "sim"
_COMPLETE: Final = 0  # at one instant, completions free GPUs before submissions and the pass that follows
_SUBMIT: Final = 1
_WAKE: Final = 2  # a locality wait ends: nothing changes but the pass that follows


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
    work_left: float = 1.0
    """Share of the job's work still to do (less than 1 after a preemption)."""
    run_start_s: float = 0.0
    restart_s: float = 0.0
    """Unproductive start of the current run: the restart cost after a preemption."""
    base_run_s: float = 0.0
    """Run time of the whole job on the current placement."""
    stopped_s: float | None = None
    gpu_seconds: float = 0.0
    """GPU-seconds held by earlier runs (the running one's are added at its end)."""
    preemptions: int = 0
    starts: int = 0
    wider_starts: int = 0
    """Starts on more than one node although the gang fits one node."""
    running: bool = False

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
    """(time, "submit" | "start" | "complete", job name) in the order the simulator processed them."""


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


def _job_object(record: JobRecord, required: bool = False, hint: bool = False) -> dict[str, Any]:
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
    if record.starts:
        # What the lifecycle keeps in the status of a stopped gang: attained service, preemptions, when it stopped.
        obj["status"] = {
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


def _running_object(record: JobRecord, placement: Placement, required: bool, hint: bool) -> dict[str, Any]:
    obj = _job_object(record, required, hint)
    obj["status"] = {
        "phase": "Running",
        "placement": {"level": placement.level, "domain": placement.domain, "nodes": list(record.nodes)},
        "submitTime": at(record.submit_s).isoformat(),
        "startTime": at(record.start_s or 0.0).isoformat(),
        "attainedGpuSeconds": round(record.gpu_seconds, 1),
        "preemptions": record.preemptions,
        "conditions": [
            {"type": cond.SCHEDULED, "status": "True", "lastTransitionTime": at(record.run_start_s).isoformat()}
        ],
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
        queueing: Queueing | None = None,
        cost_aware: bool | None = None,
    ):
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
        self.queueing = queueing or Queueing()
        self.hint = policy is Policy.TOPOLOGY and placement.cost_aware_wait
        self.snapshot = ClusterSnapshot.build(
            nodes=[n.to_object() for n in nodes],
            policy=ClusterTrainingPolicySpec(placement=placement, queueing=self.queueing),
        )
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
        self.by_name = {r.name: r for r in self.records}
        self.result = SimResult(policy, self.records, sum(self.capacity.values()), self.largest_node)
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
                    record = self.by_name[name]
                    if record.running and record.end_s == now:  # else a preempted run's stale end
                        self._complete(name, now)
                elif kind == _WAKE:
                    self._wakes.discard(now)
                else:
                    record = self.by_name[name]
                    self.snapshot.upsert_job(_job_object(record, self._required(record), self.hint))
                    self.result.timeline.append((now, "submit", name))
                    self._queued += 1
            if self._queued:  # with no job waiting a pass has nothing to decide
                self._pass(now)
        if self._progress is not None:
            self._report(self.result.timeline[-1][0] if self.result.timeline else 0.0)
        return self.result

    def _report(self, now: float) -> None:
        assert self._progress is not None
        self._progress(Progress(self.policy, self.result.events, now, self._finished, len(self.records)))

    def _required(self, record: JobRecord) -> bool:
        return self.policy is Policy.PACKED and record.job.gpus <= self.largest_node

    def _complete(self, name: str, now: float) -> None:
        record = self.by_name[name]
        self.snapshot.remove_job(NAMESPACE, name)  # releases the gang's GPUs
        self._release(record, now)
        self._finished += 1
        self.result.timeline.append((now, "complete", name))

    def _release(self, record: JobRecord, now: float) -> None:
        per = record.job.gpus_per_replica
        for node in record.nodes:
            self.free[node] += per
        record.gpu_seconds += record.job.gpus * (now - record.run_start_s)
        record.running = False

    def _preempt(self, name: str, now: float) -> None:
        """Stop a gang the core preempted: it keeps its work (checkpointed) and waits in its queue again."""
        record = self.by_name[name]
        if not record.running:
            return
        productive = max(0.0, now - record.run_start_s - record.restart_s)
        record.work_left = max(0.0, record.work_left - productive / record.base_run_s)
        self._release(record, now)
        record.preemptions += 1
        self._queued += 1
        record.stopped_s = now
        record.end_s = None
        self.snapshot.upsert_job(_job_object(record, self._required(record), self.hint))
        self.result.timeline.append((now, "preempt", name))
        # The victims' pods are gone a moment later: the preemptor's pass.
        self._push(now + 1.0, _WAKE, "")

    def _pass(self, now: float) -> None:
        decisions = schedule(self.snapshot, at(now))
        self.result.passes += 1
        for key in decisions.preemptions:
            self._preempt(key[1], now)
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
            record.restart_s = float(self.queueing.restart_cost_seconds) if record.preemptions else 0.0
            record.base_run_s = run_seconds(record.job, record.servers)
            record.end_s = now + record.restart_s + record.work_left * record.base_run_s
            record.starts += 1
            if record.servers > 1 and record.job.gpus <= self.largest_node:
                record.wider_starts += 1
            self.snapshot.upsert_job(_running_object(record, placement, self._required(record), self.hint))
            self._push(record.end_s, _COMPLETE, record.name)
            self.result.timeline.append((now, "start", record.name))
        for key, waiting in decisions.waiting.items():
            record = self.by_name[key[1]]
            record.waiting = waiting.message
            if waiting.reason == cond.REASON_WAITING_FOR_LOCALITY and record.locality_wait_s is None:
                # What the operator's status write does: the wait is bounded from this pass on.
                record.locality_wait_s = now
                obj = _job_object(record, self._required(record), self.hint)
                obj.setdefault("status", {"phase": "Queued"})["localityWaitStart"] = at(now).isoformat()
                self.snapshot.upsert_job(obj)
        if decisions.wake_at is not None:
            wake = (decisions.wake_at - EPOCH).total_seconds()
            if wake > now and wake not in self._wakes:
                self._wakes.add(wake)
                self._push(wake, _WAKE, "")


def simulate(
    jobs: Sequence[TraceJob],
    nodes: Sequence[SimNode],
    policy: Policy,
    time_scale: float = 1.0,
    preferred_wait_s: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    queueing: Queueing | None = None,
    cost_aware: bool | None = None,
) -> SimResult:
    return Simulator(jobs, nodes, policy, time_scale, preferred_wait_s, progress, queueing, cost_aware).run()
