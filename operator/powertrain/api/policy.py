"""ClusterTrainingPolicy: the cluster's topology map, power budgets, queues and rescheduling thresholds.

The defaults follow the labels NVIDIA Topograph and the GPU Operator write, so a real cluster works with no
policy object at all; the operator uses the policy named `default` when present.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from powertrain.api import constants as c
from powertrain.api.common import ApiModel, Condition, StatusModel, list_map
from powertrain.api.trainingjob import DNS_LABEL, QueueName, TopologyLevel

DEFAULT_POLICY_NAME = "default"

LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=317)]


class TopologyLevelSpec(ApiModel):
    """One level of the network hierarchy and the node label whose values name its domains."""

    name: TopologyLevel = Field(description="Level name: node, nvlink, rack, spine or zone.")
    node_label: LabelKey = Field(description="Node label whose value identifies the node's domain at this level.")
    alternate_labels: list[LabelKey] = Field(
        default_factory=list,
        max_length=8,
        description="Labels tried in order when `nodeLabel` is absent on a node.",
    )


def default_topology_levels() -> list[TopologyLevelSpec]:
    return [
        TopologyLevelSpec(name=TopologyLevel.NODE, node_label=c.HOSTNAME_LABEL),
        TopologyLevelSpec(
            name=TopologyLevel.NVLINK,
            node_label=c.NVLINK_DOMAIN_LABEL,
            alternate_labels=[c.NVLINK_CLIQUE_LABEL],
        ),
        TopologyLevelSpec(name=TopologyLevel.RACK, node_label=c.RACK_LABEL),
        TopologyLevelSpec(name=TopologyLevel.SPINE, node_label=c.SPINE_LABEL),
        TopologyLevelSpec(name=TopologyLevel.ZONE, node_label=c.ZONE_LABEL),
    ]


class DomainBudget(ApiModel):
    """A power budget for one topology domain."""

    domain: str = Field(min_length=1, max_length=253, description="Domain name (the label value).")
    watts: int = Field(gt=0, description="Power budget of that domain, watts.")


class PowerBudgets(ApiModel):
    """Power budgets the operator keeps GPU power caps under."""

    cluster_watts: int | None = Field(default=None, gt=0, description="Budget for all GPUs in the cluster, watts.")
    budget_level: TopologyLevel = Field(
        default=TopologyLevel.RACK, description="Level whose domains get `domainWatts` (usually rack)."
    )
    domain_watts: int | None = Field(
        default=None, gt=0, description="Default budget of every domain of `budgetLevel`, watts."
    )
    overrides: list[DomainBudget] = Field(
        default_factory=list,
        max_length=10_000,
        description="Per-domain budgets that replace `domainWatts`.",
        json_schema_extra=list_map("domain"),
    )


class QueueSpec(ApiModel):
    """A queue: jobs name it in spec.queue; it caps GPUs and shares idle capacity by weight."""

    name: QueueName = Field(description="Queue name that TrainingJobs refer to in spec.queue.")
    gpu_quota: int | None = Field(
        default=None, ge=0, description="Most GPUs the queue's running jobs may hold; absent means unlimited."
    )
    weight: int = Field(default=1, ge=1, le=1000, description="Share of idle capacity when queues compete.")


def default_queues() -> list[QueueSpec]:
    return [QueueSpec(name="default")]


class Rescheduling(ApiModel):
    """When the operator moves gangs away from sick GPUs, stragglers and idle reservations."""

    unhealthy_gpu: bool = Field(default=True, description="Restart gangs off GPUs the agent reports unhealthy.")
    straggler_ratio: float = Field(
        default=0.7,
        gt=0,
        le=1,
        description="A worker whose GPU activity stays below this fraction of its gang's median is a straggler.",
    )
    straggler_window_seconds: int = Field(
        default=600, ge=30, description="How long a worker must straggle before the gang is moved."
    )
    idle_utilization_percent: float = Field(
        default=5.0, ge=0, le=100, description="A gang whose GPUs stay below this SM activity is idle."
    )
    idle_window_seconds: int = Field(
        default=1800, ge=60, description="How long a gang must stay idle before it is reported (and may be suspended)."
    )
    suspend_idle: bool = Field(
        default=False, description="Suspend idle gangs (releasing GPUs) instead of only reporting."
    )


class Preemption(ApiModel):
    """Priority preemption: whole gangs only, gracefully, never of equal or higher priority."""

    enabled: bool = Field(default=True, description="Allow higher-priority gangs to preempt lower-priority ones.")
    grace_period_seconds: int = Field(
        default=30, ge=0, le=3600, description="SIGTERM-to-SIGKILL time given to preempted workers to checkpoint."
    )


class PlacementPolicy(ApiModel):
    """How long gangs wait for locality before they are placed wider than they asked for."""

    preferred_wait_seconds: int = Field(
        default=86_400,
        ge=0,
        le=86_400,
        description=(
            "The longest a `Preferred` gang that cannot fit inside one domain of its `spec.topology.level` right "
            "now, but could once running gangs finish, waits for such a domain (one is kept for it) before it is "
            "placed wider, level by level; with costAwareWait it waits only while that is expected to pay. Counted "
            "from the first pass that held it back (status.localityWaitStart). 0: never wait. A gang that could "
            "never fit inside one domain of its level is placed wider at once."
        ),
    )
    cost_aware_wait: bool = Field(
        default=True,
        description=(
            "A Preferred gang waits for its level only while that is expected to finish it sooner than starting "
            "scattered now: expected wait for a domain of its level (running gangs' expected remaining times) < "
            "its run time × (slowdown at the width it would get now − 1), from spec.topology.localitySensitivity "
            "and spec.runPolicy.expectedDurationSeconds (or estimates); preferredWaitSeconds stays the cap. "
            "False: every such gang waits the whole preferredWaitSeconds. The estimate and the decision are in "
            "the job's Unschedulable / TopologyDegraded message."
        ),
    )


class QueueOrder(StrEnum):
    FIFO = "FIFO"
    FAIR_SHARE = "FairShare"
    LAS = "LAS"


class Queueing(ApiModel):
    """In which order waiting jobs of one priority are considered, and LAS's thresholds and preemption bounds."""

    order: QueueOrder = Field(
        default=QueueOrder.FAIR_SHARE,
        description=(
            "Within one priority: FIFO (submission order across all queues), FairShare (queues take turns by "
            "weighted GPU share, submission order inside a queue) or LAS (least attained service: jobs in a lower "
            "band of attained GPU-time first, fair share and submission order inside a band; a waiting job may "
            "preempt gangs of its priority in a higher band, within the bounds below)."
        ),
    )
    las_thresholds_gpu_hours: list[Annotated[float, Field(gt=0, le=1_000_000)]] = Field(
        default_factory=lambda: [1.0, 16.0],
        min_length=1,
        max_length=8,
        description="LAS band limits in attained GPU-hours (sorted before use): band 0 below the lowest, and so on.",
    )
    restart_cost_seconds: int = Field(
        default=120,
        ge=0,
        le=86_400,
        description=(
            "Time a preempted gang loses to checkpoint and restore, assumed by LAS: a gang is preempted for a "
            "lower band only after running at least 10 × this since it last started."
        ),
    )
    max_preemptions_per_job: int = Field(
        default=3,
        ge=0,
        le=1000,
        description="LAS never preempts a job that was already preempted this many times (status.preemptions).",
    )
    starvation_seconds: int = Field(
        default=86_400,
        ge=60,
        le=31_536_000,
        description=(
            "LAS starvation guard: a job waiting this long since it was submitted or last stopped ranks in band 0."
        ),
    )


