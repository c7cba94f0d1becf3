"""TrainingJob: a distributed training run, placed and kept alive as one all-or-nothing gang of GPU pods."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StringConstraints, model_validator

from powertrain.api.common import ApiModel, CelRule, CelRuleViolation, Condition, OpenModel, StatusModel, list_map
from powertrain.api.limits import (
    INT32_MAX,
    MAX_GPU_WATTS,
    MAX_GPUS,
    MAX_JOULES,
    MAX_RATE,
    MAX_SAFE_INTEGER,
    MAX_SECONDS,
)
from powertrain.api.template_gpus import GpuRuleViolation, check_template_gpus, trainer_gpus

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
QueueName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL)]
GpuModelName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class TopologyLevel(StrEnum):
    NODE = "node"
    NVLINK = "nvlink"
    RACK = "rack"
    SPINE = "spine"
    ZONE = "zone"


TOPOLOGY_ORDER: tuple[str, ...] = tuple(level.value for level in TopologyLevel)
"""Narrowest first: a domain of each level is contained in one domain of the next."""


class TopologyMode(StrEnum):
    REQUIRED = "Required"
    PREFERRED = "Preferred"


class PowerMode(StrEnum):
    PERFORMANCE = "Performance"
    BALANCED = "Balanced"
    EFFICIENCY = "Efficiency"


class Phase(StrEnum):
    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED.value, Phase.FAILED.value})


class ElasticScaler(StrEnum):
    OPERATOR = "Operator"
    EXTERNAL = "External"


class Elastic(ApiModel):
    """Bounds within which the autoscaler may resize the gang while it runs."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            "self.minReplicas <= self.maxReplicas",
            "minReplicas must be less than or equal to maxReplicas",
            ".minReplicas",
        ),
    )

    min_replicas: int = Field(
        ge=1,
        le=100_000,
        description="Fewest workers the job can make progress with: it is shrunk no further, and preempted whole only "
        "when even that is too many.",
    )
    max_replicas: int = Field(ge=1, le=100_000, description="Most workers the job can use: it is grown no further.")
    max_restarts: int = Field(
        default=100,
        ge=0,
        le=100_000,
        description="torchrun's --max-restarts (PET_MAX_RESTARTS): worker-group restarts one gang survives. Each "
        "shrink costs the survivors one restart (growing does not), so leave room for resizes.",
    )
    scaler: ElasticScaler = Field(
        default=ElasticScaler.OPERATOR,
        description="Who sizes the running gang. Operator: spec.replicas is the size it starts at (and a change of "
        "it, e.g. kubectl scale, resizes it in place); the operator also grows it into idle GPUs and shrinks it for "
        "waiting gangs, within min and max. External: an external autoscaler (HPA, KEDA) owns the size through "
        "spec.replicas (the scale subresource); the operator only resizes in place to follow it and never resizes "
        "on its own (a higher-priority gang preempts it whole).",
    )


class Topology(ApiModel):
    """How close together the gang's GPUs must be. The network decides training speed."""

    level: TopologyLevel = Field(
        default=TopologyLevel.RACK,
        description=(
            "Topology level (node, nvlink, rack, spine, zone; narrowest first) the whole gang should fit in. "
            "Domains of each level are defined by node labels in the ClusterTrainingPolicy."
        ),
    )
    mode: TopologyMode = Field(
        default=TopologyMode.PREFERRED,
        description=(
            "Required: the gang is placed inside one domain of `level` or not at all. Preferred: inside one domain "
            "of `level` (the narrowest domain that fits) whenever possible; when none has room now but one could "
            "once running gangs finish, the gang waits for it up to the policy's placement.preferredWaitSeconds "
            "(condition Unschedulable, reason WaitingForLocality), then widens level by level past `level`; a gang "
            "that could never fit inside one domain of `level` widens at once. A gang placed wider than `level` "
            "gets the condition TopologyDegraded=True naming the level used."
        ),
    )
    locality_sensitivity: float | None = Field(
        default=None,
        ge=1,
        le=100,
        description=(
            "How many times longer the gang takes when every worker is on a different node than inside one "
            "domain of `level` (measured: e.g. about 8 for an LSTM language model, 1 for a job that barely "
            "communicates). With the policy's placement.costAwareWait a Preferred gang waits for its level only "
            "while waiting is expected to finish it sooner than starting scattered now; absent: the value "
            "declared by the most recent job with the same image, else 1.5."
        ),
    )


