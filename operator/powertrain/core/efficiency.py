"""A verdict on how well a running gang uses its GPUs, from a window of its workers' telemetry.

Pure: `assess(window, policy, wider_than_level=...)` reads a `JobTelemetry` (core/telemetry.py) and the
thresholds of the ClusterTrainingPolicy (`spec.efficiency`, plus `spec.rescheduling`'s idle and straggler
thresholds), and `carry_forward` keeps the "since" times across passes. Every figure is a mean over the
window's worker reports (one report: one pod's GPUs averaged over one agent window).

Rules, first match wins (defaults in brackets):

1. Unknown: no report of any worker in the window.
2. Idle: gang SM activity < rescheduling.idleUtilizationPercent [5 %]. Nothing else matters on idle GPUs.
3. Straggler: a gang of 2+ workers whose slowest worker's SM activity < rescheduling.stragglerRatio [0.7] ×
   the workers' median (hysteresis: the worker already named stays one until it is back above ratio + 0.1).
   It outranks throttling: one slow worker holds the whole gang back, whatever the others do.
4. ThermalThrottled: SwThermalSlowdown, HwThermalSlowdown or HwSlowdown in ≥ throttledFraction [0.5] of the
   reports. Cooling is a fault even when the job is otherwise compute-bound.
5. PowerThrottled: HwPowerBrakeSlowdown in ≥ throttledFraction of the reports, or SwPowerCap in ≥ that share
   while the enforced limit is below the GPUs' default limit and they draw ≥ powerDrawPercent [90 %] of it.
   SwPowerCap at the default limit is a busy GPU at its rated power (the H200 trace's matmul: 680 W of a 700 W
   default limit, SwPowerCap 99 % of the time), which is what a compute-bound job should look like, so it is
   Healthy; the bit is also set on a GPU drawing half its limit (the trace's data-starved phase, 326 W), so
   the bit alone proves nothing.
6. Healthy: tensor activity ≥ healthyTensorPercent [50 %] (compute-bound on tensor cores).
7. MemoryBound: DRAM activity ≥ memoryBoundDramPercent [60 %].
8. CommunicationBound: network rx+tx per worker ≥ communicationBytesPerSecond [1 GB/s], or a gang of 2+ workers
   placed wider than its spec.topology.level (its collectives cross the slower links).
9. InputBound: SM activity < busySmPercent [60 %] with storage reads per worker ≥ inputBytesPerSecond
   [200 MB/s], or with tensor/SM activity ≥ burstTensorRatio [0.5]: what runs is dense tensor work, so the
   GPUs are fast when fed and wait between bursts (the trace's data-starved loop: SM 21 %, tensor 20 %).
10. Healthy: SM activity ≥ busySmPercent (busy without tensor cores, e.g. FP32 work).
11. Underutilized: low SM activity with none of the evidence above.

`Assessment.idle` and `Assessment.straggler` are computed whatever the verdict, for the rescheduling decisions
(core/reschedule.py): a throttled gang with a straggler still has the straggler.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from powertrain.api.policy import ClusterTrainingPolicySpec
from powertrain.api.trainingjob import EfficiencyEvidence, JobEfficiency, Verdict
from powertrain.core.telemetry import JobTelemetry, WorkerPoint

THERMAL_REASONS: Final = frozenset({"SwThermalSlowdown", "HwThermalSlowdown", "HwSlowdown"})
POWER_BRAKE: Final = "HwPowerBrakeSlowdown"
POWER_CAP: Final = "SwPowerCap"
STRAGGLER_HYSTERESIS: Final = 0.1
"""A named straggler must recover this far above stragglerRatio to stop being one (no flapping at the line)."""
CAPPED_BELOW_DEFAULT: Final = 0.99


@dataclass(frozen=True)
class Straggler:
    pod: str
    node: str
    ratio: float
    sm_activity_percent: float
    median_percent: float


@dataclass(frozen=True)
class Assessment:
    verdict: Verdict
    message: str
    evidence: EfficiencyEvidence
    idle: bool = False
    straggler: Straggler | None = None


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _r(value: float | None, digits: int = 1) -> float | None:
    return round(value, digits) if value is not None else None


def _share(points: list[WorkerPoint], reasons: frozenset[str]) -> float:
    return sum(1 for p in points if p.clock_event_reasons & reasons) / len(points) if points else 0.0


def _network(p: WorkerPoint) -> float | None:
    if p.network_rx_bytes_per_second is None and p.network_tx_bytes_per_second is None:
        return None
    return (p.network_rx_bytes_per_second or 0.0) + (p.network_tx_bytes_per_second or 0.0)


def _mb(value: float) -> str:
    return f"{value / 1e6:.0f} MB/s"


def _find_straggler(
    window: JobTelemetry, policy: ClusterTrainingPolicySpec, previous: str | None
) -> tuple[Straggler | None, Straggler | None]:
    """(the straggler, the slowest worker) — both None for a gang of fewer than two reporting workers."""
    means = []
    for worker in window.workers:
        sm = _mean(p.sm_activity_percent for p in worker.points)
        if sm is not None:
            means.append((sm, worker.pod[1], worker.node))
    if len(means) < 2:
        return None, None
    median = statistics.median(m for m, _, _ in means)
    sm, pod, node = min(means)
    ratio = sm / median if median > 0 else 1.0
    slowest = Straggler(pod, node, round(ratio, 2), round(sm, 1), round(median, 1))
    limit = policy.rescheduling.straggler_ratio
    if pod == previous:
        limit = min(1.0, limit + STRAGGLER_HYSTERESIS)
    if median < policy.rescheduling.idle_utilization_percent or ratio >= limit:
        return None, slowest
    return slowest, slowest


def assess(
    window: JobTelemetry,
    policy: ClusterTrainingPolicySpec,
    *,
    wider_than_level: bool = False,
    previous_straggler: str | None = None,
) -> Assessment:
    """The verdict on one window (see the module docstring for the rules)."""
    eff = policy.efficiency
    resched = policy.rescheduling
    points = [p for w in window.workers for p in w.points]
    if not points:
        return Assessment(
            Verdict.UNKNOWN,
            f"no telemetry from the job's workers in the last {eff.window_seconds}s",
            EfficiencyEvidence(),
        )
    sm = _mean(p.sm_activity_percent for p in points)
    tensor = _mean(p.tensor_activity_percent for p in points)
    dram = _mean(p.dram_activity_percent for p in points)
    network = _mean(_network(p) for p in points)
    reads = _mean(p.storage_read_bytes_per_second for p in points)
    draw = _mean(
        p.power_watts / p.power_limit_watts for p in points if p.power_watts is not None and p.power_limit_watts
    )
    capped = _mean(
        p.power_limit_watts / p.default_power_limit_watts
        for p in points
        if p.power_limit_watts is not None and p.default_power_limit_watts
    )
    power_share = _share(points, frozenset({POWER_CAP, POWER_BRAKE}))
    brake_share = _share(points, frozenset({POWER_BRAKE}))
    thermal_share = _share(points, THERMAL_REASONS)
    straggler, slowest = _find_straggler(window, policy, previous_straggler)
    evidence = EfficiencyEvidence(
        reports=len(points),
        sm_activity_percent=_r(sm),
        tensor_activity_percent=_r(tensor),
        dram_activity_percent=_r(dram),
        network_bytes_per_second=_r(network, 0),
        storage_read_bytes_per_second=_r(reads, 0),
        power_draw_percent=_r(draw * 100 if draw is not None else None),
        power_capped_percent=_r(capped * 100 if capped is not None else None),
        power_throttled_fraction=round(power_share, 2),
        thermal_throttled_fraction=round(thermal_share, 2),
        slowest_worker=slowest.pod if slowest else None,
        slowest_ratio=slowest.ratio if slowest else None,
    )
    idle = sm is not None and sm < resched.idle_utilization_percent

    def verdict(v: Verdict, message: str) -> Assessment:
        return Assessment(v, message, evidence, idle=idle, straggler=straggler)

    busy = sm if sm is not None else 0.0
    if idle:
        return verdict(
            Verdict.IDLE, f"SM activity {busy:.1f}% < idleUtilizationPercent {resched.idle_utilization_percent:g}%"
        )
    if straggler is not None:
        return verdict(
            Verdict.STRAGGLER,
            f"worker {straggler.pod} on {straggler.node} at {straggler.sm_activity_percent:.1f}% SM activity, "
            f"{straggler.ratio:.2f}× the gang median {straggler.median_percent:.1f}% "
            f"(< stragglerRatio {resched.straggler_ratio:g})",
        )
    share = eff.throttled_fraction
    if thermal_share >= share:
        return verdict(Verdict.THERMAL_THROTTLED, f"thermal slowdown in {thermal_share:.0%} of reports (≥ {share:.0%})")
    if brake_share >= share:
        return verdict(Verdict.POWER_THROTTLED, f"HwPowerBrakeSlowdown in {brake_share:.0%} of reports (≥ {share:.0%})")
    if (
        power_share >= share
        and capped is not None
        and capped < CAPPED_BELOW_DEFAULT
        and draw is not None
        and draw * 100 >= eff.power_draw_percent
    ):
        return verdict(
            Verdict.POWER_THROTTLED,
            f"SwPowerCap in {power_share:.0%} of reports at a limit {capped:.0%} of the default, drawing "
            f"{draw:.0%} of it (≥ {eff.power_draw_percent:g}%)",
        )
    if tensor is not None and tensor >= eff.healthy_tensor_percent:
        return verdict(Verdict.HEALTHY, f"tensor activity {tensor:.1f}% ≥ {eff.healthy_tensor_percent:g}%")
    low_tensor = f"tensor activity {tensor:.1f}%" if tensor is not None else "no tensor activity measured"
    if dram is not None and dram >= eff.memory_bound_dram_percent:
        return verdict(
            Verdict.MEMORY_BOUND, f"DRAM activity {dram:.1f}% ≥ {eff.memory_bound_dram_percent:g}%, {low_tensor}"
        )
    if network is not None and network >= eff.communication_bytes_per_second:
        return verdict(
            Verdict.COMMUNICATION_BOUND,
            f"network {_mb(network)} per worker ≥ {_mb(eff.communication_bytes_per_second)}, {low_tensor}",
        )
    if wider_than_level and len(window.workers) > 1:
        return verdict(Verdict.COMMUNICATION_BOUND, f"placed wider than spec.topology.level, {low_tensor}")
    if busy < eff.busy_sm_percent:
        if reads is not None and reads >= eff.input_bytes_per_second:
            return verdict(
                Verdict.INPUT_BOUND,
                f"SM activity {busy:.1f}% < {eff.busy_sm_percent:g}% while reading {_mb(reads)} per worker "
                f"(≥ {_mb(eff.input_bytes_per_second)})",
            )
        if tensor is not None and busy > 0 and tensor / busy >= eff.burst_tensor_ratio:
            return verdict(
                Verdict.INPUT_BOUND,
                f"SM activity {busy:.1f}% < {eff.busy_sm_percent:g}% in dense bursts (tensor/SM "
                f"{tensor / busy:.2f} ≥ {eff.burst_tensor_ratio:g}): the GPUs wait for input between them",
            )
        return verdict(
            Verdict.UNDERUTILIZED, f"SM activity {busy:.1f}% < {eff.busy_sm_percent:g}% with no bottleneck measured"
        )
    return verdict(Verdict.HEALTHY, f"SM activity {busy:.1f}% ≥ {eff.busy_sm_percent:g}%, {low_tensor}")


def carry_forward(
    previous: JobEfficiency | None, assessment: Assessment, now: datetime, window_seconds: float
) -> JobEfficiency:
    """The job's status.efficiency for this pass: the new verdict, keeping 'since' times that still hold."""
    same = previous is not None and previous.verdict == assessment.verdict
    straggler = assessment.straggler
    straggler_since: datetime | None = None
    if straggler is not None:
        kept = previous is not None and previous.straggler == straggler.pod and previous.straggler_since is not None
        straggler_since = previous.straggler_since if kept and previous is not None else now
    idle_since = None
    if assessment.idle:
        idle_since = (previous.idle_since if previous is not None else None) or now
    return JobEfficiency(
        verdict=assessment.verdict,
        message=assessment.message,
        since=previous.since if same and previous is not None else now,
        window_seconds=window_seconds,
        evidence=assessment.evidence,
        straggler=straggler.pod if straggler else None,
        straggler_node=straggler.node if straggler else None,
        straggler_since=straggler_since,
        idle_since=idle_since,
    )


__all__ = ["Assessment", "Straggler", "assess", "carry_forward"]