class ClusterTrainingPolicySpec(ApiModel):
    """Desired cluster-wide training policy."""

    topology: list[TopologyLevelSpec] = Field(
        default_factory=default_topology_levels,
        min_length=1,
        max_length=5,
        description="Topology levels, narrowest first, with the node label that defines each level's domains.",
        json_schema_extra=list_map("name"),
    )
    power: PowerBudgets = Field(default_factory=PowerBudgets, description="Cluster and per-domain power budgets.")
    queues: list[QueueSpec] = Field(
        default_factory=default_queues,
        min_length=1,
        max_length=1000,
        description="Queues, their quotas and weights.",
        json_schema_extra=list_map("name"),
    )
    placement: PlacementPolicy = Field(
        default_factory=PlacementPolicy, description="Gang placement settings (waiting for locality)."
    )
    queueing: Queueing = Field(default_factory=Queueing, description="Order of waiting jobs within a priority.")
    preemption: Preemption = Field(default_factory=Preemption, description="Priority preemption settings.")
    rescheduling: Rescheduling = Field(default_factory=Rescheduling, description="Rescheduling thresholds.")


class ClusterTrainingPolicyStatus(StatusModel):
    """Observed state of the policy."""

    conditions: list[Condition] = Field(
        default_factory=list, description="Standard conditions.", json_schema_extra=list_map("type")
    )
    observed_generation: int | None = Field(default=None, description="The generation last acted upon.")


class ClusterTrainingPolicy(ApiModel):
    """Cluster-wide training policy: topology map, power budgets, queues, preemption and rescheduling."""

    kind: Literal["ClusterTrainingPolicy"] = "ClusterTrainingPolicy"
    api_version: Literal["powertrain.dev/v1alpha1"] = "powertrain.dev/v1alpha1"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: ClusterTrainingPolicySpec = Field(default_factory=ClusterTrainingPolicySpec)
    status: ClusterTrainingPolicyStatus | None = None


__all__ = [
    "DEFAULT_POLICY_NAME",
    "DNS_LABEL",
    "ClusterTrainingPolicy",
    "ClusterTrainingPolicySpec",
    "ClusterTrainingPolicyStatus",
    "DomainBudget",
    "PlacementPolicy",
    "PowerBudgets",
    "Preemption",
    "QueueOrder",
    "QueueSpec",
    "Queueing",
    "Rescheduling",
    "TopologyLevelSpec",
    "default_queues",
    "default_topology_levels",
]
