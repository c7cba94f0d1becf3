"""NodeTelemetry: one per node, named after it. The operator writes the spec (requested power caps); only
that node's agent writes the status (what the GPUs and the network really did over the last window)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from powertrain.api.common import ApiModel, Condition, StatusModel, list_map
from powertrain.api.limits import MAX_BYTES, MAX_GPU_WATTS, MAX_JOULES, MAX_RATE, MAX_SECONDS


class GpuPowerRequest(ApiModel):
    """A power limit the operator asks the agent to apply to one GPU."""

    uuid: str = Field(min_length=1, max_length=128, description="GPU UUID as NVML reports it (GPU-...).")
    watts: int = Field(gt=0, le=10_000, description="Requested power limit, watts; the agent clamps it.")


class NodeTelemetrySpec(ApiModel):
    """Requests from the operator to the node's agent."""

    power_limits: list[GpuPowerRequest] = Field(
        default_factory=list,
        max_length=64,
        description="Per-GPU power limits to apply. A GPU not listed runs at its default limit.",
        json_schema_extra=list_map("uuid"),
    )
    power_limits_expire_at: datetime | None = Field(
        default=None,
        description=(
            "When the requests lapse unless renewed: past it the agent puts every GPU back to its default limit, "
            "so caps do not outlive the operator. The operator renews it while it runs. Absent: no expiry."
        ),
    )


class PodRef(StatusModel):
    """A pod that holds GPUs on the node."""

    namespace: str = Field(description="Pod namespace.")
    name: str = Field(description="Pod name.")
    uid: str | None = Field(default=None, description="Pod UID.")
    training_job: str | None = Field(default=None, description="TrainingJob the pod belongs to, if any.")
    throughput_per_second: float | None = Field(
        default=None,
        ge=0,
        le=MAX_RATE,
        description=(
            "Training throughput the pod publishes (samples/s or steps/s, any unit kept constant), read by the "
            "agent from the file /tmp/powertrain-throughput inside the pod (see the README); absent when it "
            "publishes none."
        ),
    )


class PodReading(PodRef):
    """What one pod that holds GPUs on the node did over the report window, beyond its GPUs.

    Rates are None when the agent could not measure them for this pod (say, no process of the pod visible, or a
    host-network pod whose counters are the node's); never zero for "unknown"."""

    gpus: int = Field(default=0, ge=0, le=64, description="GPUs the pod holds on this node.")
    network_rx_bytes_per_second: float | None = Field(
        default=None,
        ge=0,
        le=MAX_RATE,
        description="Receive rate of the pod's network namespace (all interfaces but lo), bytes/s.",
    )
    network_tx_bytes_per_second: float | None = Field(
        default=None,
        ge=0,
        le=MAX_RATE,
        description="Transmit rate of the pod's network namespace (all interfaces but lo), bytes/s.",
    )
    infiniband: Literal["pod", "shared"] | None = Field(
        default=None,
        description=(
            "pod: the pod holds every GPU of the node, so the node's InfiniBand/RoCE port traffic (RDMA bypasses "
            "the network namespace) is attributed to it below; shared: several pods hold the node's GPUs, so that "
            "traffic is not attributed (see status.network); absent: the node has no InfiniBand ports."
        ),
    )
    infiniband_rx_bytes_per_second: float | None = Field(
        default=None,
        ge=0,
        le=MAX_RATE,
        description="The node's InfiniBand receive rate when infiniband is pod, bytes/s.",
    )
    infiniband_tx_bytes_per_second: float | None = Field(
        default=None,
        ge=0,
        le=MAX_RATE,
        description="The node's InfiniBand transmit rate when infiniband is pod, bytes/s.",
    )
    storage_read_bytes_per_second: float | None = Field(
        default=None,
        ge=0,
        le=MAX_RATE,
        description="Block-device reads of the pod's cgroup (cgroup v2 io.stat rbytes), bytes/s.",
    )
    storage_write_bytes_per_second: float | None = Field(
        default=None,
        ge=0,
        le=MAX_RATE,
        description="Block-device writes of the pod's cgroup (cgroup v2 io.stat wbytes), bytes/s.",
    )


