"""TrainingJob: a distributed training run, placed and kept alive as one all-or-nothing gang of GPU pods."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StringConstraints

from powertrain.api.common import ApiModel, CelRule, Condition, OpenModel, StatusModel, list_map

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


class Elastic(ApiModel):
    """Bounds within which the autoscaler may resize the gang while it runs."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            "self.minReplicas <= self.maxReplicas",
            "minReplicas must be less than or equal to maxReplicas",
            ".minReplicas",
        ),
    )

    min_replicas: int = Field(ge=1, le=100_000, description="Fewest workers the job can make progress with.")
    max_replicas: int = Field(ge=1, le=100_000, description="Most workers the job can use.")


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


class Power(ApiModel):
    """Energy policy for the job's GPUs."""

    mode: PowerMode = Field(
        default=PowerMode.BALANCED,
        description=(
            "Intent for automatic capping under the cluster's power budgets. Performance: never capped below the "
            "GPU default. Balanced: capped only where measurements show the cap does not slow training. "
            "Efficiency: capped for energy per step, accepting a small slowdown. Not acted on yet: today only "
            "capWatts sets a cap."
        ),
    )
    cap_watts: int | None = Field(
        default=None,
        gt=0,
        le=10_000,
        description=(
            "Per-GPU power limit in watts, requested for every GPU the gang holds (through NodeTelemetry) and "
            "clamped by the node agent to what the GPU allows; withdrawn when the gang stops."
        ),
    )


class RunPolicy(ApiModel):
    """Restart, deadline, clean-up and suspension policy of the gang."""

    backoff_limit: int = Field(
        default=3, ge=0, le=1000, description="Gang restarts allowed before the job is marked Failed."
    )
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, description="Wall-clock seconds the job may run, counted from its first start."
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Delete the job this many seconds after it succeeds or fails."
    )
    suspend: bool = Field(
        default=False, description="True stops the gang and releases its GPUs; the job is kept and resumes on False."
    )


class Container(OpenModel):
    """A container of the pod template; all fields of a core/v1 Container are accepted."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL, description="Container name.")
    image: str = Field(min_length=1, description="Container image.")


class PodSpec(OpenModel):
    """A core/v1 PodSpec; the operator adds GPU resources, worker env, scheduling and restart policy."""

    containers: list[Container] = Field(
        min_length=1,
        max_length=64,
        description="Containers of each worker pod; the first one runs training.",
        json_schema_extra=list_map("name"),
    )


class PodTemplate(OpenModel):
    """A core/v1 PodTemplateSpec for every worker."""

    metadata: dict[str, Any] | None = Field(default=None, description="Labels and annotations for worker pods.")
    spec: PodSpec = Field(description="Pod spec of every worker.")


class TrainingJobSpec(ApiModel):
    """Desired state of a TrainingJob."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            "!has(self.elastic) || (self.elastic.minReplicas <= self.replicas"
            " && self.replicas <= self.elastic.maxReplicas)",
            "replicas must lie within elastic.minReplicas and elastic.maxReplicas",
            ".replicas",
        ),
    )

    replicas: int = Field(default=1, ge=1, le=100_000, description="Number of workers (one pod each).")
    gpus_per_replica: int = Field(default=1, ge=1, le=64, description="GPUs (`nvidia.com/gpu`) each worker pod gets.")
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


class WorkerSpread(StatusModel):
    """One figure across the gang's workers (a worker: one pod; its GPUs averaged)."""

    min: float = Field(description="Lowest worker.")
    median: float = Field(description="Median worker.")
    max: float = Field(description="Highest worker.")
    min_worker: str | None = Field(default=None, description="Pod name of the lowest worker.")


class RateUsage(WorkerSpread):
    """A rate summed over the gang's workers, with the per-worker spread, bytes/s."""

    total: float = Field(description="Sum over the workers, bytes/s.")