class Power(ApiModel):
    """Energy policy for the job's GPUs."""

    mode: PowerMode = Field(
        default=PowerMode.BALANCED,
        description=(
            "How the operator picks a per-GPU power cap when capWatts is not set. Performance: no automatic cap. "
            "Balanced: the lowest cap (searched online in 50 W steps) whose measured slowdown stays within 2 %. "
            "Efficiency: the same search with a 5 % bound. The slowdown is the job's own published throughput "
            "when its pods publish one, else estimated from SM clock and compute activity; status.power shows the "
            "search. Budgets of the ClusterTrainingPolicy may cap lower in any mode."
        ),
    )
    cap_watts: int | None = Field(
        default=None,
        gt=0,
        le=10_000,
        description=(
            "Per-GPU power limit in watts, requested for every GPU the gang holds (through NodeTelemetry) and "
            "clamped by the node agent to what the GPU allows (an Event says so); withdrawn when the gang stops. "
            "Overrides the mode's search; a power budget may still cap lower."
        ),
    )


class RunPolicy(ApiModel):
    """Restart, deadline, clean-up and suspension policy of the gang."""

    backoff_limit: int = Field(
        default=3, ge=0, le=1000, description="Gang restarts allowed before the job is marked Failed."
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SECONDS,
        description="Wall-clock seconds the job may run, counted from its first start (at most ten years).",
    )
    expected_duration_seconds: int | None = Field(
        default=None,
        ge=1,
        le=31_536_000,
        description=(
            "How long the job is expected to run when placed as asked (a hint, never enforced). The cost-aware "
            "locality wait uses it for this gang's own run time and to estimate when the domains its running "
            "gang holds free up; absent: activeDeadlineSeconds bounds it, else it is estimated from elapsed times."
        ),
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SECONDS,
        description="Delete the job this many seconds after it succeeds or fails (at most ten years).",
    )
    suspend: bool = Field(
        default=False, description="True stops the gang and releases its GPUs; the job is kept and resumes on False."
    )


class EnvVar(OpenModel):
    """A core/v1 EnvVar: `value`, or `valueFrom` (kept as written)."""

    name: str = Field(min_length=1, max_length=4096, description="Variable name.")
    value: str | None = Field(default=None, max_length=1_048_576, description="Its value, a string.")