class GpuReading(StatusModel):
    """One GPU, averaged over the report window unless the field says otherwise."""

    index: int = Field(ge=0, le=1023, description="NVML device index.")
    uuid: str = Field(description="GPU UUID.")
    model: str | None = Field(default=None, description="Product name, e.g. NVIDIA H200.")
    utilization_percent: float | None = Field(
        default=None,
        ge=0,
        le=100,
        allow_inf_nan=False,
        description="NVML 'GPU utilization': time a kernel ran, not how much of the GPU it used.",
    )
    sm_activity_percent: float | None = Field(
        default=None, ge=0, le=100, allow_inf_nan=False, description="GPM SM activity: the honest busy figure."
    )
    sm_occupancy_percent: float | None = Field(
        default=None, ge=0, le=100, allow_inf_nan=False, description="GPM SM occupancy."
    )
    tensor_activity_percent: float | None = Field(
        default=None, ge=0, le=100, allow_inf_nan=False, description="GPM tensor-core activity."
    )
    dram_activity_percent: float | None = Field(
        default=None, ge=0, le=100, allow_inf_nan=False, description="GPM DRAM bandwidth utilization."
    )
    memory_used_bytes: int | None = Field(default=None, ge=0, le=MAX_BYTES, description="Device memory in use, bytes.")
    memory_total_bytes: int | None = Field(default=None, ge=0, le=MAX_BYTES, description="Device memory, bytes.")
    power_watts: float | None = Field(
        default=None, ge=0, le=MAX_GPU_WATTS, allow_inf_nan=False, description="Mean power draw over the window, watts."
    )
    energy_joules: float | None = Field(
        default=None,
        ge=0,
        le=MAX_JOULES,
        allow_inf_nan=False,
        description="Energy used during the window (from the energy counter), joules.",
    )
    power_limit_watts: float | None = Field(
        default=None, ge=0, le=MAX_GPU_WATTS, allow_inf_nan=False, description="Enforced power limit, watts."
    )
    requested_power_limit_watts: float | None = Field(
        default=None,
        ge=0,
        le=MAX_GPU_WATTS,
        allow_inf_nan=False,
        description="Power limit the agent applied on the operator's request, watts.",
    )
    default_power_limit_watts: float | None = Field(
        default=None, ge=0, le=MAX_GPU_WATTS, allow_inf_nan=False, description="Default power limit, watts."
    )
    min_power_limit_watts: float | None = Field(
        default=None, ge=0, le=MAX_GPU_WATTS, allow_inf_nan=False, description="Lowest settable power limit, watts."
    )
    max_power_limit_watts: float | None = Field(
        default=None, ge=0, le=MAX_GPU_WATTS, allow_inf_nan=False, description="Highest settable power limit, watts."
    )
    temperature_celsius: float | None = Field(
        default=None, ge=-273.15, le=1000, allow_inf_nan=False, description="GPU temperature, °C."
    )
    sm_clock_mhz: float | None = Field(
        default=None, ge=0, le=100_000, allow_inf_nan=False, description="Mean SM clock, MHz."
    )
    clock_event_reasons: list[str] = Field(
        default_factory=list, description="Clock-event (throttle) reasons seen in the window, e.g. SwPowerCap."
    )
    healthy: bool = Field(default=True, description="False when the GPU needs draining; the operator avoids it.")
    health_reason: str | None = Field(default=None, description="Why the GPU is unhealthy.")
    pod: PodRef | None = Field(default=None, description="Pod holding this GPU, if any.")


class NetworkReading(StatusModel):
    """One network interface or InfiniBand port over the report window."""

    interface: str = Field(description="Interface or InfiniBand device/port, e.g. eth0 or mlx5_0/1.")
    kind: Literal["ethernet", "infiniband", "other"] = Field(default="other", description="Link kind.")
    rx_bytes_per_second: float = Field(
        default=0.0, ge=0, le=MAX_RATE, allow_inf_nan=False, description="Mean receive rate over the window, bytes/s."
    )
    tx_bytes_per_second: float = Field(
        default=0.0, ge=0, le=MAX_RATE, allow_inf_nan=False, description="Mean transmit rate over the window, bytes/s."
    )


class NodeTelemetryStatus(StatusModel):
    """The agent's compact report for its node."""

    agent_version: str | None = Field(default=None, description="Version of the agent that wrote the report.")
    backend: str | None = Field(default=None, description="Collector backend: nvml, sim or replay.")
    timestamp: datetime | None = Field(default=None, description="End of the report window.")
    window_seconds: float | None = Field(
        default=None, ge=0, le=MAX_SECONDS, allow_inf_nan=False, description="Length of the report window, seconds."
    )
    gpus: list[GpuReading] = Field(
        default_factory=list, description="Per-GPU readings.", json_schema_extra=list_map("uuid")
    )
    network: list[NetworkReading] = Field(
        default_factory=list, description="Per-interface network rates.", json_schema_extra=list_map("interface")
    )
    pods: list[PodReading] = Field(
        default_factory=list, max_length=64, description="Pods holding GPUs on this node, with their network and I/O."
    )
    pod_attribution: Literal["pod-resources", "cgroup", "simulator"] | None = Field(
        default=None,
        description=(
            "How GPUs were attributed to pods: pod-resources (the kubelet's PodResourcesLister), cgroup (the cgroups "
            "of the GPUs' processes, when the kubelet socket is absent) or simulator (the sim backend's own map)."
        ),
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Standard conditions.", json_schema_extra=list_map("type")
    )


class NodeTelemetry(ApiModel):
    """Telemetry and power-cap requests for one node (named after the node)."""

    kind: Literal["NodeTelemetry"] = "NodeTelemetry"
    api_version: Literal["powertrain.dev/v1alpha1"] = "powertrain.dev/v1alpha1"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: NodeTelemetrySpec = Field(default_factory=NodeTelemetrySpec)
    status: NodeTelemetryStatus | None = None
