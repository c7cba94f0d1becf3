"""The NVML collector against the fake NVML: every reading, and every failure a real card produces."""

from __future__ import annotations

import pynvml
import pytest
from agent_testing import FakeClock

from powertrain_agent.collectors import CollectorUnavailable
from powertrain_agent.collectors.nvml import NvmlCollector
from powertrain_agent.energy import EnergyCounter
from powertrain_agent.fake_nvml import H200_HGX, FakeNvml


def _collector(clock: FakeClock, count: int = 2, **kw: object) -> tuple[FakeNvml, NvmlCollector]:
    nv = FakeNvml(count=count, clock=clock, **kw)  # type: ignore[arg-type]
    col = NvmlCollector(nv, clock=clock, reinit_backoff_s=0.0)
    col.open()
    return nv, col


def test_a_busy_gpu_reads_as_compute_bound_and_an_idle_one_as_idle(clock: FakeClock) -> None:
    nv, col = _collector(clock)
    nv.set_workload(0, "matmul")
    col.sample()  # primes GPM (metrics need two samples)
    clock.advance(1)
    busy, idle = col.sample()
    assert busy.power_watts == pytest.approx(682.5)
    assert busy.power_instant_watts == pytest.approx(682.5)
    assert busy.tensor_activity_percent == pytest.approx(91.8)
    assert busy.sm_activity_percent == pytest.approx(94.6)
    assert busy.clock_event_reasons == pynvml.nvmlClocksEventReasonSwPowerCap
    assert busy.power_limit_watts == 700
    assert busy.min_power_limit_watts == 200
    assert busy.recovery_action == 0
    assert idle.power_watts == pytest.approx(77)
    assert idle.sm_activity_percent == 0
    assert idle.utilization_percent == 0


def test_copy_looks_busy_to_nvml_utilization_but_not_to_tensor_activity(clock: FakeClock) -> None:
    nv, col = _collector(clock, count=1)
    nv.set_workload(0, "memcopy")
    col.sample()
    (s,) = col.sample()
    assert s.utilization_percent is not None
    assert s.utilization_percent >= 99
    assert s.tensor_activity_percent is not None
    assert s.tensor_activity_percent < 1
    assert s.dram_activity_percent is not None
    assert s.dram_activity_percent > 80


def test_not_supported_is_none_and_not_asked_again(clock: FakeClock) -> None:
    nv, col = _collector(clock, count=1)
    nv.inject_error("nvmlDeviceGetTemperature", pynvml.NVML_ERROR_NOT_SUPPORTED)
    (s,) = col.sample()
    assert s.temperature_celsius is None
    assert s.power_watts is not None  # one missing field does not cost the others
    col.sample()
    assert nv.calls["nvmlDeviceGetTemperature"] == 1
    assert not col.errors  # NotSupported is an answer, not an error


def test_slow_readings_on_the_recorded_card_leave_nvlink_absent(clock: FakeClock) -> None:
    nv, col = _collector(clock, count=1)
    nv.set_workload(0, "matmul", owner="pod-a")
    (slow,) = col.sample_slow()
    assert slow.nvlink_links_up is None
    assert slow.nvlink_errors is None
    assert slow.ecc_uncorrected_volatile == 0
    assert slow.remap_pending is False
    assert slow.pcie_tx_bytes_per_second == pytest.approx(6_790 * 1024)
    assert slow.pids == [100_000]
    col.sample_slow()
    assert nv.calls["nvmlDeviceGetNvLinkState"] == 1  # learnt once that NVLink is not there


def test_nvlink_on_an_hgx_board(clock: FakeClock) -> None:
    nv, col = _collector(clock, count=1, spec=H200_HGX)
    nv.gpus[0].nvlink_errors = 3
    (slow,) = col.sample_slow()
    assert slow.nvlink_links_up == 18
    assert slow.nvlink_errors == 3


def test_energy_comes_from_the_counter_on_the_slow_path(clock: FakeClock) -> None:
    nv, col = _collector(clock, count=1)
    nv.set_workload(0, "matmul")
    first = col.sample_slow()[0].energy_millijoules
    clock.advance(10)
    second = col.sample_slow()[0].energy_millijoules
    assert first is not None
    assert second is not None
    assert (second - first) / 1000 == pytest.approx(682.5 * 10, rel=1e-3)
    col.sample()
    assert "nvmlDeviceGetTotalEnergyConsumption" not in {k for k, v in nv.calls.items() if v > 2}


def test_a_lost_gpu_is_reported_lost_and_the_others_keep_going(clock: FakeClock) -> None:
    nv, col = _collector(clock)
    nv.lose_gpu(1)
    samples = col.sample()
    assert [s.lost for s in samples] == [False, True]
    assert samples[0].power_watts is not None
    events = col.wait_events(0.5)
    assert [(e.uuid, e.kind, e.value) for e in events] == [(nv.gpus[1].uuid, "xid", 79)]
    nv.recover_gpu(1)
    assert [s.lost for s in col.sample()] == [False, False]


def test_driver_reload_reinitialises_and_bumps_the_generation(clock: FakeClock) -> None:
    nv, col = _collector(clock, count=1)
    nv.set_workload(0, "matmul")
    energy = EnergyCounter()
    clock.advance(5)
    energy.update(col.sample_slow()[0].energy_millijoules or 0)
    clock.advance(5)
    before = energy.update(col.sample_slow()[0].energy_millijoules or 0)
    generation = col.generation
    nv.driver_reload()
    assert col.sample() == []  # the reload is noticed ...
    samples = col.sample()  # ... and NVML re-initialised
    assert len(samples) == 1
    assert not samples[0].lost
    assert col.generation == generation + 1
    nv.set_workload(0, "matmul")
    clock.advance(5)
    after = energy.update(col.sample_slow()[0].energy_millijoules or 0)
    assert energy.resets == 1
    assert after > before  # the counter restarted from zero; the total did not go backwards


def test_transient_errors_are_counted_and_the_field_is_none_for_one_sample(clock: FakeClock) -> None:
    nv, col = _collector(clock, count=1)
    nv.inject_error("nvmlDeviceGetPowerUsage", pynvml.NVML_ERROR_UNKNOWN, times=1)
    (s,) = col.sample()
    assert s.power_watts is None
    assert col.errors["NVMLError_Unknown"] == 1
    (s,) = col.sample()
    assert s.power_watts is not None


def test_no_nvml_library_gives_a_clear_message() -> None:
    col = NvmlCollector(FakeNvml(library_present=False))
    with pytest.raises(CollectorUnavailable, match=r"libnvidia-ml\.so\.1.*--backend sim"):
        col.open()


def test_gpm_not_supported_leaves_activity_empty(clock: FakeClock) -> None:
    nv, col = _collector(clock, count=1)
    nv.inject_error("nvmlGpmQueryDeviceSupport", pynvml.NVML_ERROR_NOT_SUPPORTED)
    col.sample()
    (s,) = col.sample()
    assert s.sm_activity_percent is None
    assert s.utilization_percent is not None


def test_ecc_double_bit_event_is_delivered(clock: FakeClock) -> None:
    nv, col = _collector(clock, count=1)
    nv.push_event(0, pynvml.nvmlEventTypeDoubleBitEccError)
    assert [e.kind for e in col.wait_events(0.5)] == ["ecc_double_bit"]
    assert col.wait_events(0.01) == []