class JobUsage(StatusModel):
    """What the gang's workers did over their nodes' last report windows, per worker and summed.

    network includes the node's InfiniBand traffic for a worker that holds every GPU of its node (RDMA bypasses
    the pod's network namespace); for a worker sharing its node that traffic is not attributed (infinibandShared).
    """

    workers: int = Field(default=0, description="Workers with a report.")
    sm_activity_percent: WorkerSpread | None = Field(
        default=None, description="SM activity across workers (NVML utilization where a GPU has no GPM), percent."
    )
    network_rx_bytes_per_second: RateUsage | None = Field(default=None, description="Network receive rate.")
    network_tx_bytes_per_second: RateUsage | None = Field(default=None, description="Network transmit rate.")
    storage_read_bytes_per_second: RateUsage | None = Field(default=None, description="Storage read rate.")
    storage_write_bytes_per_second: RateUsage | None = Field(default=None, description="Storage write rate.")
    infiniband_shared: int = Field(
        default=0, description="Workers whose node's InfiniBand traffic is not attributed (GPUs shared with others)."
    )
    timestamp: datetime | None = Field(default=None, description="End of the newest report window used.")


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

    reports: int = Field(default=0, description="Worker reports in the window.")
    sm_activity_percent: float | None = Field(default=None, description="Mean SM activity, percent.")
    tensor_activity_percent: float | None = Field(default=None, description="Mean tensor-core activity, percent.")
    dram_activity_percent: float | None = Field(default=None, description="Mean DRAM activity, percent.")
    network_bytes_per_second: float | None = Field(default=None, description="Mean rx+tx per worker, bytes/s.")
    storage_read_bytes_per_second: float | None = Field(default=None, description="Mean read per worker, bytes/s.")
    power_draw_percent: float | None = Field(
        default=None, description="Mean power draw as a percent of the enforced power limit."
    )
    power_capped_percent: float | None = Field(
        default=None, description="Enforced power limit as a percent of the GPUs' default limit."
    )
    power_throttled_fraction: float | None = Field(
        default=None, description="Share of reports with SwPowerCap or HwPowerBrakeSlowdown."
    )
    thermal_throttled_fraction: float | None = Field(
        default=None, description="Share of reports with a thermal slowdown (or HwSlowdown)."
    )
    slowest_worker: str | None = Field(default=None, description="Pod with the lowest mean SM activity.")
    slowest_ratio: float | None = Field(
        default=None, description="That worker's SM activity over the gang median (1 = like its peers)."
    )


class JobEfficiency(StatusModel):
    """A verdict on how well the gang uses its GPUs, from the telemetry window (policy spec.efficiency)."""

    verdict: Verdict = Field(description="The first rule that matches, in the policy's documented order.")
    message: str = Field(default="", description="The rule that matched, with its numbers and thresholds.")
    since: datetime = Field(description="When the current verdict was first given.")
    window_seconds: float = Field(description="Length of the telemetry window, seconds.")
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
    observed_generation: int | None = Field(default=None, description="The generation last acted upon.")
    replicas: int | None = Field(default=None, description="Workers that exist (the scale subresource's count).")
    ready_replicas: int | None = Field(default=None, description="Workers that are Ready.")
    gpus: int | None = Field(default=None, description="GPUs held by the gang.")
    selector: str | None = Field(default=None, description="Label selector of the workers (for scaling).")
    placement: Placement | None = Field(default=None, description="Where the gang is placed.")
    restarts: int | None = Field(default=None, description="Gang restarts so far.")
    submit_time: datetime | None = Field(default=None, description="When the job entered its queue.")
    locality_wait_start: datetime | None = Field(
        default=None,
        description=(
            "When a Preferred gang that could have started wider than spec.topology.level first waited for one "
            "domain of that level instead (the wait is bounded from here); cleared when the gang is placed."
        ),
    )
    start_time: datetime | None = Field(default=None, description="When the gang was first placed.")
    completion_time: datetime | None = Field(default=None, description="When the job succeeded or failed.")
    message: str | None = Field(default=None, description="Human-readable summary of the current state.")
    gpu_utilization: float | None = Field(
        default=None, description="Mean SM activity of the job's GPUs over the last report window, percent."
    )
    power_watts: float | None = Field(default=None, description="Current power draw of the job's GPUs, watts.")
    energy_joules: float | None = Field(default=None, description="Energy used by the job's GPUs so far, joules.")
    gpu_seconds: float | None = Field(default=None, description="GPU-seconds held by the job so far.")
    usage: JobUsage | None = Field(
        default=None, description="Per-worker spread and sums of GPU activity, network and storage I/O."
    )
    efficiency: JobEfficiency | None = Field(
        default=None, description="Verdict on the running gang's efficiency, with its evidence (while Running)."
    )
    moves: int | None = Field(
        default=None,
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
