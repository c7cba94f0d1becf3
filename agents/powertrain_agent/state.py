"""Everything the agent knows right now, shared between its threads (sampler, slow sampler, events, reporter,
exporter). One lock; readers take a consistent copy with `snapshot()`."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field, replace

from powertrain_agent.actuator import Actuation
from powertrain_agent.energy import EnergyCounter
from powertrain_agent.podio import PodCounters
from powertrain_agent.readings import GpuSample, GpuSlowSample, PodInfo


@dataclass
class Snapshot:
    node: str
    backend: str
    driver_version: str | None = None
    gpus: dict[str, GpuSample] = field(default_factory=dict)
    slow: dict[str, GpuSlowSample] = field(default_factory=dict)
    energy_joules: dict[str, float] = field(default_factory=dict)
    health: dict[str, tuple[bool, str | None]] = field(default_factory=dict)
    pods: dict[str, PodInfo] = field(default_factory=dict)  # GPU uuid -> pod holding it
    xids: Counter[tuple[str, int]] = field(default_factory=Counter)  # (uuid, xid) -> count
    network: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    pod_io: dict[str, PodCounters] = field(default_factory=dict)  # pod UID -> byte totals
    # When `network` and `pod_io` were read: rates divide by the time between two reads, not between two reports
    # (a slow sample lands anywhere inside a report window).
    network_at: float | None = None
    pod_io_at: float | None = None
    attribution: str | None = None  # how GPUs were attributed to pods: pod-resources | cgroup | simulator
    actuations: dict[str, Actuation] = field(default_factory=dict)
    operator_requests: dict[str, float] = field(default_factory=dict)
    sample_seconds: float = 0.0
    slow_sample_seconds: float = 0.0
    samples_total: int = 0
    nvml_errors: Counter[str] = field(default_factory=Counter)
    report_writes: Counter[str] = field(default_factory=Counter)


class AgentState:
    def __init__(self, node: str, backend: str) -> None:
        self.lock = threading.Lock()
        self.data = Snapshot(node, backend)
        self.energy: dict[str, EnergyCounter] = {}

    def snapshot(self) -> Snapshot:
        with self.lock:
            d = self.data
            return replace(
                d,
                gpus=dict(d.gpus),
                slow=dict(d.slow),
                energy_joules=dict(d.energy_joules),
                health=dict(d.health),
                pods=dict(d.pods),
                xids=Counter(d.xids),
                network=dict(d.network),
                pod_io=dict(d.pod_io),
                actuations=dict(d.actuations),
                operator_requests=dict(d.operator_requests),
                nvml_errors=Counter(d.nvml_errors),
                report_writes=Counter(d.report_writes),
            )

    def set_samples(self, samples: list[GpuSample], health: dict[str, tuple[bool, str | None]], seconds: float) -> None:
        with self.lock:
            lost_or_gone = {u for u in self.data.gpus} - {s.uuid for s in samples}
            for uuid in lost_or_gone:
                # A GPU NVML no longer lists (driver reload in progress): drop its series rather than freeze them.
                self.data.gpus.pop(uuid, None)
            for s in samples:
                self.data.gpus[s.uuid] = s
            self.data.health.update(health)
            self.data.sample_seconds = seconds
            self.data.samples_total += 1

    def set_slow(self, slow: list[GpuSlowSample], seconds: float) -> None:
        with self.lock:
            for s in slow:
                self.data.slow[s.uuid] = s
                if s.energy_millijoules is not None:
                    counter = self.energy.setdefault(s.uuid, EnergyCounter())
                    self.data.energy_joules[s.uuid] = counter.update(s.energy_millijoules)
            self.data.slow_sample_seconds = seconds