class Container(OpenModel):
    """A container of the pod template; all fields of a core/v1 Container are accepted.

    The fields the operator merges into (env) or reads are typed, so a map where a list belongs is refused
    instead of being dropped when the worker's env is added."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL, description="Container name.")
    image: str = Field(min_length=1, description="Container image.")
    env: list[EnvVar] | None = Field(
        default=None,
        max_length=10_000,
        description="Environment variables, a list of {name, value} or {name, valueFrom}; the operator adds the "
        "worker's (MASTER_ADDR, RANK, PET_*, …) after them, and a variable set here wins.",
    )
    command: list[str] | None = Field(default=None, max_length=10_000, description="Entrypoint, a list of strings.")
    args: list[str] | None = Field(default=None, max_length=10_000, description="Arguments, a list of strings.")


class Affinity(OpenModel):
    """A core/v1 Affinity. nodeAffinity is honoured by gang placement; pod (anti-)affinity is refused."""

    pod_affinity: dict[str, Any] | None = Field(
        default=None, description="Refused: gang placement does not evaluate it (spec.topology keeps a gang close)."
    )
    pod_anti_affinity: dict[str, Any] | None = Field(
        default=None, description="Refused: gang placement does not evaluate it (spec.topology keeps a gang close)."
    )


class PodSpec(OpenModel):
    """A core/v1 PodSpec; the operator adds GPU resources, worker env, scheduling and restart policy.

    The operator owns scheduling: fields that would let a worker go around gang placement are refused
    (nodeName, another schedulerName, schedulingGates) and fields placement would silently ignore are refused
    too (pod affinity and anti-affinity, topologySpreadConstraints). nodeSelector, nodeAffinity and tolerations are
    honoured: they narrow the nodes the gang may use."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            "!has(self.nodeName)",
            "nodeName must not be set: the operator places the whole gang and binds every worker itself "
            "(use nodeSelector or nodeAffinity to restrict the nodes)",
            ".nodeName",
        ),
        CelRule(
            "!has(self.schedulerName) || self.schedulerName == 'powertrain'",
            "schedulerName must be unset or 'powertrain': the operator schedules the gang itself, another scheduler "
            "would place its workers one by one",
            ".schedulerName",
        ),
        CelRule(
            "!has(self.affinity) || (!has(self.affinity.podAffinity) && !has(self.affinity.podAntiAffinity))",
            "affinity.podAffinity and affinity.podAntiAffinity are not supported: gang placement does not evaluate "
            "them (spec.topology keeps the gang together; nodeAffinity is honoured)",
            ".affinity",
        ),
        CelRule(
            "!has(self.schedulingGates)",
            "schedulingGates are not supported: the operator binds the whole gang as soon as it is placed",
            ".schedulingGates",
        ),
        CelRule(
            "!has(self.topologySpreadConstraints)",
            "topologySpreadConstraints are not supported: gang placement does not evaluate them (spec.topology "
            "decides how close the workers are)",
            ".topologySpreadConstraints",
        ),
    )

    containers: list[Container] = Field(
        min_length=1,
        max_length=64,
        description="Containers of each worker pod; the first one runs training.",
        json_schema_extra=list_map("name"),
    )
    node_name: str | None = Field(default=None, description="Refused: the operator binds every worker itself.")
    scheduler_name: str | None = Field(
        default=None, description="Unset or 'powertrain' (the operator sets it); any other scheduler is refused."
    )
    affinity: Affinity | None = Field(
        default=None, description="Node affinity narrows the nodes the gang may use; pod (anti-)affinity is refused."
    )
    scheduling_gates: list[dict[str, Any]] | None = Field(
        default=None, description="Refused: the operator binds the whole gang as soon as it is placed."
    )
    topology_spread_constraints: list[dict[str, Any]] | None = Field(
        default=None, description="Refused: gang placement does not evaluate them."
    )


class PodTemplate(OpenModel):
    """A core/v1 PodTemplateSpec for every worker."""

    metadata: dict[str, Any] | None = Field(default=None, description="Labels and annotations for worker pods.")
    spec: PodSpec = Field(description="Pod spec of every worker.")


def _no_default(schema: dict[str, Any]) -> None:
    # Absent must stay absent on the server: the model derives the value from the template.
    schema.pop("default", None)


