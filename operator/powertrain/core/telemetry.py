"""Telemetry windows: what each worker (pod) of a job did over a span of time, as plain data for pure decisions.

The contract (for usage, efficiency verdicts, straggler/idle/defragmentation decisions and the simulator):

- `TelemetryHistory` is fed NodeTelemetry reports (`record`, by the snapshot on every report it receives) and
  keeps, per pod, one `WorkerPoint` per report window: bounded to `HISTORY_SECONDS` behind the newest report of
  the pod's node and `MAX_POINTS` per pod. A report whose timestamp is not newer than the last one recorded for
  its node adds nothing (the same report seen twice, or an older one).
- A `WorkerPoint` is one pod over one report window, ending at `at`, lasting `seconds`: its GPUs averaged
  (SM/tensor/DRAM activity, percent; SM activity falls back to NVML utilization for GPUs without GPM), summed
  (power, enforced and default power limits, watts) or merged (clock-event reasons seen on any of them); its
  network (the pod's network namespace plus the node's InfiniBand traffic when the pod holds every GPU of its
  node), storage read/write, bytes/s.
  None means "not measured", never zero.
- `job_window(history, workers, now, seconds)` gives a `JobTelemetry`: for each worker (pod key, node, rank,
  uid) the points whose window ends after now - seconds, oldest first (report times are the agents' clocks: a
  point stamped a little after `now` is current, not dropped). Time is an argument: nothing here
  reads a clock or does I/O, so verdicts over a window are pure functions of it.
- `summarize(window)` is the compact `status.usage` of a job: each worker's newest point, spread (min / median /
  max, with the lowest worker named) and summed.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from powertrain.api.telemetry import GpuReading, NodeTelemetry, PodReading
from powertrain.api.trainingjob import JobUsage, RateUsage, WorkerSpread

PodKey = tuple[str, str]

HISTORY_SECONDS: Final = 900.0
MAX_POINTS: Final = 120


@dataclass(frozen=True, slots=True)
class WorkerPoint:
    at: datetime
    seconds: float
    gpus: int
    uid: str | None = None
    sm_activity_percent: float | None = None
    tensor_activity_percent: float | None = None
    dram_activity_percent: float | None = None
    power_watts: float | None = None
    power_limit_watts: float | None = None
    default_power_limit_watts: float | None = None
    clock_event_reasons: frozenset[str] = frozenset()
    network_rx_bytes_per_second: float | None = None
    network_tx_bytes_per_second: float | None = None
    storage_read_bytes_per_second: float | None = None
    storage_write_bytes_per_second: float | None = None
    infiniband_shared: bool = False


@dataclass(frozen=True, slots=True)
class WorkerTelemetry:
    pod: PodKey
    node: str
    rank: int | None
    points: tuple[WorkerPoint, ...]

    @property
    def latest(self) -> WorkerPoint | None:
        return self.points[-1] if self.points else None


@dataclass(frozen=True, slots=True)
class JobTelemetry:
    start: datetime
    end: datetime
    workers: tuple[WorkerTelemetry, ...]


@dataclass(frozen=True, slots=True)
class Worker:
    """A live pod of a job, as the window asks for it."""

    pod: PodKey
    node: str
    rank: int | None = None
    uid: str | None = None


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _sum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _busy(gpu: GpuReading) -> float | None:
    return gpu.sm_activity_percent if gpu.sm_activity_percent is not None else gpu.utilization_percent


def points_of(report: NodeTelemetry) -> dict[PodKey, WorkerPoint]:
    """One point per pod holding GPUs in the report."""
    status = report.status
    if status is None or status.timestamp is None:
        return {}
    gpus: dict[PodKey, list[GpuReading]] = {}
    for gpu in status.gpus:
        if gpu.pod is not None:
            gpus.setdefault((gpu.pod.namespace, gpu.pod.name), []).append(gpu)
    readings: dict[PodKey, PodReading] = {(p.namespace, p.name): p for p in status.pods}
    out: dict[PodKey, WorkerPoint] = {}
    for key, mine in gpus.items():
        pod = readings.get(key)
        rx = tx = None
        if pod is not None:
            attributed = pod.infiniband == "pod"
            rx = _sum([pod.network_rx_bytes_per_second, pod.infiniband_rx_bytes_per_second if attributed else None])
            tx = _sum([pod.network_tx_bytes_per_second, pod.infiniband_tx_bytes_per_second if attributed else None])
        out[key] = WorkerPoint(
            at=status.timestamp,
            seconds=status.window_seconds or 0.0,
            gpus=len(mine),
            uid=mine[0].pod.uid if mine[0].pod is not None else None,
            sm_activity_percent=_mean(_busy(g) for g in mine),
            tensor_activity_percent=_mean(g.tensor_activity_percent for g in mine),
            dram_activity_percent=_mean(g.dram_activity_percent for g in mine),
            power_watts=_sum(g.power_watts for g in mine),
            power_limit_watts=_sum(g.power_limit_watts for g in mine),
            default_power_limit_watts=_sum(g.default_power_limit_watts for g in mine),
            clock_event_reasons=frozenset(r for g in mine for r in g.clock_event_reasons),
            network_rx_bytes_per_second=rx,
            network_tx_bytes_per_second=tx,
            storage_read_bytes_per_second=pod.storage_read_bytes_per_second if pod else None,
            storage_write_bytes_per_second=pod.storage_write_bytes_per_second if pod else None,
            infiniband_shared=pod is not None and pod.infiniband == "shared",
        )
    return out


@dataclass
class TelemetryHistory:
    points: dict[PodKey, deque[WorkerPoint]] = field(default_factory=dict)
    last_report: dict[str, datetime] = field(default_factory=dict)
    pods_of_node: dict[str, set[PodKey]] = field(default_factory=dict)

    def record(self, node: str, report: NodeTelemetry) -> None:
        status = report.status
        if status is None or status.timestamp is None:
            return
        last = self.last_report.get(node)
        if last is not None and status.timestamp <= last:
            return
        self.last_report[node] = status.timestamp
        horizon = status.timestamp - timedelta(seconds=HISTORY_SECONDS)
        pods = self.pods_of_node.setdefault(node, set())
        for key, point in points_of(report).items():
            self.points.setdefault(key, deque(maxlen=MAX_POINTS)).append(point)
            pods.add(key)
        for key in list(pods):
            series = self.points.get(key)
            while series and series[0].at < horizon:
                series.popleft()
            if not series:
                pods.discard(key)
                self.points.pop(key, None)

    def forget_node(self, node: str) -> None:
        for key in self.pods_of_node.pop(node, set()):
            self.points.pop(key, None)
        self.last_report.pop(node, None)


def job_window(history: TelemetryHistory, workers: Sequence[Worker], now: datetime, seconds: float) -> JobTelemetry:
    """The workers' points whose window ends after now - seconds, oldest first."""
    start = now - timedelta(seconds=seconds)
    out = []
    for worker in workers:
        points = tuple(
            p
            for p in history.points.get(worker.pod, ())
            if start < p.at and (worker.uid is None or p.uid is None or p.uid == worker.uid)
        )
        out.append(WorkerTelemetry(worker.pod, worker.node, worker.rank, points))
    return JobTelemetry(start, now, tuple(out))


