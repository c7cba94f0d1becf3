"""Every Prometheus metric the agent exports: name, type, unit, help and labels, in one place.

Names start with `powertrain_` and carry their unit (`_watts`, `_joules_total`, `_bytes`, `_celsius`, `_hertz`,
`_percent`, `_seconds`). Percentages are 0-100, as NVML reports them. Pod attribution uses `exported_namespace`,
`exported_pod` and `training_job`, never `namespace`, `pod`, `job` or `instance`, which Prometheus attaches to
every target and would overwrite.

The exporter is a custom collector over the agent's current state: each scrape builds the series anew, so the
series of a pod that has gone, or a GPU that has gone, disappear at once and label cardinality stays bounded
by (GPUs x current pods), (interfaces), (reason bits) and (critical XIDs + XIDs seen).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from powertrain_agent.health import CRITICAL_XIDS
from powertrain_agent.reasons import CLOCK_EVENT_REASONS
from powertrain_agent.state import Snapshot

GPU_LABELS = ("node", "gpu", "uuid", "model", "exported_namespace", "exported_pod", "training_job")
NET_LABELS = ("node", "interface", "kind")
NODE_LABELS = ("node",)
# Labels Prometheus sets on every scraped series: ours must never use these names.
RESERVED_LABELS = frozenset({"pod", "namespace", "job", "instance", "container", "service", "endpoint"})


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as exposed (counters end in _total)
    kind: str  # "gauge" | "counter"
    unit: str
    help: str
    labels: tuple[str, ...]


def _gpu(name: str, kind: str, unit: str, text: str, *extra: str) -> MetricSpec:
    return MetricSpec(name, kind, unit, text, GPU_LABELS + extra)


METRICS: tuple[MetricSpec, ...] = (
    _gpu("powertrain_gpu_info", "gauge", "", "Always 1; carries the driver version.", "driver_version"),
    _gpu(
        "powertrain_gpu_utilization_percent",
        "gauge",
        "percent",
        "NVML GPU utilization: share of time a kernel ran (not how much of the GPU it used).",
    ),
    _gpu(
        "powertrain_gpu_memory_utilization_percent",
        "gauge",
        "percent",
        "NVML memory utilization: share of time device memory was read or written.",
    ),
    _gpu(
        "powertrain_gpu_sm_activity_percent",
        "gauge",
        "percent",
        "GPM SM activity over the last sample interval (Hopper+): the honest busy figure.",
    ),
    _gpu(
        "powertrain_gpu_sm_occupancy_percent",
        "gauge",
        "percent",
        "GPM SM occupancy: resident warps vs the theoretical maximum, over the last sample interval.",
    ),
    _gpu(
        "powertrain_gpu_tensor_activity_percent",
        "gauge",
        "percent",
        "GPM tensor-core activity (any tensor op) over the last sample interval.",
    ),
    _gpu(
        "powertrain_gpu_dram_activity_percent",
        "gauge",
        "percent",
        "GPM DRAM bandwidth used vs the maximum, over the last sample interval.",
    ),
    _gpu("powertrain_gpu_memory_used_bytes", "gauge", "bytes", "Device memory in use (includes the driver's reserve)."),
    _gpu("powertrain_gpu_memory_total_bytes", "gauge", "bytes", "Device memory."),
    _gpu(
        "powertrain_gpu_power_watts",
        "gauge",
        "watts",
        "Power draw as nvmlDeviceGetPowerUsage reports it: a 1-second moving average on Hopper.",
    ),
    _gpu(
        "powertrain_gpu_power_instant_watts",
        "gauge",
        "watts",
        "Instantaneous power (NVML field POWER_INSTANT); spikes above the limit on load steps.",
    ),
    _gpu(
        "powertrain_gpu_energy_joules_total",
        "counter",
        "joules",
        "Energy since the agent started, from the GPU's energy counter (monotonic across driver reloads).",
    ),
    _gpu("powertrain_gpu_temperature_celsius", "gauge", "celsius", "GPU die temperature."),
    _gpu("powertrain_gpu_sm_clock_hertz", "gauge", "hertz", "Current SM clock."),
    _gpu("powertrain_gpu_memory_clock_hertz", "gauge", "hertz", "Current memory clock."),
    _gpu(
        "powertrain_gpu_clock_event_reason",
        "gauge",
        "",
        "1 while this clock-event (throttle) reason holds the clocks down, else 0; SwPowerCap means power-bound.",
        "reason",
    ),
    _gpu(
        "powertrain_gpu_power_limit_watts",
        "gauge",
        "watts",
        "Power limits: enforced (what holds now), configured, default, min, max (settable range), "
        "operator_requested (what the operator asked the agent to apply).",
        "limit",
    ),
    _gpu(
        "powertrain_gpu_pcie_transmit_bytes_per_second",
        "gauge",
        "bytes",
        "PCIe transmit throughput (NVML samples it over ~20 ms; read on the slow cadence).",
    ),
    _gpu("powertrain_gpu_pcie_receive_bytes_per_second", "gauge", "bytes", "PCIe receive throughput (slow cadence)."),
    _gpu(
        "powertrain_gpu_ecc_errors",
        "gauge",
        "",
        "ECC error counts as NVML reports them: volatile (since the last driver load) and aggregate (lifetime).",
        "error_type",
        "counter_type",
    ),
    _gpu(
        "powertrain_gpu_remapped_rows",
        "gauge",
        "",
        "Remapped memory rows by cause (correctable, uncorrectable) and flags pending / failure (0 or 1).",
        "state",
    ),
    _gpu("powertrain_gpu_nvlink_links_up", "gauge", "", "NVLink links in the up state (absent where unsupported)."),
    _gpu(
        "powertrain_gpu_nvlink_errors",
        "gauge",
        "",
        "Sum of NVLink error counters (DL replay, DL recovery, CRC flit, CRC data) over all links.",
    ),
    _gpu(
        "powertrain_gpu_xid_errors_total",
        "counter",
        "",
        "XID errors seen through NVML events since the agent started, by XID number (0 from the start for the "
        "critical XIDs that make a GPU unhealthy).",
        "xid",
    ),
    _gpu(
        "powertrain_gpu_recovery_action",
        "gauge",
        "",
        "NVML GPU recovery action: 0 none, 1 GPU reset, 2 node reboot, 3 drain P2P, 4 drain and reset.",
    ),
    _gpu(
        "powertrain_gpu_healthy",
        "gauge",
        "",
        "1 when the GPU may take work, 0 when it needs draining (lost, recovery action, critical XID, ECC).",
    ),
    _gpu("powertrain_gpu_lost", "gauge", "", "1 when NVML answers GPU_IS_LOST (fallen off the bus)."),
    MetricSpec(
        "powertrain_network_receive_bytes_total",
        "counter",
        "bytes",
        "Bytes received per interface (/proc/net/dev) or InfiniBand port (port_rcv_data x 4).",
        NET_LABELS,
    ),
    MetricSpec(
        "powertrain_network_transmit_bytes_total",
        "counter",
        "bytes",
        "Bytes sent per interface (/proc/net/dev) or InfiniBand port (port_xmit_data x 4).",
        NET_LABELS,
    ),
    MetricSpec(
        "powertrain_agent_info",
        "gauge",
        "",
        "Always 1; carries the agent version and backend.",
        (*NODE_LABELS, "version", "backend"),
    ),
    MetricSpec(
        "powertrain_agent_sample_duration_seconds",
        "gauge",
        "seconds",
        "Wall time of the last fast sample of all GPUs.",
        NODE_LABELS,
    ),
    MetricSpec(
        "powertrain_agent_slow_sample_duration_seconds",
        "gauge",
        "seconds",
        "Wall time of the last slow sample (energy, PCIe, ECC, NVLink, processes).",
        NODE_LABELS,
    ),
    MetricSpec("powertrain_agent_samples_total", "counter", "", "Fast samples taken.", NODE_LABELS),
    MetricSpec(
        "powertrain_agent_nvml_errors_total",
        "counter",
        "",
        "NVML calls that failed with something other than NotSupported, by error.",
        (*NODE_LABELS, "error"),
    ),
    MetricSpec(
        "powertrain_agent_report_writes_total",
        "counter",
        "",
        "NodeTelemetry status writes by result (ok, created, error).",
        (*NODE_LABELS, "result"),
    ),
    MetricSpec(
        "powertrain_agent_power_actions",
        "gauge",
        "",
        "Power-cap actuator outcome per GPU in the last reconcile (set, unchanged, restored, dry-run, failed, "
        "unsupported, unknown-gpu).",
        ("node", "uuid", "action"),
    ),
)

# dcgm-exporter's names, units and labels for the readings both exporters have (`--dcgm-compat`), so existing
# DCGM dashboards and alerts work on nodes where the agent runs instead of dcgm-exporter. Units are DCGM's:
# PROF fields are ratios 0-1, memory in MiB, clocks in MHz, energy in mJ since the driver loaded.
# Labels are dcgm-exporter's: `pod`/`namespace` name the pod holding the GPU (empty when none), so a scrape must
# honour them (honorLabels) or Prometheus renames them exported_pod/exported_namespace. dcgm-exporter's
# `container` label is not exported: the agent attributes GPUs to pods, not containers.
DCGM_LABELS = ("gpu", "UUID", "device", "modelName", "Hostname", "namespace", "pod")
DCGM_METRICS: tuple[MetricSpec, ...] = tuple(
    MetricSpec(name, kind, unit, text, DCGM_LABELS)
    for name, kind, unit, text in (
        ("DCGM_FI_DEV_GPU_UTIL", "gauge", "percent", "GPU utilization (in %)."),
        ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "percent", "Memory utilization (in %)."),
        ("DCGM_FI_PROF_SM_ACTIVE", "gauge", "ratio", "The ratio of cycles an SM has at least 1 warp assigned."),
        ("DCGM_FI_PROF_SM_OCCUPANCY", "gauge", "ratio", "The ratio of resident warps to the maximum per SM."),
        ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "ratio", "Ratio of cycles the tensor (HMMA) pipe is active."),
        ("DCGM_FI_PROF_DRAM_ACTIVE", "gauge", "ratio", "Ratio of cycles the device memory interface is active."),
        ("DCGM_FI_PROF_PCIE_TX_BYTES", "gauge", "bytes", "The rate of data transmitted over the PCIe bus (B/s)."),
        ("DCGM_FI_PROF_PCIE_RX_BYTES", "gauge", "bytes", "The rate of data received over the PCIe bus (B/s)."),
        ("DCGM_FI_DEV_FB_USED", "gauge", "mebibytes", "Framebuffer memory used (in MiB)."),
        ("DCGM_FI_DEV_FB_FREE", "gauge", "mebibytes", "Framebuffer memory free (in MiB)."),
        ("DCGM_FI_DEV_POWER_USAGE", "gauge", "watts", "Power draw (in W)."),
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "millijoules", "Total energy consumption (in mJ)."),
        ("DCGM_FI_DEV_GPU_TEMP", "gauge", "celsius", "GPU temperature (in C)."),
        ("DCGM_FI_DEV_SM_CLOCK", "gauge", "megahertz", "SM clock frequency (in MHz)."),
        ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "megahertz", "Memory clock frequency (in MHz)."),
        ("DCGM_FI_DEV_XID_ERRORS", "gauge", "", "Value of the last XID error encountered (0: none)."),
        ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "", "Total number of single-bit volatile ECC errors."),
        ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "", "Total number of double-bit volatile ECC errors."),
        ("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "counter", "", "Total number of double-bit persistent ECC errors."),
        ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter", "", "Number of remapped rows for correctable errors."),
        ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter", "", "Number of remapped rows for uncorrectable errors."),
        ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "", "Whether remapping of rows has failed (1) or not (0)."),
    )
)

SPECS = {m.name: m for m in METRICS + DCGM_METRICS}


def metric_names() -> list[str]:
    """Every metric name the agent can expose (as it appears in the exposition, counters with _total)."""
    return [m.name for m in METRICS]


def markdown_table() -> str:
    rows = ["| Metric | Type | Labels (besides node) | Meaning |", "| --- | --- | --- | --- |"]
    for m in METRICS:
        labels = ", ".join(f"`{label}`" for label in m.labels if label != "node")
        rows.append(f"| `{m.name}` | {m.kind} | {labels} | {m.help} |")
    return "\n".join(rows)


class _Families:
    def __init__(self) -> None:
        self.families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}

    def add(self, name: str, labels: list[str], value: float) -> None:
        fam = self.families.get(name)
        if fam is None:
            spec = SPECS[name]
            if spec.kind == "counter":
                fam = CounterMetricFamily(name.removesuffix("_total"), spec.help, labels=list(spec.labels))
            else:
                fam = GaugeMetricFamily(name, spec.help, labels=list(spec.labels))
            self.families[name] = fam
        fam.add_metric(labels, value)

    def add_known(self, name: str, labels: list[str], value: float | None) -> None:
        """Add the sample only when the reading exists: an unsupported field is a missing series, never a 0."""
        if value is not None:
            self.add(name, labels, float(value))


class AgentCollector(Collector):
    """prometheus_client custom collector: renders the current snapshot on every scrape (with `dcgm_compat`,
    also dcgm-exporter's names for the same readings)."""

    def __init__(self, snapshot: Callable[[], Snapshot], version: str, dcgm_compat: bool = False) -> None:
        self.snapshot = snapshot
        self.version = version
        self.dcgm_compat = dcgm_compat

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: the series set changes with GPUs and pods

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        yield from render(snap, self.version).values()
        if self.dcgm_compat:
            yield from render_dcgm(snap).values()


def product_label(nvml_name: str) -> str:
    """NVML's product name in the form GPU feature discovery writes to the node label `nvidia.com/gpu.product`
    ("NVIDIA H200" -> "NVIDIA-H200"), so agent series join with the operator's by-model series."""
    return "-".join(nvml_name.split())


def render(snap: Snapshot, version: str) -> dict[str, GaugeMetricFamily | CounterMetricFamily]:
    f = _Families()
    node = snap.node
    xids_by_gpu: dict[str, list[tuple[int, int]]] = {}
    for (xid_uuid, xid), count in sorted(snap.xids.items()):
        xids_by_gpu.setdefault(xid_uuid, []).append((xid, count))
    for uuid, s in sorted(snap.gpus.items(), key=lambda kv: kv[1].index):
        pod = snap.pods.get(uuid)
        base = [
            node,
            str(s.index),
            uuid,
            product_label(s.model),
            pod.namespace if pod else "",
            pod.name if pod else "",
            (pod.training_job or "") if pod else "",
        ]
        f.add("powertrain_gpu_info", [*base, snap.driver_version or ""], 1)
        healthy, _ = snap.health.get(uuid, (True, None))
        f.add("powertrain_gpu_healthy", base, 1 if healthy else 0)
        f.add("powertrain_gpu_lost", base, 1 if s.lost else 0)
        # The XIDs that make a GPU unhealthy start at 0, so the first one is an increase that increase() and
        # rate() see (a counter born at 1 is not); other XIDs appear when first seen.
        seen = dict.fromkeys(CRITICAL_XIDS, 0) | dict(xids_by_gpu.get(uuid, ()))
        for xid, count in sorted(seen.items()):
            f.add("powertrain_gpu_xid_errors_total", [*base, str(xid)], count)
        f.add_known("powertrain_gpu_energy_joules_total", base, snap.energy_joules.get(uuid))
        f.add_known("powertrain_gpu_power_limit_watts", [*base, "operator_requested"], snap.operator_requests.get(uuid))
        if s.lost:
            continue
        for name, value in (
            ("powertrain_gpu_utilization_percent", s.utilization_percent),
            ("powertrain_gpu_memory_utilization_percent", s.memory_utilization_percent),
            ("powertrain_gpu_sm_activity_percent", s.sm_activity_percent),
            ("powertrain_gpu_sm_occupancy_percent", s.sm_occupancy_percent),
            ("powertrain_gpu_tensor_activity_percent", s.tensor_activity_percent),
            ("powertrain_gpu_dram_activity_percent", s.dram_activity_percent),
            ("powertrain_gpu_memory_used_bytes", s.memory_used_bytes),
            ("powertrain_gpu_memory_total_bytes", s.memory_total_bytes),
            ("powertrain_gpu_power_watts", s.power_watts),
            ("powertrain_gpu_power_instant_watts", s.power_instant_watts),
            ("powertrain_gpu_temperature_celsius", s.temperature_celsius),
            ("powertrain_gpu_sm_clock_hertz", None if s.sm_clock_mhz is None else s.sm_clock_mhz * 1e6),
            ("powertrain_gpu_memory_clock_hertz", None if s.memory_clock_mhz is None else s.memory_clock_mhz * 1e6),
            ("powertrain_gpu_recovery_action", s.recovery_action),
        ):
            f.add_known(name, base, value)
        if s.clock_event_reasons is not None:
            for reason, bit in CLOCK_EVENT_REASONS.items():
                f.add("powertrain_gpu_clock_event_reason", [*base, reason], 1 if s.clock_event_reasons & bit else 0)
        for limit, value in (
            ("enforced", s.power_limit_watts),
            ("configured", s.configured_power_limit_watts),
            ("default", s.default_power_limit_watts),
            ("min", s.min_power_limit_watts),
            ("max", s.max_power_limit_watts),
        ):
            f.add_known("powertrain_gpu_power_limit_watts", [*base, limit], value)
        slow = snap.slow.get(uuid)
        if slow is None:
            continue
        for name, value in (
            ("powertrain_gpu_pcie_transmit_bytes_per_second", slow.pcie_tx_bytes_per_second),
            ("powertrain_gpu_pcie_receive_bytes_per_second", slow.pcie_rx_bytes_per_second),
            ("powertrain_gpu_nvlink_links_up", slow.nvlink_links_up),
            ("powertrain_gpu_nvlink_errors", slow.nvlink_errors),
        ):
            f.add_known(name, base, value)
        for error_type, counter_type, value in (
            ("corrected", "volatile", slow.ecc_corrected_volatile),
            ("uncorrected", "volatile", slow.ecc_uncorrected_volatile),
            ("uncorrected", "aggregate", slow.ecc_uncorrected_aggregate),
        ):
            f.add_known("powertrain_gpu_ecc_errors", [*base, error_type, counter_type], value)
        for state, flag in (
            ("correctable", slow.remapped_rows_correctable),
            ("uncorrectable", slow.remapped_rows_uncorrectable),
            ("pending", slow.remap_pending),
            ("failure", slow.remap_failure),
        ):
            f.add_known("powertrain_gpu_remapped_rows", [*base, state], flag)
    for interface, (kind, rx, tx) in sorted(snap.network.items()):
        f.add("powertrain_network_receive_bytes_total", [node, interface, kind], rx)
        f.add("powertrain_network_transmit_bytes_total", [node, interface, kind], tx)
    f.add("powertrain_agent_info", [node, version, snap.backend], 1)
    f.add("powertrain_agent_sample_duration_seconds", [node], snap.sample_seconds)
    f.add("powertrain_agent_slow_sample_duration_seconds", [node], snap.slow_sample_seconds)
    f.add("powertrain_agent_samples_total", [node], snap.samples_total)
    for error, count in sorted(snap.nvml_errors.items()):
        f.add("powertrain_agent_nvml_errors_total", [node, error], count)
    # Known results start at 0, so the first failed write is an increase a rate() sees.
    writes = dict.fromkeys(("ok", "created", "error"), 0)
    writes.update(snap.report_writes)
    for result, count in sorted(writes.items()):
        f.add("powertrain_agent_report_writes_total", [node, result], count)
    for uuid, act in sorted(snap.actuations.items()):
        f.add("powertrain_agent_power_actions", [node, uuid, act.action], 1)
    return f.families


def _ratio(percent: float | None) -> float | None:
    return None if percent is None else percent / 100


def _mib(n: float | None) -> float | None:
    return None if n is None else n / (1 << 20)


class _DcgmFamilies(_Families):
    """DCGM's counters keep their names: dcgm-exporter exposes them without the `_total` suffix that
    prometheus_client's counters (and OpenMetrics, which Prometheus asks for) require, so they are typed gauge
    here; the values are the same monotonic counts and rate()/increase() read them the same way."""

    def add(self, name: str, labels: list[str], value: float) -> None:
        fam = self.families.get(name)
        if fam is None:
            spec = SPECS[name]
            fam = self.families[name] = GaugeMetricFamily(name, spec.help, labels=list(spec.labels))
        fam.add_metric(labels, value)


def render_dcgm(snap: Snapshot) -> dict[str, GaugeMetricFamily | CounterMetricFamily]:
    """The DCGM_FI_* families of the readings both exporters have, in DCGM's units and labels."""
    f = _DcgmFamilies()
    for uuid, s in sorted(snap.gpus.items(), key=lambda kv: kv[1].index):
        if s.lost:  # dcgm-exporter stops reporting a GPU that fell off the bus; the powertrain_* series say so
            continue
        pod = snap.pods.get(uuid)
        # device is the /dev/nvidiaN node as dcgm-exporter names it: the NVML index (the minor number on
        # every system where the driver enumerates GPUs in PCI order, the default).
        labels = [str(s.index), uuid, f"nvidia{s.index}", s.model, snap.node]
        labels += [pod.namespace if pod else "", pod.name if pod else ""]
        free = None
        if s.memory_total_bytes is not None and s.memory_used_bytes is not None:
            free = s.memory_total_bytes - s.memory_used_bytes
        slow = snap.slow.get(uuid)
        for name, value in (
            ("DCGM_FI_DEV_GPU_UTIL", s.utilization_percent),
            ("DCGM_FI_DEV_MEM_COPY_UTIL", s.memory_utilization_percent),
            ("DCGM_FI_PROF_SM_ACTIVE", _ratio(s.sm_activity_percent)),
            ("DCGM_FI_PROF_SM_OCCUPANCY", _ratio(s.sm_occupancy_percent)),
            ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", _ratio(s.tensor_activity_percent)),
            ("DCGM_FI_PROF_DRAM_ACTIVE", _ratio(s.dram_activity_percent)),
            ("DCGM_FI_DEV_FB_USED", _mib(s.memory_used_bytes)),
            ("DCGM_FI_DEV_FB_FREE", _mib(free)),
            ("DCGM_FI_DEV_POWER_USAGE", s.power_watts),
            ("DCGM_FI_DEV_GPU_TEMP", s.temperature_celsius),
            ("DCGM_FI_DEV_SM_CLOCK", s.sm_clock_mhz),
            ("DCGM_FI_DEV_MEM_CLOCK", s.memory_clock_mhz),
            ("DCGM_FI_DEV_XID_ERRORS", snap.last_xid.get(uuid, 0)),
        ):
            f.add_known(name, labels, value)
        if slow is None:
            continue
        for name, value in (
            ("DCGM_FI_PROF_PCIE_TX_BYTES", slow.pcie_tx_bytes_per_second),
            ("DCGM_FI_PROF_PCIE_RX_BYTES", slow.pcie_rx_bytes_per_second),
            ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", slow.energy_millijoules),
            ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", slow.ecc_corrected_volatile),
            ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", slow.ecc_uncorrected_volatile),
            ("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", slow.ecc_uncorrected_aggregate),
            ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", slow.remapped_rows_correctable),
            ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", slow.remapped_rows_uncorrectable),
            ("DCGM_FI_DEV_ROW_REMAP_FAILURE", slow.remap_failure),
        ):
            f.add_known(name, labels, value)
    return f.families
