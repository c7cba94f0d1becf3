"""Window averages for the NodeTelemetry report: every fast sample is added; the reporter takes the window."""

from __future__ import annotations

from dataclasses import dataclass, field

from powertrain_agent.readings import GpuSample

AVERAGED_FIELDS = (
    "utilization_percent",
    "sm_activity_percent",
    "sm_occupancy_percent",
    "tensor_activity_percent",
    "dram_activity_percent",
    "memory_used_bytes",
    "power_watts",
    "temperature_celsius",
    "sm_clock_mhz",
)


@dataclass
class GpuWindow:
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    reasons: int = 0
    samples: int = 0
    lost_samples: int = 0

    def add(self, s: GpuSample) -> None:
        self.samples += 1
        if s.lost:
            self.lost_samples += 1
            return
        for name in AVERAGED_FIELDS:
            value = getattr(s, name)
            if value is not None:
                self.sums[name] = self.sums.get(name, 0.0) + float(value)
                self.counts[name] = self.counts.get(name, 0) + 1
        if s.clock_event_reasons is not None:
            self.reasons |= s.clock_event_reasons

    def merge(self, other: GpuWindow) -> None:
        """Fold an earlier window into this one (a report that could not be written is carried forward)."""
        for name, value in other.sums.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        for name, count in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + count
        self.reasons |= other.reasons
        self.samples += other.samples
        self.lost_samples += other.lost_samples

    def mean(self, name: str) -> float | None:
        n = self.counts.get(name, 0)
        return self.sums[name] / n if n else None


@dataclass(frozen=True)
class ClosedWindow:
    """A window `Rollup.take` closed: what the report says, and what `put_back` needs if it is not written."""

    length_s: float
    windows: dict[str, GpuWindow]
    energy_joules: dict[str, float]  # energy used per GPU in the window (exact counter delta)
    started: float | None
    energy_at_start: dict[str, float]


class Rollup:
    """Per-GPU windows plus the energy total at the start of each window (for exact per-window deltas).

    A window whose report could not be written is handed back with `put_back`: its samples are merged into the
    open window, which then starts where the failed one started, and energy is counted from the failed
    window's start. The next report covers the whole span, so an API outage loses no energy.
    """

    def __init__(self) -> None:
        self.windows: dict[str, GpuWindow] = {}
        self.energy_at_start: dict[str, float] = {}
        self.started: float | None = None

    def add(self, samples: list[GpuSample], now: float) -> None:
        if self.started is None:
            self.started = now
        for s in samples:
            self.windows.setdefault(s.uuid, GpuWindow()).add(s)

    def restart(self, uuids: set[str]) -> None:
        """Drop these GPUs' samples so far: they changed hands, and a pod's reading covers only its own time."""
        for uuid in uuids:
            self.windows.pop(uuid, None)

    def take(self, now: float, energy_totals: dict[str, float]) -> ClosedWindow:
        """Close the window (length, per-GPU windows, energy used per GPU in joules) and start a new one."""
        length = now - self.started if self.started is not None else 0.0
        deltas = {}
        for uuid, total in energy_totals.items():
            start = self.energy_at_start.get(uuid)
            if start is not None:
                deltas[uuid] = max(total - start, 0.0)
        closed = ClosedWindow(length, self.windows, deltas, self.started, self.energy_at_start)
        self.energy_at_start = dict(energy_totals)
        self.windows = {}
        self.started = now
        return closed

    def put_back(self, closed: ClosedWindow) -> None:
        """Undo a `take` whose report was not written, keeping the samples added since."""
        for uuid, window in closed.windows.items():
            self.windows.setdefault(uuid, GpuWindow()).merge(window)
        if closed.started is not None:
            self.started = closed.started
        # Energy totals are monotonic, so counting from the older start covers both windows exactly.
        self.energy_at_start = {**self.energy_at_start, **closed.energy_at_start}
