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
    attained_gpu_seconds: float | None = Field(
        default=None,
        ge=0,
        description=(
            "GPU-seconds the job's earlier gangs held (added when a gang stops: preemption, restart, resize, "
            "suspension); the running gang's share is its GPUs × time since condition Scheduled turned True. "
            "The LAS queue order ranks by the sum, so it survives operator restarts."
        ),
    )
    preemptions: int | None = Field(
        default=None, ge=0, description="Times the gang was preempted (by priority or by the LAS queue order)."
    )
    completion_time: datetime | None = Field(default=None, description="When the job succeeded or failed.")
    message: str | None = Field(default=None, description="Human-readable summary of the current state.")
    gpu_utilization: float | None = Field(
        default=None, description="Mean SM activity of the job's GPUs over the last report window, percent."
    )
    power_watts: float | None = Field(default=None, description="Current power draw of the job's GPUs, watts.")
    energy_joules: float | None = Field(default=None, description="Energy used by the job's GPUs so far, joules.")
    gpu_seconds: float | None = Field(default=None, description="GPU-seconds held by the job so far.")


class TrainingJob(ApiModel):
    """A distributed training job: a gang of GPU workers placed topology-aware, all or nothing."""

    kind: Literal["TrainingJob"] = "TrainingJob"
    api_version: Literal["powertrain.dev/v1alpha1"] = "powertrain.dev/v1alpha1"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TrainingJobSpec
    status: TrainingJobStatus | None = None
