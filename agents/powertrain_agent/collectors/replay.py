"""The `replay` backend: plays a recorded NVML trace (by default powertrain_agent/data/nvml_trace.csv) in real time.

The trace loops. With several GPUs, GPU i starts i/N of the way into the trace, so they are not identical. The
energy counter keeps growing across loops (each loop adds the trace's energy). Missing values (`nan`, empty)
are None. There is no power control: the actuator reports requests as unsupported.
"""

from __future__ import annotations

import bisect
import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from powertrain_agent.collectors import CollectorUnavailable
from powertrain_agent.fake_nvml import fake_uuid
from powertrain_agent.readings import GpuEvent, GpuSample, GpuSlowSample

REQUIRED_COLUMNS = ("t", "power_mw", "energy_mj")


@dataclass(frozen=True, slots=True)
class TraceRow:
    t: float
    values: dict[str, float | None]


def load_trace(path: Path) -> list[TraceRow]:
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise CollectorUnavailable(f"replay file {path}: missing column(s) {', '.join(missing)}")
            rows = []
            for line_no, raw in enumerate(reader, start=2):
                try:
                    t = float(raw["t"])
                except (TypeError, ValueError):
                    msg = f"replay file {path}, line {line_no}: t={raw['t']!r} is not a number"
                    raise CollectorUnavailable(msg) from None
                rows.append(TraceRow(t, {k: _number(v) for k, v in raw.items() if k not in ("t", "phase")}))
    except OSError as exc:
        raise CollectorUnavailable(f"replay file {path}: {exc.strerror}") from exc
    if len(rows) < 2:
        raise CollectorUnavailable(f"replay file {path}: needs at least two rows")
    rows.sort(key=lambda r: r.t)
    return rows


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return None if value is None or math.isnan(value) else value


class ReplayCollector:
    name = "replay"
    generation = 1

    def __init__(
        self,
        path: Path,
        gpus: int = 1,
        *,
        seed: str = "replay",
        model: str = "NVIDIA H200",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.gpu_count = gpus
        self.model = model
        self.clock = clock
        self.uuids = [fake_uuid(seed, i) for i in range(gpus)]
        self.rows: list[TraceRow] = []
        self._times: list[float] = []
        self._start = 0.0

    def open(self) -> None:
        self.rows = load_trace(self.path)
        t0 = self.rows[0].t
        self._times = [r.t - t0 for r in self.rows]
        self._start = self.clock()

    def close(self) -> None:
        pass

    @property
    def duration(self) -> float:
        return self._times[-1]

    def _row(self, gpu: int) -> tuple[TraceRow, int]:
        """The row in effect now for `gpu`, and how many whole loops of the trace it has completed."""
        elapsed = self.clock() - self._start + self.duration * gpu / self.gpu_count
        loops, offset = divmod(elapsed, self.duration)
        i = max(bisect.bisect_right(self._times, offset) - 1, 0)
        return self.rows[i], int(loops)

    def sample(self) -> list[GpuSample]:
        now = self.clock()
        out = []
        for i, uuid in enumerate(self.uuids):
            row, _ = self._row(i)
            v = row.values
            out.append(
                GpuSample(
                    i,
                    uuid,
                    self.model,
                    now,
                    utilization_percent=v.get("gpu_util"),
                    memory_utilization_percent=v.get("mem_util"),
                    sm_activity_percent=v.get("gpm_sm_util"),
                    sm_occupancy_percent=v.get("gpm_sm_occupancy"),
                    tensor_activity_percent=v.get("gpm_tensor_active"),
                    dram_activity_percent=v.get("gpm_dram_bw_util"),
                    memory_used_bytes=_scaled_int(v.get("mem_used_mib"), 1 << 20),
                    power_watts=_scaled(v.get("power_mw"), 1e-3),
                    temperature_celsius=v.get("temp_c"),
                    sm_clock_mhz=v.get("sm_clock_mhz"),
                    memory_clock_mhz=v.get("mem_clock_mhz"),
                    clock_event_reasons=_scaled_int(v.get("throttle_reasons"), 1),
                    power_limit_watts=_scaled(v.get("power_limit_mw"), 1e-3),
                )
            )
        return out

    def sample_slow(self) -> list[GpuSlowSample]:
        now = self.clock()
        first = self.rows[0].values.get("energy_mj") or 0.0
        last = self.rows[-1].values.get("energy_mj") or 0.0
        out = []
        for i, uuid in enumerate(self.uuids):
            row, loops = self._row(i)
            energy = row.values.get("energy_mj")
            total = None if energy is None else int(energy + loops * (last - first))
            out.append(
                GpuSlowSample(
                    uuid,
                    now,
                    energy_millijoules=total,
                    pcie_tx_bytes_per_second=_scaled(row.values.get("pcie_tx_kbs"), 1024.0),
                    pcie_rx_bytes_per_second=_scaled(row.values.get("pcie_rx_kbs"), 1024.0),
                )
            )
        return out

    def wait_events(self, timeout_s: float) -> list[GpuEvent]:
        time.sleep(timeout_s)
        return []

    def power_control(self) -> None:
        return None

    def pod_owners(self) -> dict[str, str] | None:
        return None


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _scaled_int(value: float | None, factor: int) -> int | None:
    return None if value is None else int(value * factor)
