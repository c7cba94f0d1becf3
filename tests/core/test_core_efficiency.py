"""Efficiency verdicts (core/efficiency.py): each rule on hand-made windows, and the real H200 trace's phases."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from powertrain.api.policy import ClusterTrainingPolicySpec
from powertrain.api.telemetry import GpuReading, NodeTelemetry, NodeTelemetryStatus, PodReading, PodRef
from powertrain.api.trainingjob import Verdict
from powertrain.core.efficiency import assess, carry_forward
from powertrain.core.telemetry import JobTelemetry, TelemetryHistory, Worker, WorkerPoint, WorkerTelemetry, job_window
from powertrain_agent.collectors.replay import load_trace
from powertrain_agent.data import H200_PHASES, H200_STATIC, H200_TRACE
from powertrain_agent.readings import GpuSample
from powertrain_agent.reasons import decode_reasons
from powertrain_agent.rollup import GpuWindow

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = ClusterTrainingPolicySpec()


def point(sm: float | None = 90.0, tensor: float | None = 80.0, at: int = 0, **more: object) -> WorkerPoint:
    return WorkerPoint(
        at=T0 + timedelta(seconds=at),
        seconds=20.0,
        gpus=8,
        sm_activity_percent=sm,
        tensor_activity_percent=tensor,
        **more,  # type: ignore[arg-type]
    )


def window(*workers: list[WorkerPoint], nodes: list[str] | None = None) -> JobTelemetry:
    out = []
    for i, points in enumerate(workers):
        node = nodes[i] if nodes else f"n{i}"
        out.append(WorkerTelemetry(("ml", f"llm-worker-{i}"), node, i, tuple(points)))
    return JobTelemetry(T0 - timedelta(seconds=120), T0, tuple(out))


def verdict_of(w: JobTelemetry, **kw: object) -> Verdict:
    return assess(w, POLICY, **kw).verdict  # type: ignore[arg-type]


def test_no_reports_is_unknown() -> None:
    result = assess(window([], []), POLICY)
    assert result.verdict == Verdict.UNKNOWN
    assert "no telemetry" in result.message


def test_idle_gang() -> None:
    result = assess(window([point(1.0, 0.5)], [point(2.0, 1.0)]), POLICY)
    assert result.verdict == Verdict.IDLE
    assert result.idle
    assert result.evidence.sm_activity_percent == 1.5


def test_one_worker_at_zero_next_to_busy_peers_is_a_straggler() -> None:
    busy = [point(95, 90), point(94, 90)]
    result = assess(window(busy, busy, [point(0, 0), point(0, 0)]), POLICY)
    assert result.verdict == Verdict.STRAGGLER
    assert result.straggler is not None
    assert result.straggler.pod == "llm-worker-2"
    assert result.straggler.node == "n2"
    assert result.evidence.slowest_worker == "llm-worker-2"
    assert result.evidence.slowest_ratio == 0.0


def test_a_worker_a_little_slower_is_not_a_straggler_and_hysteresis_keeps_a_named_one() -> None:
    w = window([point(90, 85)], [point(90, 85)], [point(65, 60)])  # 0.72× the median
    assert assess(w, POLICY).straggler is None
    # Once named (it was below 0.7 before), it stays one until it is back above 0.8.
    assert assess(w, POLICY, previous_straggler="llm-worker-2").straggler is not None
    back = window([point(90, 85)], [point(90, 85)], [point(75, 70)])
    assert assess(back, POLICY, previous_straggler="llm-worker-2").straggler is None


def test_thermal_outranks_healthy() -> None:
    hot = [point(95, 90, clock_event_reasons=frozenset({"HwThermalSlowdown"})) for _ in range(3)]
    assert verdict_of(window(hot)) == Verdict.THERMAL_THROTTLED


def test_power_cap_at_the_default_limit_is_healthy_below_it_is_throttled() -> None:
    def pts(limit: float) -> list[WorkerPoint]:
        return [
            point(
                95,
                90,
                power_watts=0.98 * limit,
                power_limit_watts=limit,
                default_power_limit_watts=5600.0,
                clock_event_reasons=frozenset({"SwPowerCap"}),
            )
            for _ in range(3)
        ]

    assert verdict_of(window(pts(5600.0))) == Verdict.HEALTHY
    capped = assess(window(pts(3200.0)), POLICY)
    assert capped.verdict == Verdict.POWER_THROTTLED
    assert capped.evidence.power_capped_percent == pytest.approx(57.1)


def test_memory_communication_input_and_underutilized() -> None:
    assert verdict_of(window([point(99, 1, dram_activity_percent=88)])) == Verdict.MEMORY_BOUND
    chatty = point(50, 10, network_rx_bytes_per_second=2e9, network_tx_bytes_per_second=1e9)
    assert verdict_of(window([chatty], [chatty])) == Verdict.COMMUNICATION_BOUND
    plain = point(50, 10)
    assert verdict_of(window([plain], [plain]), wider_than_level=True) == Verdict.COMMUNICATION_BOUND
    assert verdict_of(window([plain], [plain])) == Verdict.UNDERUTILIZED
    reading = point(30, 5, storage_read_bytes_per_second=5e8)
    assert verdict_of(window([reading])) == Verdict.INPUT_BOUND
    assert verdict_of(window([point(20, 19)])) == Verdict.INPUT_BOUND  # dense bursts, waits between them
    assert verdict_of(window([point(80, 5)])) == Verdict.HEALTHY  # busy without tensor cores


def test_thresholds_come_from_the_policy() -> None:
    strict = ClusterTrainingPolicySpec.model_validate({"rescheduling": {"idleUtilizationPercent": 30}})
    assert assess(window([point(20, 19)]), strict).verdict == Verdict.IDLE
    lenient = ClusterTrainingPolicySpec.model_validate({"efficiency": {"healthyTensorPercent": 15}})
    assert assess(window([point(20, 19)]), lenient).verdict == Verdict.HEALTHY


def test_since_is_kept_while_the_verdict_holds() -> None:
    idle = assess(window([point(1, 0)]), POLICY)
    first = carry_forward(None, idle, T0, 120)
    later = carry_forward(first, idle, T0 + timedelta(seconds=300), 120)
    assert later.since == T0
    assert later.idle_since == T0
    busy = assess(window([point(95, 90)]), POLICY)
    after = carry_forward(later, busy, T0 + timedelta(seconds=400), 120)
    assert after.verdict == Verdict.HEALTHY
    assert after.since == T0 + timedelta(seconds=400)
    assert after.idle_since is None


# --- the real H200 trace -------------------------------------------------------------------------------------

REPORT_SECONDS = 5.0
"""The agent's report window for this test: the trace's phases last 10-30 s."""

EXPECTED = {
    "idle-before": Verdict.IDLE,
    "matmul-bf16-8192": Verdict.HEALTHY,  # SwPowerCap 99 % of the time, but at the 700 W default limit
    "memcopy-4GiB": Verdict.MEMORY_BOUND,
    "starved-25pct": Verdict.INPUT_BOUND,  # SM 21 %, tensor 20 %: dense bursts, waiting between them
    "small-matmul-2048": Verdict.HEALTHY,
    "memory-held-idle": Verdict.IDLE,  # 100 GiB held, nothing running
    "idle-after": Verdict.IDLE,
}


def _phase_reports() -> dict[str, list[NodeTelemetry]]:
    """The trace's samples rolled up per phase into the reports an agent would write (GpuWindow means, reasons
    ORed over the window), with the limits of the static readings; the first and last 1 s of each phase are
    left out, where a report window would straddle two phases."""
    default_limit = json.loads(H200_STATIC.read_text())["power_default_limit_mw"] / 1000
    phases = {p["phase"]: p for p in json.loads(H200_PHASES.read_text())["phases"]}
    rows = load_trace(H200_TRACE)
    with H200_TRACE.open() as f:
        names = [line.split(",")[1] for line in f.read().splitlines()[1:]]
    by_phase: dict[str, list[tuple[float, dict[str, float | None]]]] = defaultdict(list)
    for row, name in zip(rows, names, strict=True):
        by_phase[name].append((row.t, row.values))
    out: dict[str, list[NodeTelemetry]] = {}
    ref = PodRef(namespace="ml", name="h200-worker-0", uid="u0")
    for name in phases:
        samples = by_phase[name]
        start, end = samples[0][0] + 1.0, samples[-1][0] - 1.0
        reports = []
        t = start
        while t + REPORT_SECONDS <= end + 1e-6:
            w = GpuWindow()
            for at, v in samples:
                if t <= at < t + REPORT_SECONDS:
                    w.add(_sample(at, v))
            limit = (samples[0][1].get("power_limit_mw") or 0) / 1000
            reading = GpuReading(
                index=0,
                uuid="GPU-h200",
                sm_activity_percent=w.mean("sm_activity_percent"),
                tensor_activity_percent=w.mean("tensor_activity_percent"),
                dram_activity_percent=w.mean("dram_activity_percent"),
                utilization_percent=w.mean("utilization_percent"),
                power_watts=w.mean("power_watts"),
                power_limit_watts=limit,
                default_power_limit_watts=default_limit,
                clock_event_reasons=decode_reasons(w.reasons),
                pod=ref,
            )
            stamp = T0 + timedelta(seconds=t + REPORT_SECONDS - rows[0].t)
            status = NodeTelemetryStatus(
                timestamp=stamp,
                window_seconds=REPORT_SECONDS,
                gpus=[reading],
                pods=[PodReading(namespace="ml", name="h200-worker-0", uid="u0", gpus=1)],
            )
            reports.append(NodeTelemetry(metadata={"name": "h200"}, status=status))
            t += REPORT_SECONDS
        out[name] = reports
    return out


def _sample(at: float, v: dict[str, float | None]) -> GpuSample:
    def scaled(key: str, factor: float) -> float | None:
        value = v.get(key)
        return value * factor if value is not None else None

    reasons = v.get("throttle_reasons")
    return GpuSample(
        0,
        "GPU-h200",
        "NVIDIA H200",
        at,
        utilization_percent=v.get("gpu_util"),
        sm_activity_percent=v.get("gpm_sm_util"),
        tensor_activity_percent=v.get("gpm_tensor_active"),
        dram_activity_percent=v.get("gpm_dram_bw_util"),
        power_watts=scaled("power_mw", 1e-3),
        clock_event_reasons=int(reasons) if reasons is not None else None,
    )


@pytest.mark.parametrize("phase", list(EXPECTED))
def test_h200_trace_phases_get_the_right_verdict(phase: str) -> None:
    reports = _phase_reports()[phase]
    assert reports, f"phase {phase} gave no report window"
    history = TelemetryHistory()
    for report in reports:
        history.record("h200", report)
    end = reports[-1].status.timestamp if reports[-1].status else None
    assert end is not None
    seconds = REPORT_SECONDS * len(reports)
    w = job_window(history, [Worker(("ml", "h200-worker-0"), "h200", 0, "u0")], end, seconds)
    result = assess(w, POLICY)
    assert result.verdict == EXPECTED[phase], result.message
