"""The power modes' search, driven against the sim GPU physics (fake_nvml) as ground truth."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from core_builders import cluster, job, running, snap, worker_pods

from powertrain.api.trainingjob import JobPowerStatus
from powertrain.core.power_modes import (
    BASELINE,
    EXPLICIT,
    EXPLORING,
    OFF,
    SETTLED,
    SIGNAL_CLOCK,
    SIGNAL_THROUGHPUT,
    THROUGHPUT_STALE,
    job_signals,
    next_power_state,
)
from powertrain_agent.fake_nvml import H200, WORKLOADS, FakeGpu

NODES = cluster(spines=1, racks=1, nodes=1, gpus=2)
NODE = NODES[0]["metadata"]["name"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = 10.0


def report(gpus: list[FakeGpu], at: datetime, pod: str, publish: bool) -> dict[str, Any]:
    readings = []
    for i, g in enumerate(gpus):
        w = g.workload
        readings.append(
            {
                "index": i,
                "uuid": f"GPU-{i}",
                "powerWatts": g.draw_watts(),
                "smClockMhz": g.sm_clock_mhz(),
                "smActivityPercent": w.sm_activity,
                "tensorActivityPercent": w.tensor_activity,
                "dramActivityPercent": w.dram_activity,
                "powerLimitWatts": g.enforced_mw / 1000,
                "defaultPowerLimitWatts": 700,
                "minPowerLimitWatts": 200,
                "maxPowerLimitWatts": 700,
                "clockEventReasons": ["SwPowerCap"] if g.power_capped() else [],
                "pod": {"namespace": "default", "name": pod},
            }
        )
    pods = [{"namespace": "default", "name": pod}]
    if publish:
        pods[0]["throughputPerSecond"] = sum(g.throughput() for g in gpus)  # type: ignore[assignment]
    return {
        "metadata": {"name": NODE},
        "status": {"timestamp": at.isoformat(), "windowSeconds": WINDOW, "gpus": readings, "pods": pods},
    }


def search(
    workload: str, mode: str, publish: bool | Callable[[int], bool] = False, passes: int = 30
) -> tuple[JobPowerStatus, list[FakeGpu], list[JobPowerStatus]]:
    """Run the search pass by pass: each pass applies the cap to the sim GPUs, then a window is reported.
    `publish`: whether the job publishes its throughput, or which passes (by index) it does."""
    gpus = [FakeGpu(i, f"GPU-{i}", H200, WORKLOADS[workload], limit_mw=700_000) for i in range(2)]
    obj = running(job("j", gpus=2), [NODE])
    obj["spec"]["power"] = {"mode": mode}
    state: JobPowerStatus | None = None
    now = T0
    history = []
    for i in range(passes):
        cap = state.cap_watts if state is not None else None
        for g in gpus:
            g.limit_mw = (cap or 700) * 1000
        now += timedelta(seconds=WINDOW + 3)
        published = publish(i) if callable(publish) else publish
        s = snap(NODES, [obj], worker_pods(obj), telemetry=[report(gpus, now, "j-worker-0", published)])
        state = next_power_state(state, mode, None, job_signals(s, ("default", "j")), now)
        history.append(state)
    assert state is not None
    for g in gpus:
        g.limit_mw = (state.cap_watts or 700) * 1000
    return state, gpus, history


def true_slowdown(gpus: list[FakeGpu]) -> float:
    return sum(g.workload.rate_per_second for g in gpus) / sum(g.throughput() for g in gpus) - 1


def test_a_memory_bound_phase_is_capped_low_at_little_cost() -> None:
    state, gpus, _ = search("memcopy", "Efficiency")
    assert state.state == SETTLED
    assert state.cap_watts is not None
    assert state.cap_watts <= 400
    assert true_slowdown(gpus) <= 0.05


def test_a_data_starved_phase_is_capped_near_its_draw() -> None:
    state, gpus, _ = search("starved", "Balanced")
    assert state.state == SETTLED
    assert state.cap_watts == 300
    assert true_slowdown(gpus) <= 0.02


def test_a_power_bound_matmul_keeps_the_cap_that_keeps_its_clock_within_the_bound() -> None:
    efficient, gpus, _ = search("matmul", "Efficiency")
    assert efficient.cap_watts == 650  # 600 W would cost 9 %
    assert true_slowdown(gpus) <= 0.05
    balanced, gpus, _ = search("matmul", "Balanced")
    assert balanced.state == SETTLED
    assert balanced.cap_watts is None
    assert true_slowdown(gpus) == pytest.approx(0.0)


def test_the_jobs_own_throughput_is_the_signal_when_it_publishes_one() -> None:
    state, gpus, _ = search("memcopy", "Efficiency", publish=True)
    assert state.signal == "throughput"
    assert state.state == SETTLED
    assert true_slowdown(gpus) <= 0.05


def test_a_job_that_stops_publishing_mid_search_falls_back_to_the_clock_and_still_settles() -> None:
    state, gpus, history = search("memcopy", "Efficiency", publish=lambda i: i < 3, passes=40)
    assert history[2].state == EXPLORING
    assert history[2].signal == SIGNAL_THROUGHPUT
    assert state.state == SETTLED
    assert state.signal == SIGNAL_CLOCK
    assert true_slowdown(gpus) <= 0.05
    # It waited the documented limit before giving the throughput up, and said why.
    waiting = [h for h in history if h.throughput_missing_since is not None]
    assert waiting
    assert "throughput" in (waiting[0].reason or "")
    switched = next(i for i, h in enumerate(history) if h.state == BASELINE and i > 0)
    assert "throughput" in (history[switched].reason or "")
    assert history[switched].since - waiting[0].throughput_missing_since >= THROUGHPUT_STALE  # type: ignore[operator]


def test_a_job_whose_throughput_comes_back_is_measured_with_it_again() -> None:
    state, gpus, history = search("memcopy", "Efficiency", publish=lambda i: i < 3 or i >= 25, passes=60)
    assert any(h.signal == SIGNAL_CLOCK for h in history[3:25])
    assert state.signal == SIGNAL_THROUGHPUT
    assert state.state == SETTLED
    assert true_slowdown(gpus) <= 0.05


def test_a_short_gap_in_the_throughput_is_waited_out() -> None:
    _, _, history = search("memcopy", "Efficiency", publish=lambda i: i != 2, passes=30)
    assert all(h.signal in (None, SIGNAL_THROUGHPUT) for h in history)
    assert history[-1].state == SETTLED


def test_performance_never_caps_and_an_explicit_cap_always_wins() -> None:
    state, _, history = search("memcopy", "Performance", passes=3)
    assert all(h.state == OFF and h.cap_watts is None for h in history)
    explicit = next_power_state(state, "Efficiency", 450, None, T0)
    assert explicit.state == EXPLICIT
    assert explicit.cap_watts == 450


def test_the_search_steps_down_one_step_per_measured_window_and_waits_for_a_fresh_one() -> None:
    _, _, history = search("memcopy", "Efficiency", passes=4)
    assert [h.state for h in history][:2] == [BASELINE, EXPLORING]
    caps = [h.cap_watts for h in history]
    assert caps[1] == 650
    assert caps[2] == 600
    assert caps[3] == 550
    stale = next_power_state(history[-1], "Efficiency", None, None, T0 + timedelta(hours=1))
    assert stale == history[-1]


def test_a_mode_change_restarts_the_search_and_a_phase_change_re_measures() -> None:
    settled, gpus, _ = search("memcopy", "Efficiency")
    restarted = next_power_state(settled, "Balanced", None, None, T0)
    assert restarted.state == BASELINE
    assert restarted.cap_watts is None
    for g in gpus:
        g.workload = WORKLOADS["matmul"]
    obj = running(job("j", gpus=2), [NODE])
    later = (settled.since or T0) + timedelta(minutes=11)
    s = snap(NODES, [obj], worker_pods(obj), telemetry=[report(gpus, later, "j-worker-0", False)])
    again = next_power_state(settled, "Efficiency", None, job_signals(s, ("default", "j")), later)
    assert again.state == BASELINE
    assert "phase changed" in (again.reason or "")