class TrainingJobSpec(ApiModel):
    """Desired state of a TrainingJob."""

    @model_validator(mode="before")
    @classmethod
    def _gpus_from_template(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "gpusPerReplica" in data or "gpus_per_replica" in data:
            return data
        template = data.get("template")
        pod_spec = template.get("spec") if isinstance(template, dict) else None
        try:
            gpus = trainer_gpus(pod_spec)
        except GpuRuleViolation:
            return data  # reported by _check_template_gpus with the field
        return {**data, "gpusPerReplica": gpus} if gpus is not None else data

    @model_validator(mode="after")
    def _check_template_gpus(self) -> TrainingJobSpec:
        try:
            check_template_gpus(
                self.gpus_per_replica, "gpus_per_replica" in self.model_fields_set, self.template.spec.to_wire()
            )
        except GpuRuleViolation as exc:
            raise CelRuleViolation(exc.message, exc.field) from None
        return self

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            "!has(self.elastic) || (self.elastic.minReplicas <= self.replicas"
            " && self.replicas <= self.elastic.maxReplicas)",
            "replicas must lie within elastic.minReplicas and elastic.maxReplicas",
            ".replicas",
        ),
    )

    replicas: int = Field(default=1, ge=1, le=100_000, description="Number of workers (one pod each).")
    gpus_per_replica: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "GPUs (`nvidia.com/gpu`) each worker pod gets, on its first container. Absent: the first container's "
            "own nvidia.com/gpu, else 1. A template that asks for a different number, or GPUs in another "
            "container, is refused (condition Invalid) rather than overwritten."
        ),
        json_schema_extra=_no_default,
    )
    elastic: Elastic | None = Field(default=None, description="Elastic bounds; absent means a fixed size.")
    gpu_model: list[GpuModelName] | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="Acceptable GPU models, matched against the node label `nvidia.com/gpu.product`.",
    )
    topology: Topology = Field(default_factory=Topology, description="Placement locality of the gang.")
    priority: int = Field(
        default=0,
        ge=-1_000_000,
        le=1_000_000,
        description="Higher runs first and may preempt lower-priority gangs; equal priority never preempts.",
    )
    queue: QueueName = Field(default="default", description="Queue (from the ClusterTrainingPolicy) to admit into.")
    power: Power = Field(default_factory=Power, description="Energy policy.")
    master_port: int = Field(default=23456, ge=1, le=65535, description="Rendezvous port (MASTER_PORT).")
    template: PodTemplate = Field(description="Pod template of every worker.")
    run_policy: RunPolicy = Field(default_factory=RunPolicy, description="Restart and lifecycle policy.")


class Placement(StatusModel):
    """Where the gang runs."""

    level: str | None = Field(default=None, description="Topology level of the domain the gang fits in.")
    domain: str | None = Field(default=None, description="The domain (label value) holding the whole gang.")
    nodes: list[str] = Field(default_factory=list, description="Nodes the workers are bound to, by rank.")


class Resize(StatusModel):
    """One change of a running elastic gang's size."""

    time: datetime | None = Field(default=None, description="When it was decided.")
    from_replicas: int | None = Field(default=None, ge=0, le=INT32_MAX, description="Workers before.")
    to_replicas: int | None = Field(default=None, ge=0, le=INT32_MAX, description="Workers after.")
    reason: str | None = Field(default=None, description="Why, in words.")


class WorkerSpread(StatusModel):
    """One figure across the gang's workers (a worker: one pod; its GPUs averaged)."""

    min: float = Field(default=0.0, ge=0, le=MAX_RATE, description="Lowest worker.")
    median: float = Field(default=0.0, ge=0, le=MAX_RATE, description="Median worker.")
    max: float = Field(default=0.0, ge=0, le=MAX_RATE, description="Highest worker.")
    min_worker: str | None = Field(default=None, description="Pod name of the lowest worker.")


class RateUsage(WorkerSpread):
    """A rate summed over the gang's workers, with the per-worker spread, bytes/s."""

    total: float = Field(default=0.0, ge=0, le=MAX_RATE, description="Sum over the workers, bytes/s.")


class JobUsage(StatusModel):
    """What the gang's workers did over their nodes' last report windows, per worker and summed.

    network includes the node's InfiniBand traffic for a worker that holds every GPU of its node (RDMA bypasses
    the pod's network namespace); for a worker sharing its node that traffic is not attributed (infinibandShared).
    """

    workers: int = Field(default=0, ge=0, le=INT32_MAX, description="Workers with a report.")
    sm_activity_percent: WorkerSpread | None = Field(
        default=None, description="SM activity across workers (NVML utilization where a GPU has no GPM), percent."
    )
    network_rx_bytes_per_second: RateUsage | None = Field(default=None, description="Network receive rate.")
    network_tx_bytes_per_second: RateUsage | None = Field(default=None, description="Network transmit rate.")
    storage_read_bytes_per_second: RateUsage | None = Field(default=None, description="Storage read rate.")
    storage_write_bytes_per_second: RateUsage | None = Field(default=None, description="Storage write rate.")
    infiniband_shared: int = Field(
        default=0,
        ge=0,
        le=INT32_MAX,
        description="Workers whose node's InfiniBand traffic is not attributed (GPUs shared with others).",
    )
    timestamp: datetime | None = Field(default=None, description="End of the newest report window used.")