def _spread(values: list[tuple[float, str]]) -> WorkerSpread | None:
    if not values:
        return None
    lowest = min(values)
    return WorkerSpread(
        min=round(lowest[0], 1),
        median=round(statistics.median(v for v, _ in values), 1),
        max=round(max(v for v, _ in values), 1),
        min_worker=lowest[1],
    )


def _rates(values: list[tuple[float, str]]) -> RateUsage | None:
    spread = _spread(values)
    if spread is None:
        return None
    return RateUsage(**spread.model_dump(), total=round(sum(v for v, _ in values), 1))


def summarize(window: JobTelemetry) -> JobUsage | None:
    """Each worker's newest point in the window: the spread across workers and the sums; None with no points."""
    latest = [(w.pod[1], w.latest) for w in window.workers if w.latest is not None]
    if not latest:
        return None

    def column(attr: str) -> list[tuple[float, str]]:
        return [(v, name) for name, p in latest if p is not None and (v := getattr(p, attr)) is not None]

    return JobUsage(
        workers=len(latest),
        sm_activity_percent=_spread(column("sm_activity_percent")),
        network_rx_bytes_per_second=_rates(column("network_rx_bytes_per_second")),
        network_tx_bytes_per_second=_rates(column("network_tx_bytes_per_second")),
        storage_read_bytes_per_second=_rates(column("storage_read_bytes_per_second")),
        storage_write_bytes_per_second=_rates(column("storage_write_bytes_per_second")),
        infiniband_shared=sum(1 for _, p in latest if p is not None and p.infiniband_shared),
        timestamp=max(p.at for _, p in latest if p is not None),
    )
