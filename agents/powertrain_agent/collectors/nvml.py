"""The `nvml` backend: real GPUs through pynvml (nvidia-ml-py), surviving every answer a real card gives.

- NotSupported (or NoPermission, FunctionNotFound) for one query: that reading is None, and the query is not
  asked of that GPU again until NVML is re-initialised (the recorded H200 answers NotSupported for NVLink,
  fan speed and retired pages).
- GPU is lost (XID 79, fallen off the bus): the GPU is reported `lost` and is retried every sample.
- A GPU that cannot even be opened when NVML starts (lost already, or any other error): it is reported lost
  under a stand-in UUID (`unopened-gpu-<index>`), unhealthy with the error as the reason, so the node does not
  look smaller than it is and the operator does not place work on it; opening is retried every sample, and
  once it works the GPU appears under its real UUID.
- Uninitialized / DriverNotLoaded / RM version mismatch: the driver was reloaded; NVML is re-initialised
  (with back-off), `generation` is bumped so power limits are re-applied, and the energy counter's restart
  is absorbed by `EnergyCounter`.
- Anything else (Unknown, Timeout...) is counted per error name and that reading is None for this sample.

The module is a parameter so the simulator and the tests can pass `FakeNvml`.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from powertrain_agent.collectors import CollectorUnavailable, PowerControlError, PowerLimits
from powertrain_agent.readings import GpuEvent, GpuSample, GpuSlowSample

log = logging.getLogger(__name__)

# Codes as nvml.h defines them; listed here so the fake and the real module are read the same way.
ERR_UNINITIALIZED = 1
ERR_NOT_SUPPORTED = 3
ERR_NO_PERMISSION = 4
ERR_DRIVER_NOT_LOADED = 9
ERR_TIMEOUT = 10
ERR_LIBRARY_NOT_FOUND = 12
ERR_FUNCTION_NOT_FOUND = 13
ERR_GPU_IS_LOST = 15
ERR_LIB_RM_VERSION_MISMATCH = 18
ERR_GPU_NOT_FOUND = 28

ERR_ARGUMENT_VERSION_MISMATCH = 25
_UNSUPPORTED = {ERR_NOT_SUPPORTED, ERR_NO_PERMISSION, ERR_FUNCTION_NOT_FOUND, ERR_ARGUMENT_VERSION_MISMATCH}
_LOST = {ERR_GPU_IS_LOST, ERR_GPU_NOT_FOUND}
_REINIT = {ERR_UNINITIALIZED, ERR_DRIVER_NOT_LOADED, ERR_LIB_RM_VERSION_MISMATCH}

# Event types (nvmlEventType*) the agent listens for, and the name each gets.
EVENT_SINGLE_BIT_ECC = 0x1
EVENT_DOUBLE_BIT_ECC = 0x2
EVENT_XID = 0x8
EVENT_GPU_UNAVAILABLE = 0x4000
EVENT_RECOVERY_ACTION = 0x8000
EVENT_KINDS = {
    EVENT_XID: "xid",
    EVENT_DOUBLE_BIT_ECC: "ecc_double_bit",
    EVENT_SINGLE_BIT_ECC: "ecc_single_bit",
    EVENT_GPU_UNAVAILABLE: "gpu_unavailable",
    EVENT_RECOVERY_ACTION: "recovery_action",
}
EVENT_MASK = sum(EVENT_KINDS)

FIELD_POWER_INSTANT = 186
FIELD_RECOVERY_ACTION = 230

GPM_SM_UTIL = 2
GPM_SM_OCCUPANCY = 3
GPM_ANY_TENSOR_UTIL = 5
GPM_DRAM_BW_UTIL = 10
GPM_METRICS = (GPM_SM_UTIL, GPM_SM_OCCUPANCY, GPM_ANY_TENSOR_UTIL, GPM_DRAM_BW_UTIL)

NVLINK_ERROR_COUNTERS = 4  # DL replay, DL recovery, CRC flit, CRC data


class _GpuLost(Exception):
    pass


class _NeedsReinit(Exception):
    pass


def error_code(exc: BaseException) -> int | None:
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def handle_key(handle: Any) -> object:
    """A hashable identity for a device handle (a ctypes pointer from pynvml, a plain object from the fake)."""
    try:
        return ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        return handle


@dataclass
class _Device:
    index: int
    handle: Any
    uuid: str
    model: str
    unsupported: set[str] = field(default_factory=set)
    gpm_samples: list[Any] = field(default_factory=list)
    gpm_primed: bool = False
    lost: bool = False
    open_error: str | None = None  # set while the GPU could not be opened (handle, UUID or name)
    default_mw: int | None = None
    min_mw: int | None = None
    max_mw: int | None = None


class NvmlCollector:
    name = "nvml"

    def __init__(
        self,
        nvml: Any = None,
        *,
        clock: Callable[[], float] = time.time,
        reinit_backoff_s: float = 10.0,
        use_gpm: bool = True,
    ) -> None:
        self.nvml = nvml
        self.clock = clock
        self.reinit_backoff_s = reinit_backoff_s
        self.use_gpm = use_gpm
        self.generation = 0
        self.devices: list[_Device] = []
        self.driver_version: str | None = None
        self.errors: Counter[str] = Counter()
        self._lock = threading.RLock()
        self._needs_reinit = False
        self._last_reinit_attempt = float("-inf")
        self._event_set: Any = None
        self._event_generation = -1

    # ---- lifecycle ------------------------------------------------------------------------------------------

    def open(self) -> None:
        if self.nvml is None:
            try:
                import pynvml
            except ImportError as exc:  # pragma: no cover - nvidia-ml-py is a dependency
                raise CollectorUnavailable("the nvidia-ml-py package (module pynvml) is not installed") from exc
            self.nvml = pynvml
        try:
            self._init()
        except Exception as exc:
            code = error_code(exc)
            if code in (ERR_LIBRARY_NOT_FOUND, ERR_DRIVER_NOT_LOADED):
                raise CollectorUnavailable(
                    f"NVML is not available ({exc}): the NVIDIA driver's libnvidia-ml.so.1 must be installed "
                    "and visible (in Kubernetes: the NVIDIA container runtime, or mount the driver). "
                    "On a machine without GPUs use --backend sim or --backend replay."
                ) from exc
            raise CollectorUnavailable(f"NVML failed to initialise: {exc}") from exc

    def _init(self) -> None:
        nv = self.nvml
        nv.nvmlInit()
        try:
            version = nv.nvmlSystemGetDriverVersion()
            self.driver_version = version.decode() if isinstance(version, bytes) else str(version)
        except Exception:
            self.driver_version = None
        devices = []
        for index in range(nv.nvmlDeviceGetCount()):
            try:
                devices.append(self._open_device(index))
            except Exception as exc:
                # A GPU already off the bus cannot even be named. Dropping it would make the node look smaller
                # and hide a broken GPU from the operator; report it lost under a stand-in UUID instead.
                self._count(exc)
                log.error("GPU %d cannot be opened: %s; reported as lost until it can", index, exc)
                devices.append(
                    _Device(index, None, unopened_uuid(index), "unknown", lost=True, open_error=_describe(exc))
                )
        with self._lock:
            self._free_gpm(self.devices)
            self.devices = devices
            self.generation += 1
            self._needs_reinit = False
            # Register for events now, not on the first wait: an XID raised before then would be missed.
            self._event_set = self._make_event_set()
            self._event_generation = self.generation
        log.info("NVML ready: driver %s, %d GPU(s)", self.driver_version, len(devices))

    def _open_device(self, index: int) -> _Device:
        nv = self.nvml
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        dev = _Device(index, handle, _text(nv.nvmlDeviceGetUUID(handle)), _text(nv.nvmlDeviceGetName(handle)))
        self._read_constant_limits(dev)
        return dev

    def _reopen(self, position: int, dev: _Device) -> GpuSample:
        """Try again to open a GPU that could not be opened; a lost sample for it while it still cannot."""
        try:
            fresh = self._open_device(dev.index)
        except Exception as exc:
            if error_code(exc) in _REINIT:
                raise _NeedsReinit from exc
            dev.open_error = _describe(exc)
            reason = f"GPU lost: NVML cannot open it ({dev.open_error})"
            return GpuSample(dev.index, dev.uuid, dev.model, self.clock(), lost=True, lost_reason=reason)
        log.warning("GPU %d can be opened now: %s", dev.index, fresh.uuid)
        self.devices[position] = fresh
        self.generation += 1  # register it for events and let the actuator see it
        return self._sample_device(fresh)

    def close(self) -> None:
        with self._lock:
            self._free_gpm(self.devices)
            self.devices = []
            if self._event_set is not None:
                with contextlib.suppress(Exception):
                    self.nvml.nvmlEventSetFree(self._event_set)
                self._event_set = None
            if self.nvml is not None:
                with contextlib.suppress(Exception):
                    self.nvml.nvmlShutdown()

    def _free_gpm(self, devices: list[_Device]) -> None:
        for dev in devices:
            for s in dev.gpm_samples:
                with contextlib.suppress(Exception):
                    self.nvml.nvmlGpmSampleFree(s)
            dev.gpm_samples = []

    def _maybe_reinit(self) -> bool:
        """Re-initialise after a driver reload, at most once per back-off period. True when NVML is usable."""
        if not self._needs_reinit:
            return True
        now = time.monotonic()
        if now - self._last_reinit_attempt < self.reinit_backoff_s:
            return False
        self._last_reinit_attempt = now
        try:
            with contextlib.suppress(Exception):
                self.nvml.nvmlShutdown()
            self._init()
            log.warning("NVML re-initialised after a driver reload (generation %d)", self.generation)
            return True
        except Exception as exc:
            self._count(exc)
            log.warning("NVML re-initialisation failed: %s; retrying in %.0f s", exc, self.reinit_backoff_s)
            return False

    # ---- reading helpers --------------------------------------------------------------------------------------

    def _count(self, exc: BaseException) -> None:
        self.errors[type(exc).__name__] += 1

    def _call(self, dev: _Device, key: str, fn: Callable[..., Any], *args: Any) -> Any:
        """One NVML query for one device, with NVML's failure modes turned into None / lost / reinit."""
        if key in dev.unsupported:
            return None
        try:
            return fn(dev.handle, *args)
        except Exception as exc:
            code = error_code(exc)
            if code in _UNSUPPORTED:
                dev.unsupported.add(key)
                return None
            self._count(exc)
            if code in _LOST:
                raise _GpuLost from exc
            if code in _REINIT:
                raise _NeedsReinit from exc
            return None

    def _read_constant_limits(self, dev: _Device) -> None:
        nv = self.nvml
        try:
            dev.default_mw = self._call(dev, "default_limit", nv.nvmlDeviceGetPowerManagementDefaultLimit)
            constraints = self._call(dev, "limit_constraints", nv.nvmlDeviceGetPowerManagementLimitConstraints)
            if constraints is not None:
                dev.min_mw, dev.max_mw = int(constraints[0]), int(constraints[1])
        except (_GpuLost, _NeedsReinit):
            pass

    # ---- fast path ------------------------------------------------------------------------------------------

    def sample(self) -> list[GpuSample]:
        with self._lock:
            if not self._maybe_reinit():
                return []
            out = []
            for position, dev in enumerate(list(self.devices)):
                try:
                    if dev.open_error is not None:
                        out.append(self._reopen(position, dev))
                        continue
                    out.append(self._sample_device(dev))
                    if dev.lost:
                        log.warning("GPU %d (%s) answers again", dev.index, dev.uuid)
                        dev.lost = False
                        dev.gpm_primed = False
                except _GpuLost:
                    if not dev.lost:
                        log.error("GPU %d (%s) is lost (fallen off the bus?)", dev.index, dev.uuid)
                    dev.lost = True
                    out.append(GpuSample(dev.index, dev.uuid, dev.model, self.clock(), lost=True))
                except _NeedsReinit:
                    log.warning("NVML needs re-initialisation (driver reloaded?)")
                    self._needs_reinit = True
                    self._last_reinit_attempt = float("-inf")
                    return []
            return out

    def _sample_device(self, dev: _Device) -> GpuSample:
        nv = self.nvml
        s = GpuSample(dev.index, dev.uuid, dev.model, self.clock())
        util = self._call(dev, "utilization", nv.nvmlDeviceGetUtilizationRates)
        if util is not None:
            s.utilization_percent = float(util.gpu)
            s.memory_utilization_percent = float(util.memory)
        # v2 leaves the driver's reserve (~615 MiB on an H200) out of "used", as nvidia-smi does; v1 counts it.
        mem = self._call(dev, "memory_v2", nv.nvmlDeviceGetMemoryInfo, getattr(nv, "nvmlMemory_v2", None))
        if mem is None:
            mem = self._call(dev, "memory", nv.nvmlDeviceGetMemoryInfo)
        if mem is not None:
            s.memory_used_bytes = int(mem.used)
            s.memory_total_bytes = int(mem.total)
        power = self._call(dev, "power", nv.nvmlDeviceGetPowerUsage)
        s.power_watts = power / 1000.0 if power is not None else None
        s.temperature_celsius = _float(self._call(dev, "temperature", nv.nvmlDeviceGetTemperature, 0))
        s.sm_clock_mhz = _float(self._call(dev, "sm_clock", nv.nvmlDeviceGetClockInfo, 1))
        s.memory_clock_mhz = _float(self._call(dev, "mem_clock", nv.nvmlDeviceGetClockInfo, 2))
        # Older nvidia-ml-py only has the pre-12.5 name of the same call.
        reasons_fn = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)
        if reasons_fn is None:
            reasons_fn = nv.nvmlDeviceGetCurrentClocksThrottleReasons
        reasons = self._call(dev, "reasons", reasons_fn)
        s.clock_event_reasons = int(reasons) if reasons is not None else None
        enforced = self._call(dev, "enforced_limit", nv.nvmlDeviceGetEnforcedPowerLimit)
        s.power_limit_watts = enforced / 1000.0 if enforced is not None else None
        configured = self._call(dev, "configured_limit", nv.nvmlDeviceGetPowerManagementLimit)
        s.configured_power_limit_watts = configured / 1000.0 if configured is not None else None
        s.default_power_limit_watts = dev.default_mw / 1000.0 if dev.default_mw is not None else None
        s.min_power_limit_watts = dev.min_mw / 1000.0 if dev.min_mw is not None else None
        s.max_power_limit_watts = dev.max_mw / 1000.0 if dev.max_mw is not None else None
        fields = self._call(dev, "fields", nv.nvmlDeviceGetFieldValues, [FIELD_POWER_INSTANT, FIELD_RECOVERY_ACTION])
        if fields is not None:
            for fv in fields:
                if fv.nvmlReturn != 0:
                    continue
                if fv.fieldId == FIELD_POWER_INSTANT:
                    s.power_instant_watts = _field_value(fv) / 1000.0
                elif fv.fieldId == FIELD_RECOVERY_ACTION:
                    s.recovery_action = int(_field_value(fv))
        if self.use_gpm:
            self._gpm(dev, s)
        return s

    def _gpm(self, dev: _Device, s: GpuSample) -> None:
        """Hopper GPM: metrics are computed between two samples, so each value is the mean over one interval."""
        nv = self.nvml
        if "gpm" in dev.unsupported:
            return
        try:
            if not dev.gpm_samples:
                support = nv.nvmlGpmQueryDeviceSupport(dev.handle)
                if not support.isSupportedDevice:
                    dev.unsupported.add("gpm")
                    return
                dev.gpm_samples = [nv.nvmlGpmSampleAlloc(), nv.nvmlGpmSampleAlloc()]
                dev.gpm_primed = False
            previous, current = dev.gpm_samples
            nv.nvmlGpmSampleGet(dev.handle, current)
            dev.gpm_samples = [current, previous]
            if not dev.gpm_primed:
                dev.gpm_primed = True
                return
            request = nv.c_nvmlGpmMetricsGet_t()
            request.version = nv.NVML_GPM_METRICS_GET_VERSION
            request.numMetrics = len(GPM_METRICS)
            request.sample1 = previous
            request.sample2 = current
            for i, metric_id in enumerate(GPM_METRICS):
                request.metrics[i].metricId = metric_id
            nv.nvmlGpmMetricsGet(request)
            values: dict[int, float] = {}
            for i in range(len(GPM_METRICS)):
                m = request.metrics[i]
                if m.nvmlReturn == 0:
                    values[int(m.metricId)] = _clamp_percent(float(m.value))
            s.sm_activity_percent = values.get(GPM_SM_UTIL)
            s.sm_occupancy_percent = values.get(GPM_SM_OCCUPANCY)
            s.tensor_activity_percent = values.get(GPM_ANY_TENSOR_UTIL)
            s.dram_activity_percent = values.get(GPM_DRAM_BW_UTIL)
        except Exception as exc:
            code = error_code(exc)
            if code in _UNSUPPORTED:
                dev.unsupported.add("gpm")
                return
            self._count(exc)
            dev.gpm_primed = False
            if code in _LOST:
                raise _GpuLost from exc
            if code in _REINIT:
                raise _NeedsReinit from exc

    # ---- slow path ------------------------------------------------------------------------------------------

    def sample_slow(self) -> list[GpuSlowSample]:
        with self._lock:
            if self._needs_reinit:
                return []
            devices = list(self.devices)
        out = []
        for dev in devices:
            if dev.lost:
                continue
            try:
                out.append(self._slow_device(dev))
            except _GpuLost:
                continue  # the fast path reports it
            except _NeedsReinit:
                with self._lock:
                    self._needs_reinit = True
                return out
        return out

    def _slow_device(self, dev: _Device) -> GpuSlowSample:
        nv = self.nvml
        s = GpuSlowSample(dev.uuid, self.clock())
        energy = self._call(dev, "energy", nv.nvmlDeviceGetTotalEnergyConsumption)
        s.energy_millijoules = int(energy) if energy is not None else None
        tx = self._call(dev, "pcie_tx", nv.nvmlDeviceGetPcieThroughput, 0)
        rx = self._call(dev, "pcie_rx", nv.nvmlDeviceGetPcieThroughput, 1)
        s.pcie_tx_bytes_per_second = tx * 1024.0 if tx is not None else None  # NVML answers KB/s
        s.pcie_rx_bytes_per_second = rx * 1024.0 if rx is not None else None
        s.ecc_corrected_volatile = self._call(dev, "ecc_c", nv.nvmlDeviceGetTotalEccErrors, 0, 0)
        s.ecc_uncorrected_volatile = self._call(dev, "ecc_u", nv.nvmlDeviceGetTotalEccErrors, 1, 0)
        s.ecc_uncorrected_aggregate = self._call(dev, "ecc_ua", nv.nvmlDeviceGetTotalEccErrors, 1, 1)
        rows = self._call(dev, "remapped_rows", nv.nvmlDeviceGetRemappedRows)
        if rows is not None:
            corr, unc, pending, failure = (int(v) for v in rows)
            s.remapped_rows_correctable, s.remapped_rows_uncorrectable = corr, unc
            s.remap_pending, s.remap_failure = bool(pending), bool(failure)
        self._nvlink(dev, s)
        procs = self._call(dev, "processes", nv.nvmlDeviceGetComputeRunningProcesses)
        if procs is not None:
            s.pids = sorted({int(p.pid) for p in procs})
        return s

    def _nvlink(self, dev: _Device, s: GpuSlowSample) -> None:
        """Links are numbered from 0; the first link that is NotSupported ends the list (none on a PCIe-only VM)."""
        nv = self.nvml
        if "nvlink" in dev.unsupported:
            return
        up = errors = links = 0
        for link in range(int(getattr(nv, "NVML_NVLINK_MAX_LINKS", 18))):
            try:
                state = nv.nvmlDeviceGetNvLinkState(dev.handle, link)
            except Exception as exc:
                code = error_code(exc)
                if code in _LOST:
                    raise _GpuLost from exc
                if code in _REINIT:
                    raise _NeedsReinit from exc
                if code not in _UNSUPPORTED and code != 2:  # 2: InvalidArgument past the last link
                    self._count(exc)
                break
            links += 1
            if state:
                up += 1
                for counter in range(NVLINK_ERROR_COUNTERS):
                    value = self._call(dev, f"nvlink_err_{counter}", nv.nvmlDeviceGetNvLinkErrorCounter, link, counter)
                    errors += int(value or 0)
        if links == 0:
            dev.unsupported.add("nvlink")
            return
        s.nvlink_links_up = up
        s.nvlink_errors = errors

    # ---- events ---------------------------------------------------------------------------------------------

    def wait_events(self, timeout_s: float) -> list[GpuEvent]:
        """Block on nvmlEventSetWait; returns at most one event per call (NVML hands them out one by one)."""
        nv = self.nvml
        with self._lock:
            if self._needs_reinit or not self.devices:
                event_set = None
            else:
                if self._event_generation != self.generation:
                    self._event_set = self._make_event_set()
                    self._event_generation = self.generation
                event_set = self._event_set
            by_handle = {handle_key(d.handle): d.uuid for d in self.devices if d.handle is not None}
        if event_set is None:
            time.sleep(min(timeout_s, 1.0))
            return []
        try:
            data = nv.nvmlEventSetWait(event_set, int(timeout_s * 1000))
        except Exception as exc:
            if error_code(exc) != ERR_TIMEOUT:
                self._count(exc)
                time.sleep(min(timeout_s, 1.0))  # never spin on a broken event set
            return []
        uuid = by_handle.get(handle_key(data.device), "unknown")
        events = []
        for bit, kind in EVENT_KINDS.items():
            if int(data.eventType) & bit:
                events.append(GpuEvent(uuid, kind, int(data.eventData), self.clock()))
        return events

    def _make_event_set(self) -> Any:
        nv = self.nvml
        try:
            event_set = nv.nvmlEventSetCreate()
        except Exception as exc:
            self._count(exc)
            log.warning("NVML events unavailable: %s; XIDs will not be seen", exc)
            return None
        for dev in self.devices:
            if dev.handle is None:
                continue
            try:
                supported = int(nv.nvmlDeviceGetSupportedEventTypes(dev.handle))
                nv.nvmlDeviceRegisterEvents(dev.handle, EVENT_MASK & supported, event_set)
            except Exception as exc:
                self._count(exc)
                log.warning("GPU %d: cannot register for NVML events: %s", dev.index, exc)
        return event_set

    # ---- attribution and power -----------------------------------------------------------------------------

    def pod_owners(self) -> dict[str, str] | None:
        return None

    def power_control(self) -> NvmlPowerControl:
        return NvmlPowerControl(self)

    def device(self, uuid: str) -> _Device:
        for dev in self.devices:
            if dev.uuid == uuid and dev.handle is not None:
                return dev
        raise PowerControlError(f"GPU {uuid} is not on this node")