class JobPowerStatus(StatusModel):
    """The power mode's search for this job, kept in status so it survives operator restarts."""

    mode: str | None = Field(default=None, description="The mode the search ran for (a change restarts it).")
    state: str | None = Field(
        default=None,
        description=(
            "Off (Performance: no automatic cap), Explicit (spec.power.capWatts), Baseline (measuring uncapped), "
            "Exploring (stepping the cap down), Settled (the lowest cap within the bound found)."
        ),
    )
    cap_watts: int | None = Field(
        default=None, ge=0, le=MAX_GPU_WATTS, description="Per-GPU cap the mode asks for now; absent: none."
    )
    since: datetime | None = Field(default=None, description="When the current cap (or state) took effect.")
    reason: str | None = Field(default=None, description="Why the search is where it is, with the numbers.")
    signal: str | None = Field(
        default=None, description="What the slowdown is measured from: throughput (the job's own) or clock."
    )
    baseline: float | None = Field(
        default=None,
        ge=0,
        le=MAX_RATE,
        description="The signal measured without a cap (throughput per second, or SM clock MHz).",
    )
    baseline_compute: float | None = Field(
        default=None, ge=0, le=1, description="Compute-bound fraction of the phase measured with the baseline (0-1)."
    )
    slowdown_percent: float | None = Field(
        default=None, ge=-1000, le=1000, description="Slowdown measured at the current cap, %."
    )
    budget_cap_watts: int | None = Field(
        default=None,
        ge=0,
        le=MAX_GPU_WATTS,
        description="Lowest per-GPU limit a power budget imposes on the job's GPUs now; absent: none.",
    )
    throughput_missing_since: datetime | None = Field(
        default=None,
        description=(
            "While the search measures with the job's throughput: when a window under the current cap first came "
            "without it (the job stopped publishing); after 2 minutes the search measures with the SM clock."
        ),
    )


class Verdict(StrEnum):
    UNKNOWN = "Unknown"
    HEALTHY = "Healthy"
    IDLE = "Idle"
    INPUT_BOUND = "InputBound"
    COMMUNICATION_BOUND = "CommunicationBound"
    POWER_THROTTLED = "PowerThrottled"
    THERMAL_THROTTLED = "ThermalThrottled"
    MEMORY_BOUND = "MemoryBound"
    STRAGGLER = "Straggler"
    UNDERUTILIZED = "Underutilized"


class EfficiencyEvidence(StatusModel):
    """The numbers a verdict rests on: means over the window's reports (GPUs averaged per worker)."""

    reports: int = Field(default=0, ge=0, le=INT32_MAX, description="Worker reports in the window.")
    sm_activity_percent: float | None = Field(default=None, ge=0, le=100, description="Mean SM activity, percent.")
    tensor_activity_percent: float | None = Field(
        default=None, ge=0, le=100, description="Mean tensor-core activity, percent."
    )
    dram_activity_percent: float | None = Field(default=None, ge=0, le=100, description="Mean DRAM activity, percent.")
    network_bytes_per_second: float | None = Field(
        default=None, ge=0, le=MAX_RATE, description="Mean rx+tx per worker, bytes/s."
    )
    storage_read_bytes_per_second: float | None = Field(
        default=None, ge=0, le=MAX_RATE, description="Mean read per worker, bytes/s."
    )
    power_draw_percent: float | None = Field(
        default=None, ge=0, le=1000, description="Mean power draw as a percent of the enforced power limit."
    )
    power_capped_percent: float | None = Field(
        default=None, ge=0, le=1000, description="Enforced power limit as a percent of the GPUs' default limit."
    )
    power_throttled_fraction: float | None = Field(
        default=None, ge=0, le=1, description="Share of reports with SwPowerCap or HwPowerBrakeSlowdown."
    )
    thermal_throttled_fraction: float | None = Field(
        default=None, ge=0, le=1, description="Share of reports with a thermal slowdown (or HwSlowdown)."
    )
    slowest_worker: str | None = Field(default=None, description="Pod with the lowest mean SM activity.")
    slowest_ratio: float | None = Field(
        default=None, ge=0, le=1e6, description="That worker's SM activity over the gang median (1 = like its peers)."
    )


