"""What a job's GPUs really did, rolled up from the node agents' NodeTelemetry reports into the job's status.

A pure adapter over the core's snapshot (no I/O, time comes from the reports): for every GPU a report
attributes to one of the job's pods it averages SM activity (NVML utilization when the GPU has no GPM), sums
power, and adds each report window's energy and GPU-seconds once. Which report windows were already counted is
remembered per (job, node) in memory: after an operator restart the windows current at that moment are not
counted (at most one report window per node is lost), never counted twice.

`status.usage` is the per-worker view (core/telemetry.py's `summarize`): each worker's newest report, SM activity
min/median/max across workers (the mean above hides a worker at 0 %), network and storage summed and spread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from powertrain.api.telemetry import GpuReading
from powertrain.api.trainingjob import TrainingJobStatus
from powertrain.core.snapshot import ClusterSnapshot, JobKey
from powertrain.core.telemetry import summarize

# A worker whose newest report is older than this (three heartbeats of the agent's default 60 s) is left out of
# status.usage rather than shown with stale numbers.
USAGE_WINDOW_SECONDS = 180.0


@dataclass
class UsageLedger:
    counted: dict[tuple[JobKey, str], datetime] = field(default_factory=dict)
    """(job, node) → timestamp of the last report window added to the job's totals."""

    def roll_up(
        self, snapshot: ClusterSnapshot, key: JobKey, status: TrainingJobStatus, now: datetime | None = None
    ) -> None:
        """Update the usage fields of `status` in place from the reports on the job's nodes."""
        pods = {p.key for p in snapshot.live_pods(key) if p.node is not None and not p.terminating}
        if not pods:
            return
        if now is not None:
            # None when no worker reported within the window: stale figures go rather than linger as current.
            status.usage = summarize(snapshot.job_telemetry(key, now, USAGE_WINDOW_SECONDS))
        nodes = {p.node for p in snapshot.live_pods(key) if p.node is not None}
        activity: list[float] = []
        power = 0.0
        seen_power = False
        for node in sorted(n for n in nodes if n is not None):
            report = snapshot.telemetry.get(node)
            if report is None or report.status is None or report.status.timestamp is None:
                continue
            mine = [g for g in report.status.gpus if g.pod is not None and (g.pod.namespace, g.pod.name) in pods]
            if not mine:
                continue
            for gpu in mine:
                busy = _busy(gpu)
                if busy is not None:
                    activity.append(busy)
                if gpu.power_watts is not None:
                    power += gpu.power_watts
                    seen_power = True
            stamp = report.status.timestamp
            last = self.counted.get((key, node))
            self.counted[(key, node)] = stamp
            if last is None or stamp <= last:
                continue  # first sight since start (may have been counted before a restart) or already counted
            energy = sum(g.energy_joules for g in mine if g.energy_joules is not None)
            if any(g.energy_joules is not None for g in mine):
                status.energy_joules = round((status.energy_joules or 0.0) + energy, 1)
            window = report.status.window_seconds or (stamp - last).total_seconds()
            status.gpu_seconds = round((status.gpu_seconds or 0.0) + len(mine) * window, 1)
        if activity:
            status.gpu_utilization = round(sum(activity) / len(activity), 1)
        if seen_power:
            status.power_watts = round(power, 1)

    def forget(self, live: set[JobKey]) -> None:
        for k in [k for k in self.counted if k[0] not in live]:
            del self.counted[k]


def _busy(gpu: GpuReading) -> float | None:
    if gpu.sm_activity_percent is not None:
        return gpu.sm_activity_percent
    return gpu.utilization_percent
