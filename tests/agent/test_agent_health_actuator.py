"""Health with hysteresis, and the power-cap actuator (only ever against the simulator / fake NVML)."""

from __future__ import annotations

import pynvml
import pytest
from agent_testing import FakeClock

from powertrain_agent.actuator import PowerActuator
from powertrain_agent.collectors.nvml import NvmlCollector
from powertrain_agent.fake_nvml import FakeNvml
from powertrain_agent.health import HealthTracker
from powertrain_agent.readings import GpuEvent, GpuSample, GpuSlowSample

U = "GPU-1"


def _ok(now: float, **kw: object) -> GpuSample:
    return GpuSample(0, U, "NVIDIA H200", now, **kw)  # type: ignore[arg-type]


def test_critical_xid_marks_unhealthy_then_clears_after_the_hold_and_hysteresis() -> None:
    h = HealthTracker(clear_after_s=60, xid_hold_s=120)
    assert h.observe_sample(_ok(0), 0) == (True, None)
    h.observe_event(GpuEvent(U, "xid", 48, 10), 10)
    healthy, reason = h.observe_sample(_ok(11), 11)
    assert not healthy
    assert reason == "critical XID 48"
    assert not h.observe_sample(_ok(129), 129)[0]  # hold still running
    healthy, reason = h.observe_sample(_ok(131), 131)  # hold over, not yet clear for 60 s
    assert not healthy
    assert reason is not None
    assert reason.startswith("recovering")
    assert h.observe_sample(_ok(185), 185)[0] is False  # last seen faulty at 129
    assert h.observe_sample(_ok(190), 190) == (True, None)


def test_a_fault_during_recovery_restarts_the_hysteresis() -> None:
    h = HealthTracker(clear_after_s=60, xid_hold_s=0)
    h.observe_sample(_ok(0, lost=True), 0)
    h.observe_sample(_ok(50), 50)
    h.observe_sample(_ok(55, lost=True), 55)
    assert not h.observe_sample(_ok(100), 100)[0]
    assert h.observe_sample(_ok(116), 116)[0]


def test_harmless_xids_do_not_drain() -> None:
    h = HealthTracker()
    h.observe_event(GpuEvent(U, "xid", 13, 0), 0)  # graphics engine exception: the application's fault
    assert h.observe_sample(_ok(1), 1) == (True, None)


@pytest.mark.parametrize(
    ("sample_kw", "slow_kw", "expected"),
    [
        ({"recovery_action": 1}, {}, "NVML recovery action: GPU reset"),
        ({"lost": True}, {}, "GPU lost (fallen off the bus)"),
        ({}, {"remap_failure": True}, "row remapping failed"),
        ({}, {"remap_pending": True}, "row remapping pending (needs a GPU reset)"),
    ],
)
def test_drain_causes(sample_kw: dict[str, object], slow_kw: dict[str, object], expected: str) -> None:
    h = HealthTracker()
    h.observe_slow(GpuSlowSample(U, 0, **slow_kw), 0)  # type: ignore[arg-type]
    assert h.observe_sample(_ok(0, **sample_kw), 0) == (False, expected)


def test_new_uncorrectable_ecc_errors_drain() -> None:
    h = HealthTracker(xid_hold_s=100)
    h.observe_slow(GpuSlowSample(U, 0, ecc_uncorrected_volatile=0), 0)
    assert h.observe_sample(_ok(1), 1)[0]
    h.observe_slow(GpuSlowSample(U, 5, ecc_uncorrected_volatile=2), 5)
    assert h.observe_sample(_ok(6), 6) == (False, "new uncorrectable ECC errors")


def _setup(clock: FakeClock, count: int = 2) -> tuple[FakeNvml, NvmlCollector, list[str]]:
    nv = FakeNvml(count=count, seed="act", clock=clock)
    col = NvmlCollector(nv, clock=clock, reinit_backoff_s=0)
    col.open()
    return nv, col, [g.uuid for g in nv.gpus]


def test_request_is_clamped_set_read_back_and_restored_when_withdrawn(clock: FakeClock) -> None:
    nv, col, (a, b) = _setup(clock)
    act = PowerActuator(col.power_control())
    res = act.reconcile({a: 450, b: 150}, [a, b])
    assert (res[a].action, res[a].target_watts, res[a].enforced_watts) == ("set", 450, 450)
    assert (res[b].action, res[b].target_watts) == ("set", 200)  # clamped to the card's minimum
    assert "below the card's minimum" in res[b].message
    assert nv.gpus[0].limit_mw == 450_000
    assert nv.gpus[1].limit_mw == 200_000
    assert act.reconcile({a: 450, b: 150}, [a, b])[a].action == "unchanged"
    res = act.reconcile({a: 450}, [a, b])
    assert res[b].action == "restored"
    assert nv.gpus[1].limit_mw == 700_000
    assert b not in act.reconcile({a: 450}, [a, b])  # never touched again once restored


def test_drift_and_driver_reload_are_corrected(clock: FakeClock) -> None:
    nv, col, (a,) = _setup(clock, 1)
    act = PowerActuator(col.power_control())
    act.reconcile({a: 500}, [a])
    nv.gpus[0].limit_mw = 650_000  # someone ran nvidia-smi -pl behind our back
    assert act.reconcile({a: 500}, [a])[a].action == "set"
    assert nv.gpus[0].limit_mw == 500_000
    nv.driver_reload()
    col.sample()
    col.sample()  # re-initialised
    assert act.reconcile({a: 500}, [a])[a].action == "set"
    assert nv.gpus[0].limit_mw == 500_000


def test_out_of_band_limit_is_reported(clock: FakeClock) -> None:
    nv, col, (a,) = _setup(clock, 1)
    nv.gpus[0].out_of_band_limit_mw = 350_000
    res = PowerActuator(col.power_control()).reconcile({a: 500}, [a])[a]
    assert (res.target_watts, res.enforced_watts) == (500, 350)
    assert "out-of-band" in res.message


def test_dry_run_touches_nothing(clock: FakeClock) -> None:
    nv, col, (a,) = _setup(clock, 1)
    res = PowerActuator(col.power_control(), dry_run=True).reconcile({a: 300}, [a])[a]
    assert res.action == "dry-run"
    assert res.target_watts == 300
    assert nv.set_calls == []
    assert nv.gpus[0].limit_mw == 700_000


def test_shutdown_restores_defaults(clock: FakeClock) -> None:
    nv, col, (a, b) = _setup(clock)
    act = PowerActuator(col.power_control())
    act.reconcile({a: 300, b: 400}, [a, b])
    assert {r.action for r in act.restore_all()} == {"restored"}
    assert [g.limit_mw for g in nv.gpus] == [700_000, 700_000]


def test_failures_and_unknown_gpus_are_reported_not_raised(clock: FakeClock) -> None:
    nv, col, (a,) = _setup(clock, 1)
    nv.inject_error("nvmlDeviceSetPowerManagementLimit", pynvml.NVML_ERROR_NO_PERMISSION)
    res = PowerActuator(col.power_control()).reconcile({a: 300, "GPU-elsewhere": 300}, [a])
    assert res[a].action == "failed"
    assert "Insufficient Permissions" in res[a].message
    assert res["GPU-elsewhere"].action == "unknown-gpu"
    assert PowerActuator(None).reconcile({a: 300}, [a])[a].action == "unsupported"