class NvmlPowerControl:
    """Power-limit reads and writes (milliwatts in NVML, watts here). Only the actuator calls `set_limit`."""

    def __init__(self, collector: NvmlCollector) -> None:
        self.collector = collector

    def read_limits(self, uuid: str) -> PowerLimits:
        nv = self.collector.nvml
        with self.collector._lock:
            dev = self.collector.device(uuid)
            try:
                configured = nv.nvmlDeviceGetPowerManagementLimit(dev.handle)
                enforced = nv.nvmlDeviceGetEnforcedPowerLimit(dev.handle)
                default = nv.nvmlDeviceGetPowerManagementDefaultLimit(dev.handle)
                low, high = nv.nvmlDeviceGetPowerManagementLimitConstraints(dev.handle)
            except Exception as exc:
                raise PowerControlError(f"GPU {uuid}: cannot read power limits: {exc}") from exc
        return PowerLimits(configured / 1000, enforced / 1000, default / 1000, low / 1000, high / 1000)

    def set_limit(self, uuid: str, watts: float) -> None:
        nv = self.collector.nvml
        with self.collector._lock:
            dev = self.collector.device(uuid)
            try:
                nv.nvmlDeviceSetPowerManagementLimit(dev.handle, round(watts * 1000))
            except Exception as exc:
                raise PowerControlError(f"GPU {uuid}: setting the power limit to {watts:.0f} W failed: {exc}") from exc


def unopened_uuid(index: int) -> str:
    return f"unopened-gpu-{index}"


def _describe(exc: BaseException) -> str:
    code = error_code(exc)
    return f"{exc} (NVML error {code})" if code is not None else str(exc) or type(exc).__name__


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _clamp_percent(value: float) -> float:
    return min(max(value, 0.0), 100.0)


def _field_value(fv: Any) -> float:
    """Read an NVML field value union by its declared type."""
    kind = int(fv.valueType)
    v = fv.value
    if kind == 0:
        return float(v.dVal)
    if kind == 1:
        return float(v.uiVal)
    if kind == 2:
        return float(v.ulVal)
    if kind == 3:
        return float(v.ullVal)
    if kind == 4:
        return float(v.sllVal)
    if kind == 5:
        return float(v.siVal)
    return float(v.usVal)
