"""Plain records passed between collectors, the exporter, the reporter and the actuator.

Units are in the field names. `None` always means "this card or driver did not answer", never zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class GpuSample:
    """The cheap per-GPU readings taken every sample interval (each NVML call costs a few µs)."""

    index: int
    uuid: str
    model: str
    timestamp: float
    lost: bool = False
    lost_reason: str | None = None  # why, when it is not the plain "fallen off the bus"
    utilization_percent: float | None = None
    memory_utilization_percent: float | None = None
    sm_activity_percent: float | None = None
    sm_occupancy_percent: float | None = None
    tensor_activity_percent: float | None = None
    dram_activity_percent: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    # nvmlDeviceGetPowerUsage: on Hopper this is the driver's 1-second moving average, not an instant value.
    power_watts: float | None = None
    # NVML field 186 (POWER_INSTANT): spikes above the limit for a few hundred ms on a load step.
    power_instant_watts: float | None = None
    temperature_celsius: float | None = None
    sm_clock_mhz: float | None = None
    memory_clock_mhz: float | None = None
    clock_event_reasons: int | None = None
    power_limit_watts: float | None = None  # enforced: the lowest of every limit in force, out-of-band ones too
    configured_power_limit_watts: float | None = None  # nvmlDeviceGetPowerManagementLimit
    default_power_limit_watts: float | None = None
    min_power_limit_watts: float | None = None
    max_power_limit_watts: float | None = None
    recovery_action: int | None = None


@dataclass(slots=True)
class GpuSlowSample:
    """Readings too expensive for the per-sample path (energy ~4 ms, PCIe ~21 ms per call on an H200)."""

    uuid: str
    timestamp: float
    energy_millijoules: int | None = None
    pcie_tx_bytes_per_second: float | None = None
    pcie_rx_bytes_per_second: float | None = None
    ecc_corrected_volatile: int | None = None
    ecc_uncorrected_volatile: int | None = None
    ecc_uncorrected_aggregate: int | None = None
    remapped_rows_correctable: int | None = None
    remapped_rows_uncorrectable: int | None = None
    remap_pending: bool | None = None
    remap_failure: bool | None = None
    nvlink_links_up: int | None = None
    nvlink_errors: int | None = None
    pids: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class GpuEvent:
    """Something NVML told us without being asked (nvmlEventSetWait): an XID, an ECC error, a recovery action."""

    uuid: str
    kind: str  # "xid" | "ecc_single_bit" | "ecc_double_bit" | "recovery_action" | "gpu_unavailable"
    value: int
    timestamp: float


@dataclass(frozen=True, slots=True)
class PodInfo:
    """A pod on this node, as the API server knows it."""

    uid: str
    namespace: str
    name: str
    training_job: str | None = None
    gpus_requested: int = 0
    phase: str = "Pending"
    annotations: dict[str, str] = field(default_factory=dict)
