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
    cap_watts: int | None = Field(default=None, description="Per-GPU cap the mode asks for now; absent: none.")
    since: datetime | None = Field(default=None, description="When the current cap (or state) took effect.")
    reason: str | None = Field(default=None, description="Why the search is where it is, with the numbers.")
    signal: str | None = Field(
        default=None, description="What the slowdown is measured from: throughput (the job's own) or clock."
    )
    baseline: float | None = Field(
        default=None, description="The signal measured without a cap (throughput per second, or SM clock MHz)."
    )
    baseline_compute: float | None = Field(
        default=None, description="Compute-bound fraction of the phase measured with the baseline (0-1)."
    )
    slowdown_percent: float | None = Field(default=None, description="Slowdown measured at the current cap, %.")
    budget_cap_watts: int | None = Field(
        default=None, description="Lowest per-GPU limit a power budget imposes on the job's GPUs now; absent: none."
    )


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
    usage_counted_through: datetime | None = Field(
        default=None,
        description="End of the latest report window added to energyJoules and gpuSeconds (none is added twice).",
    )
    power: JobPowerStatus | None = Field(default=None, description="Power mode search and budget caps.")
    cost_estimate: float | None = Field(
        default=None,
        description=(
            "Estimated cost so far in the policy's cost.currency: gpuSeconds / 3600 × the GPU model's price per "
            "GPU-hour + energyJoules / 3.6e6 × the price per kWh (parts without a price are left out). An estimate: "
            "CPUs, storage, network and non-GPU power are not in it."
        ),
    )


class TrainingJob(ApiModel):
    """A distributed training job: a gang of GPU workers placed topology-aware, all or nothing."""

    kind: Literal["TrainingJob"] = "TrainingJob"
    api_version: Literal["powertrain.dev/v1alpha1"] = "powertrain.dev/v1alpha1"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TrainingJobSpec
    status: TrainingJobStatus | None = None
