"""Every Prometheus metric the operator exports, in one place (the chart's dashboards and tests read this list).

Metrics live in their own registry so a test or a second operator in the same process never collides with
the global one, and `/metrics` shows only what Powertrain documents.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Queue waits go from seconds (an idle cluster) to days (a busy one); placement passes from sub-ms to seconds.
QUEUE_WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400, float("inf"))
DECISION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, float("inf"))


# Every `operation` label of powertrain_reconcile_errors_total: each starts at 0, so the first error of a kind
# is an increase a rate() sees (a counter born at 1 shows no increase) and the panel shows 0, not "No data".
RECONCILE_OPERATIONS = (
    "annotate_job",
    "apply",
    "bind_pod",
    "create_pod",
    "create_service",
    "delete_job",
    "delete_pod",
    "evaluate",
    "pass",
    "translate",
    "patch_finalizers",
    "patch_policy_status",
    "patch_power_limits",
    "patch_status",
    "suspend_job",
)


# The `direction` label of powertrain_job_resizes_total.
RESIZE_DIRECTIONS = ("grow", "shrink")


@dataclass(frozen=True)
class MetricDoc:
    name: str
    kind: str
    labels: tuple[str, ...]
    help: str


METRICS: tuple[MetricDoc, ...] = (
    MetricDoc(
        "powertrain_jobs",
        "gauge",
        ("phase", "queue"),
        "TrainingJobs by phase and queue (0 for every phase of every known queue without such jobs).",
    ),
    MetricDoc(
        "powertrain_queue_wait_seconds",
        "histogram",
        ("queue",),
        "Time from a job's submission to its gang being placed, seconds.",
    ),
    MetricDoc(
        "powertrain_placement_decision_seconds",
        "histogram",
        (),
        "Wall time of one scheduling pass of the core (snapshot in, decisions out), seconds.",
    ),
    MetricDoc("powertrain_gpus_allocated", "gauge", ("model",), "GPUs held by pods on schedulable nodes, by model."),
    MetricDoc("powertrain_gpus_free", "gauge", ("model",), "Healthy GPUs free on schedulable nodes, by model."),
    MetricDoc(
        "powertrain_gpus_fragmented",
        "gauge",
        ("model",),
        "Free GPUs that no waiting gang can use (too scattered or wrong model), by model: every GPU left free "
        "after a pass while a gang waits for room; 0 while none does.",
    ),
    MetricDoc(
        "powertrain_queue_pending_jobs", "gauge", ("queue",), "Jobs waiting to be placed, by queue (0 when none)."
    ),
    MetricDoc("powertrain_gang_restarts_total", "counter", ("queue", "reason"), "Whole-gang restarts, by reason."),
    MetricDoc("powertrain_preemptions_total", "counter", ("queue",), "Gangs preempted by higher-priority jobs."),
    MetricDoc("powertrain_placements_total", "counter", ("queue",), "Gangs placed (bound to nodes)."),
    MetricDoc(
        "powertrain_job_resizes_total",
        "counter",
        ("queue", "direction"),
        "Elastic gangs resized in place, by direction (grow: new ranks bound; shrink: highest ranks removed).",
    ),
    MetricDoc(
        "powertrain_reconcile_errors_total",
        "counter",
        ("operation",),
        (
            "API calls of the operator that failed (the pass retries them), by operation; also `evaluate` (a job "
            "set aside because evaluating it raised) and `translate` (its pods could not be rendered)."
        ),
    ),
    MetricDoc("powertrain_scheduling_passes_total", "counter", (), "Scheduling passes run."),
    MetricDoc("powertrain_leader", "gauge", (), "1 while this replica acts (holds the peering lead), else 0."),
    MetricDoc(
        "powertrain_node_domain_info",
        "gauge",
        ("node", "level", "domain"),
        "Always 1: the node's domain at each topology level of the policy (join key for per-domain views).",
    ),
    MetricDoc(
        "powertrain_power_budget_watts",
        "gauge",
        ("level", "domain"),
        "Power budgets of the ClusterTrainingPolicy, watts: level=cluster for the cluster, else per domain.",
    ),
    MetricDoc(
        "powertrain_power_budget_draw_watts",
        "gauge",
        ("level", "domain"),
        "Measured draw of each budgeted domain (GPUs' reported power plus the policy's per-node overhead), watts.",
    ),
    MetricDoc(
        "powertrain_job_info",
        "gauge",
        ("exported_namespace", "training_job", "queue", "phase"),
        "Always 1 per TrainingJob: its queue and phase (join key for per-queue views of the agents' series).",
    ),
    MetricDoc(
        "powertrain_job_gang_restarts",
        "gauge",
        ("exported_namespace", "training_job"),
        "Gang restarts of a TrainingJob so far (its status.restarts).",
    ),
    MetricDoc(
        "powertrain_job_worker_sm_activity_percent",
        "gauge",
        ("exported_namespace", "training_job", "stat"),
        "SM activity across a running job's workers (each worker: its GPUs' mean), percent: stat=min|median|max "
        "(status.usage; a worker at 0 % shows in min, not hidden in the mean).",
    ),
    MetricDoc(
        "powertrain_job_network_bytes_per_second",
        "gauge",
        ("exported_namespace", "training_job", "direction"),
        "Network rate of a running job, summed over its workers (pod network namespaces, plus InfiniBand of "
        "workers holding whole nodes), bytes/s: direction=rx|tx.",
    ),
    MetricDoc(
        "powertrain_job_storage_bytes_per_second",
        "gauge",
        ("exported_namespace", "training_job", "direction"),
        "Block-storage rate of a running job, summed over its workers' cgroups, bytes/s: direction=read|write.",
    ),
    MetricDoc(
        "powertrain_job_efficiency",
        "gauge",
        ("exported_namespace", "training_job", "verdict"),
        "Always 1 per running TrainingJob: its efficiency verdict (status.efficiency: Healthy, Idle, InputBound, "
        "CommunicationBound, PowerThrottled, ThermalThrottled, MemoryBound, Straggler, Underutilized, Unknown).",
    ),
    MetricDoc(
        "powertrain_job_efficiency_evidence",
        "gauge",
        ("exported_namespace", "training_job", "figure"),
        "The numbers behind a running job's verdict over the policy's efficiency window: figure=sm|tensor|dram "
        "(percent), slowest_ratio (slowest worker / gang median), power_throttled|thermal_throttled (share).",
    ),
    MetricDoc(
        "powertrain_job_reschedule_condition",
        "gauge",
        ("exported_namespace", "training_job", "condition"),
        "1 while a running job has the condition Straggler or Idle (policy spec.rescheduling) set True.",
    ),
    MetricDoc(
        "powertrain_reschedules_total",
        "counter",
        ("queue", "reason"),
        "Rescheduling actions taken: reason=StragglerMoved (gang moved off a node), IdleSuspended or "
        "MovedForDefragmentation.",
    ),
    MetricDoc(
        "powertrain_job_power_cap_watts",
        "gauge",
        ("exported_namespace", "training_job"),
        "Per-GPU power limit a TrainingJob asks for (spec.power.capWatts, else its power mode's cap), watts; "
        "absent for uncapped jobs.",
    ),
    MetricDoc(
        "powertrain_job_cost_estimate",
        "gauge",
        ("exported_namespace", "training_job"),
        "Estimated cost of a TrainingJob so far (status.costEstimate, in the policy's cost.currency): GPU-hours × "
        "price per GPU-hour + GPU energy × price per kWh; absent without prices.",
    ),
)


def metric_names() -> list[str]:
    """Names of every metric family the operator exports (histograms add _bucket/_sum/_count samples)."""
    return [m.name for m in METRICS]


def _doc(name: str) -> MetricDoc:
    return next(m for m in METRICS if m.name == name)


class OperatorMetrics:
    """The live metric objects, bound to one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry

        def gauge(name: str) -> Gauge:
            d = _doc(name)
            return Gauge(name, d.help, d.labels, registry=r)

        def counter(name: str) -> Counter:
            d = _doc(name)
            # prometheus_client appends _total itself; the documented name is the exposed one.
            return Counter(name.removesuffix("_total"), d.help, d.labels, registry=r)

        self.jobs = gauge("powertrain_jobs")
        self.queue_wait = Histogram(
            "powertrain_queue_wait_seconds",
            _doc("powertrain_queue_wait_seconds").help,
            ("queue",),
            buckets=QUEUE_WAIT_BUCKETS,
            registry=r,
        )
        self.decision_time = Histogram(
            "powertrain_placement_decision_seconds",
            _doc("powertrain_placement_decision_seconds").help,
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self.gpus_allocated = gauge("powertrain_gpus_allocated")
        self.gpus_free = gauge("powertrain_gpus_free")
        self.gpus_fragmented = gauge("powertrain_gpus_fragmented")
        self.queue_pending = gauge("powertrain_queue_pending_jobs")
        self.gang_restarts = counter("powertrain_gang_restarts_total")
        self.preemptions = counter("powertrain_preemptions_total")
        self.placements = counter("powertrain_placements_total")
        self.resizes = counter("powertrain_job_resizes_total")
        self.reconcile_errors = counter("powertrain_reconcile_errors_total")
        self.passes = counter("powertrain_scheduling_passes_total")
        self.leader = gauge("powertrain_leader")
        self.node_domain_info = gauge("powertrain_node_domain_info")
        self.power_budget = gauge("powertrain_power_budget_watts")
        self.power_budget_draw = gauge("powertrain_power_budget_draw_watts")
        self.job_info = gauge("powertrain_job_info")
        self.job_gang_restarts = gauge("powertrain_job_gang_restarts")
        self.job_power_cap = gauge("powertrain_job_power_cap_watts")
        self.job_sm_activity = gauge("powertrain_job_worker_sm_activity_percent")
        self.job_network = gauge("powertrain_job_network_bytes_per_second")
        self.job_storage = gauge("powertrain_job_storage_bytes_per_second")
        self.job_cost = gauge("powertrain_job_cost_estimate")
        self.job_efficiency = gauge("powertrain_job_efficiency")
        self.job_efficiency_evidence = gauge("powertrain_job_efficiency_evidence")
        self.job_reschedule_condition = gauge("powertrain_job_reschedule_condition")
        self.reschedules = counter("powertrain_reschedules_total")
        self._published: dict[int, dict[tuple[str, ...], float]] = {}  # by id() of the gauge
        for operation in RECONCILE_OPERATIONS:
            self.reconcile_errors.labels(operation)
        self._known_queues: set[str] = set()

    def start_queues(self, queues: Iterable[str], restart_reasons: Iterable[str]) -> None:
        """Zero series of the per-queue counters and histogram for queues not seen before, so a queue's first
        placement, resize, preemption or restart is an increase and its panels read 0 rather than "No data"."""
        new = set(queues) - self._known_queues
        reasons = tuple(restart_reasons)
        for queue in sorted(new):
            self.placements.labels(queue)
            self.preemptions.labels(queue)
            self.queue_wait.labels(queue)
            for direction in RESIZE_DIRECTIONS:
                self.resizes.labels(queue, direction)
            for reason in reasons:
                self.gang_restarts.labels(queue, reason)
        self._known_queues |= new

    def set_labelled(self, gauge: Gauge, values: dict[tuple[str, ...], float]) -> None:
        """Replace every series of a labelled gauge, so label sets that vanished stop being reported."""
        gauge.clear()
        for labels, value in values.items():
            gauge.labels(*labels).set(value)

    def sync_labelled(self, gauge: Gauge, values: dict[tuple[str, ...], float]) -> None:
        """Like `set_labelled`, but touches only series that changed: for per-job and per-node gauges, where
        clearing and re-adding thousands of series every pass would cost more than the pass itself."""
        published = self._published.get(id(gauge), {})
        for labels in published.keys() - values.keys():
            gauge.remove(*labels)
        for labels, value in values.items():
            if published.get(labels) != value:
                gauge.labels(*labels).set(value)
        self._published[id(gauge)] = dict(values)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
