"""A stand-in for the `pynvml` module: simulated GPUs that answer the way a recorded NVIDIA H200 answers.

The `sim` backend runs the real NVML collector against this module, and the tests use it to inject every
error a real card gives. It raises pynvml's own exception classes and returns pynvml's own ctypes structures,
so the collector cannot tell it from the real library.

Numbers come from one H200 measured read-only (powertrain_agent/data/, driver 580.159.04): limits 200-700 W
(default 700 W), 150,754,820,096 bytes of memory of which 644,939,776 reserved, max SM clock 1980 MHz,
memory clock 3201 MHz; NotSupported for NVLink (single-GPU VM), fan speed, retired pages; recovery action 0;
an event wait with no event times out. Workload profiles are the phase means of nvml_trace.csv.
`tests/agent/test_fake_nvml.py` checks these against the recorded files.

Power model: a workload would draw `demand_watts` at the maximum SM clock; under a lower limit the card draws
~97.5 % of the limit (the software power cap, reason bit 0x4) and the SM clock falls with the square root of the
dynamic power left (dynamic power ∝ clock², voltage scaling only partly with clock at the top of the DVFS range):
clock = max_clock · ((draw − idle) / (demand − idle))^½. The square law and the dense matmul's demand (~1147 W at
1980 MHz) are fitted to two facts: the recorded H200 at its 700 W limit (681 W, 1463 MHz, SwPowerCap) and the
step-time loss reported for an H100 capped from 700 W to 600 W on transformer pre-training (10-15 %, a
practitioner's figure; see docs/power.md). The draw follows a new limit at the next read (the recorded step,
nvml_power_step.csv, settles within ~1 s, shorter than the agent's report window).

Throughput: a phase spends a fraction `compute` of its step time on clock-bound work (tensor activity, or SM
activity not spent waiting on DRAM) and the rest is unaffected by the SM clock, so its rate relative to running
at the default limit is 1 / ((1 − compute) + compute · clock_default / clock). `FakeGpu.throughput` exposes it
(as samples/s, `Workload.rate_per_second` at the default limit), so the operator's mode search can be checked
against a ground truth.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynvml

NVMLError = pynvml.NVMLError


@dataclass(frozen=True)
class GpuSpec:
    name: str = "NVIDIA H200"
    memory_total_bytes: int = 150_754_820_096
    memory_reserved_bytes: int = 644_939_776
    default_limit_mw: int = 700_000
    min_limit_mw: int = 200_000
    max_limit_mw: int = 700_000
    max_sm_clock_mhz: int = 1980
    min_sm_clock_mhz: int = 600
    memory_clock_mhz: int = 3201
    idle_watts: float = 123.0  # a CUDA context held, nothing running (77 W with no context at all)
    nvlink_links: int = 0  # 0: NVLink queries answer NotSupported, as on the recorded single-GPU VM
    gpm_supported: bool = True


H200 = GpuSpec()
H200_HGX = GpuSpec(nvlink_links=18)  # an 8-GPU HGX board: 18 NVLink 4 links per GPU


@dataclass(frozen=True)
class Workload:
    """What a job does to a GPU: the phase means of the recorded H200 trace."""

    name: str
    demand_watts: float
    utilization: float
    memory_utilization: float
    sm_activity: float
    sm_occupancy: float
    tensor_activity: float
    dram_activity: float
    memory_used_bytes: int
    pcie_rx_kbs: float
    pcie_tx_kbs: float
    rate_per_second: float = 100.0

    @property
    def compute(self) -> float:
        """Share of the step time that scales with the SM clock."""
        return max(self.tensor_activity, self.sm_activity - self.dram_activity, 0.0) / 100.0


GiB = 1 << 30
WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        # No pod, no CUDA context: 77 W and a parked 345 MHz SM clock, as recorded before the workload started.
        Workload("idle", 77.0, 0, 0, 0, 0, 0, 0, 0, 460, 730),
        Workload("matmul", 1147.0, 98, 24, 94.6, 14.0, 91.8, 16.9, 80 * GiB, 15_250, 6_790),
        Workload("memcopy", 625.0, 99, 99.5, 99.0, 79.7, 0.6, 87.7, 40 * GiB, 32_810, 16_050),
        Workload("starved", 326.0, 25, 8, 21.0, 3.2, 20.1, 5.1, 60 * GiB, 1_150, 2_350),
        Workload("held", 161.0, 2, 0, 0.6, 0.1, 0.5, 0, 100 * GiB, 450, 1_860),
    )
}
DEFAULT_WORKLOAD = "matmul"
IDLE_SM_CLOCK_MHZ = 345
_CAP_FRACTION = 0.975  # the limiter holds draw just under the limit (681 W at 700 W in the trace)


@dataclass
class FakeGpu:
    index: int
    uuid: str
    spec: GpuSpec
    workload: Workload = WORKLOADS["idle"]
    owner: str | None = None  # pod UID the simulator gave this GPU to
    pids: list[int] = field(default_factory=list)
    limit_mw: int = 0
    out_of_band_limit_mw: int | None = None  # e.g. a BMC or an admin's nvidia-smi -pl: enforced limit may be lower
    energy_mj: float = 0.0
    last_advance: float | None = None
    lost: bool = False
    recovery_action: int = 0
    ecc_corrected_volatile: int = 0
    ecc_uncorrected_volatile: int = 0
    ecc_uncorrected_aggregate: int = 0
    remapped: tuple[int, int, int, int] = (0, 0, 0, 0)
    nvlink_errors: int = 0

    @property
    def enforced_mw(self) -> int:
        if self.out_of_band_limit_mw is None:
            return self.limit_mw
        return min(self.limit_mw, self.out_of_band_limit_mw)

    def draw_watts(self) -> float:
        return min(self.workload.demand_watts, self.enforced_mw / 1000.0 * _CAP_FRACTION)

    def power_capped(self) -> bool:
        return self.workload.demand_watts > self.enforced_mw / 1000.0 * _CAP_FRACTION

    def sm_clock_mhz(self) -> int:
        return int(self._clock_at(self.enforced_mw))

    def _clock_at(self, limit_mw: int) -> float:
        if self.workload.name == "idle":
            return IDLE_SM_CLOCK_MHZ
        draw = min(self.workload.demand_watts, limit_mw / 1000.0 * _CAP_FRACTION)
        if draw >= self.workload.demand_watts:
            return self.spec.max_sm_clock_mhz
        dynamic_demand = self.workload.demand_watts - self.spec.idle_watts
        dynamic_now = max(draw - self.spec.idle_watts, 0.0)
        clock = self.spec.max_sm_clock_mhz * math.sqrt(dynamic_now / dynamic_demand)
        return max(self.spec.min_sm_clock_mhz, clock)

    def throughput(self) -> float:
        """Samples/s of the workload on this GPU now (0 when idle): slower only in its clock-bound share."""
        if self.workload.name == "idle":
            return 0.0
        reference = self._clock_at(self.spec.default_limit_mw)
        c = self.workload.compute
        return self.workload.rate_per_second / ((1.0 - c) + c * reference / self._clock_at(self.enforced_mw))

    def temperature_c(self) -> int:
        return round(31.4 + 0.0376 * self.draw_watts())  # linear fit over the trace's phases


@dataclass
class _Injected:
    function: str
    code: int
    index: int | None
    remaining: int | None


class _Handle:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Handle) and other.index == self.index

    def __hash__(self) -> int:
        return hash(("fake-nvml-device", self.index))

    def __repr__(self) -> str:
        return f"<fake nvmlDevice {self.index}>"


class _EventSet:
    def __init__(self) -> None:
        self.registered: dict[int, int] = {}  # gpu index -> event type mask


class _Friendly:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def fake_uuid(seed: str, index: int) -> str:
    h = hashlib.sha256(f"{seed}/{index}".encode()).hexdigest()
    return f"GPU-{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


RECORDED_H200_UUID = "GPU-691f54c1-06f1-2088-4355-2732a7269da4"

# pynvml function name -> key in nvml_costs.json, so the benchmark can replay the recorded per-call costs.
COST_KEYS: dict[str, str] = {
    "nvmlDeviceGetUtilizationRates": "utilization",
    "nvmlDeviceGetMemoryInfo": "memory",
    "nvmlDeviceGetPowerUsage": "power_usage",
    "nvmlDeviceGetTotalEnergyConsumption": "energy",
    "nvmlDeviceGetTemperature": "temperature",
    "nvmlDeviceGetClockInfo": "sm_clock",
    "nvmlDeviceGetCurrentClocksEventReasons": "throttle",
    "nvmlDeviceGetEnforcedPowerLimit": "power_limit",
    "nvmlDeviceGetPcieThroughput": "pcie_tx",
    "nvmlDeviceGetComputeRunningProcesses": "processes",
}


class FakeNvml:
    """Quacks like the `pynvml` module (the subset the collector uses) over simulated GPUs."""

    def __init__(
        self,
        count: int = 1,
        spec: GpuSpec = H200,
        seed: str = "powertrain",
        clock: Callable[[], float] = time.monotonic,
        call_costs_us: dict[str, float] | None = None,
        library_present: bool = True,
        allow_set_power: bool = True,
    ) -> None:
        self.clock = clock
        self.library_present = library_present
        self.allow_set_power = allow_set_power
        self.call_costs_us = call_costs_us or {}
        self.driver_version = "580.159.04"
        uuids = [RECORDED_H200_UUID] if count == 1 and seed == "powertrain" else []
        self.gpus = [
            FakeGpu(i, uuids[i] if i < len(uuids) else fake_uuid(seed, i), spec, limit_mw=spec.default_limit_mw)
            for i in range(count)
        ]
        self.initialized = 0
        self.calls: dict[str, int] = {}
        self.set_calls: list[tuple[int, int]] = []
        self._injected: list[_Injected] = []
        self._events: deque[tuple[int, int, int]] = deque()  # (gpu index, event type, data)
        self._event_cv = threading.Condition()
        self._gpm_samples: dict[int, tuple[int, float]] = {}
        self._next_sample = 1
        self._lock = threading.RLock()
        # Expose pynvml's constants and exception classes, so `fake.NVML_CLOCK_SM` works like `pynvml.NVML_CLOCK_SM`.
        for name in dir(pynvml):
            if (name.startswith(("NVML_", "NVMLError", "nvmlClocks", "nvmlEventType", "c_nvml"))) and not hasattr(
                self, name
            ):
                setattr(self, name, getattr(pynvml, name))

    # ---- test and simulator controls -------------------------------------------------------------------

    def inject_error(self, function: str, code: int, index: int | None = None, times: int | None = None) -> None:
        """Make `function` raise NVMLError(code) (for one GPU index or all), `times` times or until cleared."""
        self._injected.append(_Injected(function, code, index, times))

    def clear_errors(self) -> None:
        self._injected.clear()

    def set_workload(self, index: int, workload: str | Workload, owner: str | None = None) -> None:
        with self._lock:
            gpu = self.gpus[index]
            self._advance(gpu)
            gpu.workload = WORKLOADS[workload] if isinstance(workload, str) else workload
            gpu.owner = owner
            gpu.pids = [] if gpu.workload.name == "idle" else [100_000 + index]

    def lose_gpu(self, index: int) -> None:
        """The GPU falls off the bus: every call on it answers GPU_IS_LOST and XID 79 is raised."""
        with self._lock:
            self.gpus[index].lost = True
        self.push_xid(index, 79)

    def recover_gpu(self, index: int) -> None:
        with self._lock:
            self.gpus[index].lost = False
            self.gpus[index].recovery_action = 0

    def push_xid(self, index: int, xid: int) -> None:
        self._push_event(index, pynvml.nvmlEventTypeXidCriticalError, xid)

    def push_event(self, index: int, event_type: int, data: int = 0) -> None:
        self._push_event(index, event_type, data)

    def driver_reload(self) -> None:
        """Unload and reload the driver: handles go stale, the energy counter and power limits reset."""
        with self._lock:
            self.initialized = 0
            for gpu in self.gpus:
                gpu.energy_mj = 0.0
                gpu.last_advance = None
                gpu.limit_mw = gpu.spec.default_limit_mw

    def _push_event(self, index: int, event_type: int, data: int) -> None:
        with self._event_cv:
            self._events.append((index, event_type, data))
            self._event_cv.notify_all()

    # ---- plumbing ---------------------------------------------------------------------------------------

    def _advance(self, gpu: FakeGpu) -> None:
        now = self.clock()
        if gpu.last_advance is not None and now > gpu.last_advance and not gpu.lost:
            gpu.energy_mj += gpu.draw_watts() * (now - gpu.last_advance) * 1000.0
        gpu.last_advance = now

    def _enter(self, function: str, handle: _Handle | None = None) -> FakeGpu | None:
        self.calls[function] = self.calls.get(function, 0) + 1
        cost_key = COST_KEYS.get(function)
        if cost_key and cost_key in self.call_costs_us:
            _spend(self.call_costs_us[cost_key] / 1e6)
        if not self.library_present:
            raise NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
        if function != "nvmlInit" and self.initialized <= 0:
            raise NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        index = handle.index if handle is not None else None
        for inj in list(self._injected):
            if inj.function == function and (inj.index is None or inj.index == index):
                if inj.remaining is not None:
                    inj.remaining -= 1
                    if inj.remaining <= 0:
                        self._injected.remove(inj)
                raise NVMLError(inj.code)
        if handle is None:
            return None
        if not 0 <= handle.index < len(self.gpus):
            raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        gpu = self.gpus[handle.index]
        if gpu.lost:
            raise NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        self._advance(gpu)
        return gpu

    def _gpu(self, function: str, handle: _Handle) -> FakeGpu:
        gpu = self._enter(function, handle)
        assert gpu is not None
        return gpu

    # ---- the pynvml surface -----------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        self.initialized += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.initialized -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        handle = _Handle(index)
        self._enter("nvmlDeviceGetHandleByIndex", handle)
        return handle

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        return self._gpu("nvmlDeviceGetUUID", handle).uuid

    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        return self._gpu("nvmlDeviceGetName", handle).spec.name

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> Any:
        gpu = self._gpu("nvmlDeviceGetUtilizationRates", handle)
        out = pynvml.c_nvmlUtilization_t()
        out.gpu = int(gpu.workload.utilization)
        out.memory = int(gpu.workload.memory_utilization)
        return out

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle, version: int | None = None) -> Any:
        gpu = self._gpu("nvmlDeviceGetMemoryInfo", handle)
        reserved = gpu.spec.memory_reserved_bytes
        if version == pynvml.nvmlMemory_v2:
            v2 = pynvml.c_nvmlMemory_v2_t()
            v2.version = version
            v2.total = gpu.spec.memory_total_bytes
            v2.reserved = reserved
            v2.used = gpu.workload.memory_used_bytes
            v2.free = v2.total - v2.reserved - v2.used
            return v2
        if version:
            raise NVMLError(pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        out = pynvml.c_nvmlMemory_t()
        out.total = gpu.spec.memory_total_bytes
        # The v1 call counts the driver's reservation as used, as the recorded card shows (used == reserved idle).
        out.used = reserved + gpu.workload.memory_used_bytes
        out.free = out.total - out.used
        return out

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        return int(self._gpu("nvmlDeviceGetPowerUsage", handle).draw_watts() * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:
        return int(self._gpu("nvmlDeviceGetTotalEnergyConsumption", handle).energy_mj)

    def nvmlDeviceGetTemperature(self, handle: _Handle, sensor: int) -> int:
        gpu = self._gpu("nvmlDeviceGetTemperature", handle)
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu.temperature_c()

    def nvmlDeviceGetClockInfo(self, handle: _Handle, clock_type: int) -> int:
        gpu = self._gpu("nvmlDeviceGetClockInfo", handle)
        if clock_type == pynvml.NVML_CLOCK_SM:
            return gpu.sm_clock_mhz()
        if clock_type == pynvml.NVML_CLOCK_MEM:
            return gpu.spec.memory_clock_mhz
        raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: _Handle) -> int:
        gpu = self._gpu("nvmlDeviceGetCurrentClocksEventReasons", handle)
        if gpu.power_capped():
            return int(pynvml.nvmlClocksEventReasonSwPowerCap)
        return int(pynvml.nvmlClocksEventReasonGpuIdle) if gpu.workload.name == "idle" else 0

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:
        return self._gpu("nvmlDeviceGetEnforcedPowerLimit", handle).enforced_mw

    def nvmlDeviceGetPowerManagementLimit(self, handle: _Handle) -> int:
        return self._gpu("nvmlDeviceGetPowerManagementLimit", handle).limit_mw

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: _Handle) -> int:
        return self._gpu("nvmlDeviceGetPowerManagementDefaultLimit", handle).spec.default_limit_mw

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: _Handle) -> list[int]:
        spec = self._gpu("nvmlDeviceGetPowerManagementLimitConstraints", handle).spec
        return [spec.min_limit_mw, spec.max_limit_mw]

    def nvmlDeviceSetPowerManagementLimit(self, handle: _Handle, limit_mw: int) -> None:
        with self._lock:
            gpu = self._gpu("nvmlDeviceSetPowerManagementLimit", handle)
            if not self.allow_set_power:
                raise NVMLError(pynvml.NVML_ERROR_NO_PERMISSION)
            if not gpu.spec.min_limit_mw <= limit_mw <= gpu.spec.max_limit_mw:
                raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            self.set_calls.append((gpu.index, int(limit_mw)))
            gpu.limit_mw = int(limit_mw)

    def nvmlDeviceGetFieldValues(self, handle: _Handle, field_ids: list[int]) -> Any:
        gpu = self._gpu("nvmlDeviceGetFieldValues", handle)
        values = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
        now_us = int(time.time() * 1e6)
        for i, fid in enumerate(field_ids):
            values[i].fieldId = fid
            values[i].timestamp = now_us
            values[i].valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
            if fid in (pynvml.NVML_FI_DEV_POWER_INSTANT, pynvml.NVML_FI_DEV_POWER_AVERAGE):
                values[i].value.uiVal = int(gpu.draw_watts() * 1000)
            elif fid == pynvml.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION:
                values[i].value.uiVal = gpu.recovery_action
            elif fid == pynvml.NVML_FI_DEV_MEMORY_TEMP:
                values[i].value.uiVal = gpu.temperature_c() - 2
            else:
                values[i].nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return values

    def nvmlDeviceGetPcieThroughput(self, handle: _Handle, counter: int) -> int:
        gpu = self._gpu("nvmlDeviceGetPcieThroughput", handle)
        if counter == pynvml.NVML_PCIE_UTIL_TX_BYTES:
            return int(gpu.workload.pcie_tx_kbs)
        return int(gpu.workload.pcie_rx_kbs)

    def nvmlDeviceGetTotalEccErrors(self, handle: _Handle, error_type: int, counter_type: int) -> int:
        gpu = self._gpu("nvmlDeviceGetTotalEccErrors", handle)
        if error_type == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED:
            return gpu.ecc_corrected_volatile
        if counter_type == pynvml.NVML_VOLATILE_ECC:
            return gpu.ecc_uncorrected_volatile
        return gpu.ecc_uncorrected_aggregate

    def nvmlDeviceGetRemappedRows(self, handle: _Handle) -> tuple[int, int, int, int]:
        return self._gpu("nvmlDeviceGetRemappedRows", handle).remapped

    def nvmlDeviceGetNvLinkState(self, handle: _Handle, link: int) -> int:
        gpu = self._gpu("nvmlDeviceGetNvLinkState", handle)
        if link >= gpu.spec.nvlink_links:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return int(pynvml.NVML_FEATURE_ENABLED)

    def nvmlDeviceGetNvLinkErrorCounter(self, handle: _Handle, link: int, counter: int) -> int:
        gpu = self._gpu("nvmlDeviceGetNvLinkErrorCounter", handle)
        if link >= gpu.spec.nvlink_links:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu.nvlink_errors if link == 0 and counter == 0 else 0

    def nvmlDeviceGetComputeRunningProcesses(self, handle: _Handle) -> list[Any]:
        gpu = self._gpu("nvmlDeviceGetComputeRunningProcesses", handle)
        per_pid = gpu.workload.memory_used_bytes // max(len(gpu.pids), 1)
        return [
            _Friendly(pid=pid, usedGpuMemory=per_pid, gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF)
            for pid in gpu.pids
        ]

    # GPM (Hopper+): two samples, then metrics computed between them.

    def nvmlGpmQueryDeviceSupport(self, handle: _Handle) -> Any:
        gpu = self._gpu("nvmlGpmQueryDeviceSupport", handle)
        out = pynvml.c_nvmlGpmSupport_t()
        out.version = pynvml.NVML_GPM_SUPPORT_VERSION
        out.isSupportedDevice = 1 if gpu.spec.gpm_supported else 0
        return out

    def nvmlGpmSampleAlloc(self) -> Any:
        self._enter("nvmlGpmSampleAlloc")
        with self._lock:
            key = self._next_sample
            self._next_sample += 1
        # An opaque pointer whose address is our key; it is never dereferenced.
        return ctypes.cast(ctypes.c_void_p(key * 16), pynvml.c_nvmlGpmSample_t)

    def nvmlGpmSampleFree(self, sample: Any) -> None:
        self._enter("nvmlGpmSampleFree")
        self._gpm_samples.pop(_sample_key(sample), None)

    def nvmlGpmSampleGet(self, handle: _Handle, sample: Any) -> Any:
        gpu = self._gpu("nvmlGpmSampleGet", handle)
        if not gpu.spec.gpm_supported:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        self._gpm_samples[_sample_key(sample)] = (gpu.index, self.clock())
        return sample

    def nvmlGpmMetricsGet(self, metrics_get: Any) -> Any:
        self._enter("nvmlGpmMetricsGet")
        first = self._gpm_samples.get(_sample_key(metrics_get.sample1))
        second = self._gpm_samples.get(_sample_key(metrics_get.sample2))
        if first is None or second is None or first[0] != second[0]:
            raise NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        gpu = self.gpus[first[0]]
        w = gpu.workload
        by_id = {
            pynvml.NVML_GPM_METRIC_SM_UTIL: w.sm_activity,
            pynvml.NVML_GPM_METRIC_SM_OCCUPANCY: w.sm_occupancy,
            pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL: w.tensor_activity,
            pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL: w.dram_activity,
            pynvml.NVML_GPM_METRIC_FP16_UTIL: 0.0,
        }
        for i in range(metrics_get.numMetrics):
            metric = metrics_get.metrics[i]
            if metric.metricId in by_id:
                metric.value = by_id[metric.metricId]
                metric.nvmlReturn = pynvml.NVML_SUCCESS
            else:
                metric.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return metrics_get

    # Events: nvmlEventSetWait blocks like the real one and times out with NVMLError_Timeout.

    def nvmlEventSetCreate(self) -> _EventSet:
        self._enter("nvmlEventSetCreate")
        return _EventSet()

    def nvmlDeviceGetSupportedEventTypes(self, handle: _Handle) -> int:
        self._gpu("nvmlDeviceGetSupportedEventTypes", handle)
        return 65439  # as recorded on the H200

    def nvmlDeviceRegisterEvents(self, handle: _Handle, event_types: int, event_set: _EventSet) -> None:
        gpu = self._gpu("nvmlDeviceRegisterEvents", handle)
        event_set.registered[gpu.index] = event_types

    def nvmlEventSetWait(self, event_set: _EventSet, timeout_ms: int) -> Any:
        self._enter("nvmlEventSetWait")
        deadline = time.monotonic() + timeout_ms / 1000.0
        with self._event_cv:
            while True:
                for item in list(self._events):
                    index, event_type, data = item
                    if event_set.registered.get(index, 0) & event_type:
                        self._events.remove(item)
                        return _Friendly(device=_Handle(index), eventType=event_type, eventData=data)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NVMLError(pynvml.NVML_ERROR_TIMEOUT)
                self._event_cv.wait(left)

    def nvmlEventSetFree(self, event_set: _EventSet) -> None:
        self._enter("nvmlEventSetFree")
        event_set.registered.clear()

    def nvmlDeviceGetIndex(self, handle: _Handle) -> int:
        return self._gpu("nvmlDeviceGetIndex", handle).index


def _sample_key(sample: Any) -> int:
    return int(ctypes.cast(sample, ctypes.c_void_p).value or 0)


def _spend(seconds: float) -> None:
    """Hold the caller for a recorded NVML call cost: sleep for long calls, spin for µs ones (sleep overshoots)."""
    if seconds >= 0.001:
        time.sleep(seconds)
        return
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