class JobEfficiency(StatusModel):
    """A verdict on how well the gang uses its GPUs, from the telemetry window (policy spec.efficiency)."""

    verdict: Verdict = Field(description="The first rule that matches, in the policy's documented order.")
    message: str = Field(default="", description="The rule that matched, with its numbers and thresholds.")
    since: datetime = Field(description="When the current verdict was first given.")
    window_seconds: float = Field(ge=0, le=MAX_SECONDS, description="Length of the telemetry window, seconds.")
    evidence: EfficiencyEvidence = Field(default_factory=EfficiencyEvidence, description="The numbers.")
    straggler: str | None = Field(default=None, description="Pod now straggling (below stragglerRatio × median).")
    straggler_node: str | None = Field(default=None, description="Node of that pod.")
    straggler_since: datetime | None = Field(default=None, description="Since when that pod straggles.")
    idle_since: datetime | None = Field(default=None, description="Since when the gang is idle.")


class AvoidedNode(StatusModel):
    """A node a moved gang keeps off for a while (a straggler ran there)."""

    node: str = Field(description="Node name.")
    reason: str = Field(description="Why it is avoided.")
    since: datetime = Field(description="When the gang was moved off it.")
    until: datetime = Field(description="When it may be used again.")


class TrainingJobStatus(StatusModel):
    """Observed state of a TrainingJob."""

    phase: Phase | None = Field(default=None, description="Pending, Queued, Running, Succeeded, Failed or Suspended.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Standard conditions.", json_schema_extra=list_map("type")
    )
    observed_generation: int | None = Field(
        default=None, ge=0, le=MAX_SAFE_INTEGER, description="The generation last acted upon."
    )
    replicas: int | None = Field(
        default=None, ge=0, le=INT32_MAX, description="Workers that exist (the scale subresource's count)."
    )
    ready_replicas: int | None = Field(default=None, ge=0, le=INT32_MAX, description="Workers that are Ready.")
    gpus: int | None = Field(default=None, ge=0, le=MAX_GPUS, description="GPUs held by the gang.")
    selector: str | None = Field(default=None, description="Label selector of the workers (for scaling).")
    placement: Placement | None = Field(default=None, description="Where the gang is placed.")
    restarts: int | None = Field(default=None, ge=0, le=INT32_MAX, description="Gang restarts so far.")
    desired_replicas: int | None = Field(
        default=None,
        ge=0,
        le=INT32_MAX,
        description="Elastic jobs: workers the gang is being sized to (equals the placement's size except while a "
        "requested grow waits for room).",
    )
    requested_replicas: int | None = Field(
        default=None,
        ge=0,
        le=INT32_MAX,
        description="Elastic jobs: the spec.replicas last acted on; a different spec.replicas is a scale request.",
    )
    last_resize: Resize | None = Field(default=None, description="Elastic jobs: the last resize of the gang.")
    resizes: int | None = Field(
        default=None, ge=0, le=INT32_MAX, description="Elastic jobs: resizes of the gang so far."
    )
    resize_times: list[datetime] | None = Field(
        default=None,
        max_length=3600,
        description="Elastic jobs: when the operator's own resizes of the last hour happened (for the rate limit).",
    )
    growable_since: datetime | None = Field(
        default=None,
        description="Elastic jobs: since when idle GPUs the gang could grow into have been seen; cleared when none.",
    )
    shrunk_for: str | None = Field(
        default=None,
        description="Elastic jobs: the gang it was last shrunk for; it does not grow while that gang waits.",
    )
    submit_time: datetime | None = Field(default=None, description="When the job entered its queue.")
    locality_wait_start: datetime | None = Field(
        default=None,
        description=(
            "When a Preferred gang that could have started wider than spec.topology.level first waited for one "
            "domain of that level instead (the wait is bounded from here); cleared when the gang is placed."
        ),
    )
    start_time: datetime | None = Field(default=None, description="When the gang was first placed.")
    attained_gpu_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_JOULES,
        allow_inf_nan=False,
        description=(
            "GPU-seconds the job's earlier gangs held (added when a gang stops: preemption, restart, resize, "
            "suspension); the running gang's share is its GPUs × time since condition Scheduled turned True. "
            "The LAS queue order ranks by the sum, so it survives operator restarts."
        ),
    )
    preemptions: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SAFE_INTEGER,
        description="Times the gang was preempted (by priority or by the LAS queue order).",
    )
    completion_time: datetime | None = Field(default=None, description="When the job succeeded or failed.")
    message: str | None = Field(default=None, description="Human-readable summary of the current state.")
    gpu_utilization: float | None = Field(
        default=None,
        ge=0,
        le=100,
        allow_inf_nan=False,
        description="Mean SM activity of the job's GPUs over the last report window, percent.",
    )
    power_watts: float | None = Field(
        default=None,
        ge=0,
        le=MAX_GPUS * MAX_GPU_WATTS,
        allow_inf_nan=False,
        description="Current power draw of the job's GPUs, watts.",
    )
    energy_joules: float | None = Field(
        default=None,
        ge=0,
        le=MAX_JOULES,
        allow_inf_nan=False,
        description="Energy used by the job's GPUs so far, joules.",
    )
    gpu_seconds: float | None = Field(
        default=None, ge=0, le=MAX_JOULES, allow_inf_nan=False, description="GPU-seconds held by the job so far."
    )
    usage: JobUsage | None = Field(
        default=None, description="Per-worker spread and sums of GPU activity, network and storage I/O."
    )
    usage_counted_through: datetime | None = Field(
        default=None,
        description="End of the latest report window added to energyJoules and gpuSeconds (none is added twice).",
    )
    power: JobPowerStatus | None = Field(default=None, description="Power mode search and budget caps.")
    cost_estimate: float | None = Field(
        default=None,
        ge=0,
        le=1e15,
        description=(
            "Estimated cost so far in the policy's cost.currency: gpuSeconds / 3600 × the GPU model's price per "
            "GPU-hour + energyJoules / 3.6e6 × the price per kWh (parts without a price are left out). An estimate: "
            "CPUs, storage, network and non-GPU power are not in it."
        ),
    )
    efficiency: JobEfficiency | None = Field(
        default=None, description="Verdict on the running gang's efficiency, with its evidence (while Running)."
    )
    moves: int | None = Field(
        default=None,
        ge=0,
        le=INT32_MAX,
        description="Times the gang was moved off a straggling node or for defragmentation (not counted as restarts).",
    )
    last_move_time: datetime | None = Field(
        default=None, description="When the gang was last moved for defragmentation (its cool-down counts from it)."
    )
    avoid_nodes: list[AvoidedNode] = Field(
        default_factory=list,
        max_length=64,
        description="Nodes this job keeps off after a straggler move, until the given time.",
        json_schema_extra=list_map("node"),
    )


class TrainingJob(ApiModel):
    """A distributed training job: a gang of GPU workers placed topology-aware, all or nothing."""

    kind: Literal["TrainingJob"] = "TrainingJob"
    api_version: Literal["powertrain.dev/v1alpha1"] = "powertrain.dev/v1alpha1"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TrainingJobSpec
    status: TrainingJobStatus | None = None
