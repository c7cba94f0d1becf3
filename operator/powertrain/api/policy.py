"""ClusterTrainingPolicy: the cluster's topology map, power budgets, queues and rescheduling thresholds.

The defaults follow the labels NVIDIA Topograph and the GPU Operator write, so a real cluster works with no
policy object at all; the operator uses the policy named `default` when present.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from powertrain.api import constants as c
from powertrain.api.common import ApiModel, CelRule, Condition, StatusModel, list_map
from powertrain.api.limits import MAX_CLUSTER_WATTS, MAX_GPUS, MAX_SAFE_INTEGER
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
    watts: int = Field(gt=0, le=MAX_CLUSTER_WATTS, description="Power budget of that domain, watts.")


class PowerBudgets(ApiModel):
    """Power budgets the operator holds by setting GPU power limits.

    A domain's measured draw is the sum of its GPUs' reported power plus `nodeOverheadWatts` per node. When
    the GPU limits it would run at (each GPU's default, or its job's cap) could exceed its budget, the
    operator gives its GPUs limits that sum to the budget minus the overhead and the draw of GPUs no job
    holds: every GPU gets at least its minimum limit, then the rest goes by priority (highest first, equal
    priorities evenly) up to what each GPU draws, then up to its wanted limit. One pass settles it; the
    agents apply the limits within a second. A gang that cannot fit a budget even at minimum limits waits
    (reason PowerBudget).
    """

    cluster_watts: int | None = Field(
        default=None, gt=0, le=MAX_CLUSTER_WATTS, description="Budget for all GPUs in the cluster, watts."
    )
    budget_level: TopologyLevel = Field(
        default=TopologyLevel.RACK, description="Level whose domains get `domainWatts` (usually rack)."
    )
    domain_watts: int | None = Field(
        default=None, gt=0, le=MAX_CLUSTER_WATTS, description="Default budget of every domain of `budgetLevel`, watts."
    )
    overrides: list[DomainBudget] = Field(
        default_factory=list,
        max_length=10_000,
        description="Per-domain budgets that replace `domainWatts`.",
        json_schema_extra=list_map("domain"),
    )
    node_overhead_watts: int = Field(
        default=0,
        ge=0,
        le=100_000,
        description=(
            "Non-GPU draw counted per node (CPUs, memory, NICs, fans), watts; subtracted from every budget for "
            "each node of the domain, since the operator cannot cap it."
        ),
    )


class GpuHourPrice(ApiModel):
    """The price of one GPU-hour of a GPU model."""

    model: str = Field(
        min_length=1, max_length=128, description="GPU model, as the node label nvidia.com/gpu.product names it."
    )
    price: float = Field(ge=0, le=100_000, description="Price of one GPU-hour, in `currency`.")


class CostPrices(ApiModel):
    """Prices for the per-job cost estimate (status.costEstimate of every TrainingJob)."""

    currency: str = Field(default="USD", min_length=1, max_length=16, description="Currency the prices are in.")
    gpu_hour: list[GpuHourPrice] = Field(
        default_factory=list,
        max_length=256,
        description="Price per GPU-hour by GPU model.",
        json_schema_extra=list_map("model"),
    )
    default_gpu_hour: float | None = Field(
        default=None, ge=0, le=100_000, description="Price per GPU-hour of models not listed in `gpuHour`."
    )
    energy_per_kwh: float | None = Field(default=None, ge=0, le=1_000, description="Price of one kWh of GPU energy.")


class QueueSpec(ApiModel):
    """A queue: jobs name it in spec.queue; it caps GPUs and shares idle capacity by weight."""

    name: QueueName = Field(description="Queue name that TrainingJobs refer to in spec.queue.")
    gpu_quota: int | None = Field(
        default=None,
        ge=0,
        le=MAX_GPUS,
        description="Most GPUs the queue's running jobs may hold; absent means unlimited.",
    )
    weight: int = Field(default=1, ge=1, le=1000, description="Share of idle capacity when queues compete.")


def default_queues() -> list[QueueSpec]:
    return [QueueSpec(name="default")]


class ReschedulingMode(StrEnum):
    OFF = "Off"
    WARN = "Warn"
    ACT = "Act"


class Defragmentation(ApiModel):
    """Make room for a gang blocked by fragmentation by moving a few small gangs out of one domain of its level."""

    mode: ReschedulingMode = Field(
        default=ReschedulingMode.OFF,
        description=(
            "Off; Warn: a blocked gang's Unschedulable message names the gangs whose move would make room; Act: "
            "they are moved (stopped gracefully and re-queued, not counted as restarts; status.moves) and kept "
            "off that domain's nodes while the blocked gang takes it."
        ),
    )
    min_wait_seconds: int = Field(
        default=120, ge=0, le=86_400, description="How long a gang must have waited before others move for it."
    )
    grace_period_seconds: int = Field(
        default=60, ge=0, le=3600, description="SIGTERM-to-SIGKILL time of moved workers, to checkpoint."
    )
    cooldown_seconds: int = Field(
        default=3600, ge=0, le=604_800, description="A gang moved for defragmentation is not moved again for this long."
    )
    max_gpus_per_move: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Disruption budget: most GPUs moved to make room for one blocked gang.",
    )
    max_gpus_per_hour: int = Field(
        default=256,
        ge=1,
        le=1_000_000,
        description="Disruption budget: most GPUs moved for defragmentation across the cluster in any hour.",
    )


class Rescheduling(ApiModel):
    """When the operator moves gangs away from sick GPUs and stragglers, and suspends idle reservations.

    Each decision has a mode: Off (not evaluated), Warn (condition + Event + metric only) or Act (and do it).
    """

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            "!self.suspendIdle || self.idle != 'Off'",
            "true contradicts idle: Off (use idle: Act to suspend idle gangs)",
            ".suspendIdle",
        ),
    )

    unhealthy_gpu: bool = Field(default=True, description="Restart gangs off GPUs the agent reports unhealthy.")
    straggler: ReschedulingMode = Field(
        default=ReschedulingMode.WARN,
        description=(
            "Stragglers: Warn sets the condition Straggler and posts an Event once a worker has stayed below "
            "stragglerRatio × its gang's median SM activity for stragglerWindowSeconds; Act also moves the gang "
            "(not counted as a restart; status.moves) and keeps it off that node for avoidNodeSeconds."
        ),
    )
    straggler_ratio: float = Field(
        default=0.7,
        gt=0,
        le=1,
        description=(
            "A worker whose SM activity (mean over efficiency.windowSeconds) stays below this fraction of its "
            "gang's median is a straggler; it stops being one only above this fraction + 0.1 (hysteresis)."
        ),
    )
    straggler_window_seconds: int = Field(
        default=600, ge=30, le=86_400, description="How long a worker must straggle before the gang is reported/moved."
    )
    max_moves_per_hour: int = Field(
        default=2,
        ge=0,
        le=60,
        description="Most straggler moves of one job in any hour; past it the straggler is only reported.",
    )
    avoid_node_seconds: int = Field(
        default=3600,
        ge=0,
        le=604_800,
        description=(
            "How long a moved gang keeps off the straggler's node (status.avoidNodes); if no placement without "
            "it exists, the gang is placed anyway rather than wait."
        ),
    )
    idle: ReschedulingMode = Field(
        default=ReschedulingMode.WARN,
        description=(
            "Idle reservations: Warn sets the condition Idle and posts an Event once the gang's mean SM activity "
            "has stayed below idleUtilizationPercent for idleWindowSeconds; Act also suspends the job "
            "(spec.runPolicy.suspend: true, releasing its GPUs; set it back to false to resume)."
        ),
    )
    idle_utilization_percent: float = Field(
        default=5.0,
        ge=0,
        le=100,
        description="A gang whose GPUs' mean SM activity stays below this is idle (also the Idle verdict).",
    )
    idle_window_seconds: int = Field(
        default=1800,
        ge=60,
        le=604_800,
        description="How long a gang must stay idle before it is reported (and, with Act, suspended).",
    )
    suspend_idle: bool = Field(
        default=False, description="Same as idle: Act (kept for existing policies); true with idle: Off is refused."
    )
    defragmentation: Defragmentation = Field(
        default_factory=Defragmentation,
        description="Moving small gangs out of a domain so a blocked gang fits in it.",
    )

    @property
    def idle_mode(self) -> ReschedulingMode:
        return ReschedulingMode.ACT if self.suspend_idle else self.idle


class Efficiency(ApiModel):
    """Thresholds of the efficiency verdict (status.efficiency) every running job gets; see the README.

    Rules, first match wins: Unknown (no telemetry) → Idle (mean SM < rescheduling.idleUtilizationPercent) →
    Straggler (a worker < rescheduling.stragglerRatio × gang median) → ThermalThrottled → PowerThrottled →
    Healthy (tensor ≥ healthyTensorPercent) → MemoryBound → CommunicationBound → InputBound → Healthy (SM ≥
    busySmPercent) → Underutilized.
    """

    window_seconds: int = Field(
        default=120, ge=10, le=900, description="Telemetry window the verdict is computed over, seconds."
    )
    healthy_tensor_percent: float = Field(
        default=50.0, ge=0, le=100, description="Tensor-core activity at or above which a job is compute-bound."
    )
    busy_sm_percent: float = Field(
        default=60.0,
        ge=0,
        le=100,
        description="SM activity at or above which a job without tensor work counts as busy (Healthy).",
    )
    memory_bound_dram_percent: float = Field(
        default=60.0, ge=0, le=100, description="DRAM activity at or above which a job is MemoryBound."
    )
    communication_bytes_per_second: float = Field(
        default=1e9,
        ge=0,
        le=1e13,
        description="Network rx+tx per worker at or above which a low-tensor job is CommunicationBound, bytes/s.",
    )
    input_bytes_per_second: float = Field(
        default=2e8,
        ge=0,
        le=1e13,
        description="Storage read per worker at or above which a low-SM job is InputBound, bytes/s.",
    )
    burst_tensor_ratio: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description=(
            "Tensor/SM activity ratio at or above which low SM activity means the GPUs work in bursts and wait "
            "between them (InputBound): what runs is dense, so the GPU is fast when fed."
        ),
    )
    throttled_fraction: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of the window's reports with a throttle reason for Power-/ThermalThrottled.",
    )
    power_draw_percent: float = Field(
        default=90.0,
        ge=0,
        le=100,
        description=(
            "PowerThrottled also needs the GPUs to draw at least this percent of a power limit set below their "
            "default: SwPowerCap at the default limit is a GPU at its rated power (Healthy when busy)."
        ),
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
            "and spec.runPolicy.expectedDurationSeconds (or estimates); preferredWaitSeconds stays the cap. A gang "
            "the estimate would start wider takes only GPUs no other waiting job could start on (else it waits). "
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


class Autoscaling(ApiModel):
    """How the operator resizes elastic TrainingJobs (spec.elastic, scaler Operator) on its own."""

    enabled: bool = Field(
        default=True,
        description="Grow elastic jobs into idle GPUs, shrink them for waiting gangs before preempting anyone "
        "whole, and start a waiting elastic job smaller when its spec.replicas do not fit. False: elastic jobs keep "
        "the size spec.replicas asks for (a change of it still resizes them in place).",
    )
    grow_after_idle_seconds: int = Field(
        default=120,
        ge=0,
        le=86_400,
        description="How long GPUs a job could grow into must stay idle (no waiting gang could use them) before it "
        "grows into them.",
    )
    cooldown_seconds: int = Field(
        default=300,
        ge=0,
        le=86_400,
        description="Least time between two of the operator's own resizes of one job (a scale by a user or an "
        "external autoscaler is applied at once).",
    )
    max_resizes_per_hour: int = Field(
        default=6,
        ge=1,
        le=3600,
        description="Most operator resizes of one job per hour: past it the job keeps its size (it may still be "
        "preempted whole).",
    )
    grace_period_seconds: int = Field(
        default=30,
        ge=0,
        le=3600,
        description="SIGTERM-to-SIGKILL time given to workers removed by a shrink, to checkpoint.",
    )


BASELINE_CAPABILITIES: tuple[str, ...] = (
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
)
"""Capabilities the Pod Security Standards' baseline profile lets a container add (the container runtime's
default set); anything else needs `podSecurity.allowedCapabilities`."""

CapabilityName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Z_]+$")]


class PodSecurity(ApiModel):
    """What a TrainingJob's pod template may ask for. Creating a TrainingJob creates pods in its namespace
    with the template the user wrote; this switch keeps a job from getting host access through the operator."""

    enforce: bool = Field(
        default=True,
        description=(
            "Refuse (condition Invalid, nothing created) templates with fields of the Pod Security Standards' "
            "baseline profile: privileged containers, hostNetwork/hostPID/hostIPC, hostPath volumes, hostPorts, "
            "capabilities beyond the baseline set and allowedCapabilities, Unmasked procMount, Unconfined "
            "seccomp, and the system-node-critical/system-cluster-critical priority classes. On by default so "
            "that a user who may create TrainingJobs but not privileged pods cannot get them through the "
            "operator; turn it off only where Pod Security Admission enforces a profile on every job namespace "
            "(recommended in any case) or jobs truly need host access (e.g. some RDMA setups). A job may never "
            "use the operator's own service account, whatever this says."
        ),
    )
    allowed_capabilities: list[CapabilityName] = Field(
        default_factory=list,
        max_length=64,
        description="Capabilities containers may add on top of the baseline set, e.g. IPC_LOCK for RDMA.",
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
    rescheduling: Rescheduling = Field(
        default_factory=Rescheduling, description="Straggler, idle and unhealthy-GPU decisions and their thresholds."
    )
    efficiency: Efficiency = Field(default_factory=Efficiency, description="Thresholds of the efficiency verdict.")
    autoscaling: Autoscaling = Field(
        default_factory=Autoscaling, description="Growing and shrinking of elastic jobs by the operator."
    )
    pod_security: PodSecurity = Field(
        default_factory=PodSecurity, description="Fields a job's pod template may not use (host access)."
    )
    cost: CostPrices = Field(
        default_factory=CostPrices,
        description=(
            "Prices for each job's cost estimate: GPU-hours held × the model's price per GPU-hour + GPU energy × "
            "the price per kWh. An estimate: it leaves out CPUs, storage, network and the non-GPU share of power."
        ),
    )


class BudgetStatus(StatusModel):
    """One power budget as measured in the last pass."""

    level: str = Field(description="Topology level of the budget (cluster for the whole cluster).")
    domain: str = Field(description="The domain (label value), or cluster.")
    budget_watts: int = Field(ge=0, le=MAX_CLUSTER_WATTS, description="The budget, watts.")
    draw_watts: float = Field(
        ge=0, le=MAX_CLUSTER_WATTS, description="Measured draw: GPUs' reported power plus the per-node overhead, watts."
    )
    headroom_watts: float = Field(
        ge=-MAX_CLUSTER_WATTS, le=MAX_CLUSTER_WATTS, description="Budget minus draw, watts (negative when exceeded)."
    )
    capped_gpus: int = Field(default=0, ge=0, le=MAX_GPUS, description="GPUs whose limit this budget lowers.")
    nodes: int = Field(default=0, ge=0, le=MAX_GPUS, description="Nodes in the domain.")
    message: str | None = Field(default=None, description="A problem with this budget, when there is one.")


class ClusterTrainingPolicyStatus(StatusModel):
    """Observed state of the policy."""

    budgets: list[BudgetStatus] = Field(default_factory=list, description="Each power budget's draw and headroom.")

    conditions: list[Condition] = Field(
        default_factory=list, description="Standard conditions.", json_schema_extra=list_map("type")
    )
    observed_generation: int | None = Field(
        default=None, ge=0, le=MAX_SAFE_INTEGER, description="The generation last acted upon."
    )


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
    "Autoscaling",
    "BudgetStatus",
    "ClusterTrainingPolicy",
    "ClusterTrainingPolicySpec",
    "ClusterTrainingPolicyStatus",
    "CostPrices",
    "Defragmentation",
    "DomainBudget",
    "Efficiency",
    "GpuHourPrice",
    "PlacementPolicy",
    "PodSecurity",
    "PowerBudgets",
    "Preemption",
    "QueueOrder",
    "QueueSpec",
    "Queueing",
    "Rescheduling",
    "ReschedulingMode",
    "TopologyLevelSpec",
    "default_queues",
    "default_topology_levels",
]
