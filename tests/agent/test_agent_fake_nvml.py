"""The fake NVML must answer like the recorded H200, or tests against it prove nothing."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pynvml
import pytest

from powertrain_agent.fake_nvml import H200, RECORDED_H200_UUID, FakeNvml


def test_static_answers_match_the_recorded_card(h200_data: Path) -> None:
    static = json.loads((h200_data / "nvml_static.json").read_text())
    nv = FakeNvml(count=1)
    nv.nvmlInit()
    h = nv.nvmlDeviceGetHandleByIndex(0)
    assert nv.nvmlDeviceGetName(h) == static["name"]
    assert nv.nvmlDeviceGetUUID(h) == static["uuid"] == RECORDED_H200_UUID
    assert nv.nvmlSystemGetDriverVersion() == static["driver"]
    assert nv.nvmlDeviceGetPowerManagementDefaultLimit(h) == static["power_default_limit_mw"]
    assert nv.nvmlDeviceGetEnforcedPowerLimit(h) == static["power_enforced_limit_mw"]
    assert nv.nvmlDeviceGetPowerManagementLimitConstraints(h) == static["power_limit_constraints_mw"]
    mem = nv.nvmlDeviceGetMemoryInfo(h)
    assert (mem.total, mem.used) == (static["memory"]["total"], static["memory"]["used"])
    v2 = nv.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2)
    recorded_v2 = json.loads((h200_data / "nvml_api_answers.json").read_text())["memory_info_v2"]
    assert (v2.total, v2.reserved, v2.used, v2.free) == (
        recorded_v2["total"],
        recorded_v2["reserved"],
        recorded_v2["used"],
        recorded_v2["free"],
    )
    assert nv.nvmlDeviceGetSupportedEventTypes(h) == static["supported_event_types"]
    assert H200.max_sm_clock_mhz == static["max_clocks"]["sm"]
    assert nv.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM) == static["max_clocks"]["mem"]
    # Every NVLink link answers NotSupported on the recorded single-GPU VM, with pynvml's own exception class.
    assert all("NotSupported" in v["error"] for v in static["nvlink_state"].values())
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nv.nvmlDeviceGetNvLinkState(h, 0)


def test_dynamic_answers_match_the_recorded_card(h200_data: Path) -> None:
    answers = json.loads((h200_data / "nvml_api_answers.json").read_text())
    nv = FakeNvml(count=1)
    nv.nvmlInit()
    h = nv.nvmlDeviceGetHandleByIndex(0)
    assert list(nv.nvmlDeviceGetRemappedRows(h)) == answers["remapped_rows"]
    assert nv.nvmlDeviceGetTotalEccErrors(h, 1, 0) == answers["ecc_volatile_uncorrected"]
    field = nv.nvmlDeviceGetFieldValues(h, [pynvml.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION])[0]
    assert [field.fieldId, field.nvmlReturn, field.value.uiVal] == answers["recovery_action_field"][0]
    assert "Timeout" in answers["xid_event_wait_1s"]["error"]
    event_set = nv.nvmlEventSetCreate()
    nv.nvmlDeviceRegisterEvents(h, pynvml.nvmlEventTypeXidCriticalError, event_set)
    with pytest.raises(pynvml.NVMLError_Timeout):
        nv.nvmlEventSetWait(event_set, 10)
    assert "NotSupported" in answers["nvlink_error_counter_0"]["error"]
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nv.nvmlDeviceGetNvLinkErrorCounter(h, 0, 0)


def _phase_means(h200_data: Path, phase: str, column: str) -> float:
    with (h200_data / "nvml_trace.csv").open() as f:
        values = [float(r[column]) for r in csv.DictReader(f) if r["phase"] == phase and r[column] != "nan"]
    return statistics.mean(values)


@pytest.mark.parametrize(
    ("workload", "phase"), [("matmul", "matmul-bf16-8192"), ("memcopy", "memcopy-4GiB"), ("starved", "starved-25pct")]
)
def test_busy_gpus_look_like_the_recorded_phases(h200_data: Path, workload: str, phase: str) -> None:
    nv = FakeNvml(count=1)
    nv.nvmlInit()
    nv.set_workload(0, workload)
    h = nv.nvmlDeviceGetHandleByIndex(0)
    assert nv.nvmlDeviceGetPowerUsage(h) / 1000 == pytest.approx(
        _phase_means(h200_data, phase, "power_mw") / 1000, rel=0.05
    )
    assert nv.nvmlDeviceGetUtilizationRates(h).gpu == pytest.approx(_phase_means(h200_data, phase, "gpu_util"), abs=2)
    if workload == "matmul":
        # Power-bound at the 700 W limit: SM clock pulled down, software power cap engaged, as recorded.
        assert nv.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM) == pytest.approx(
            _phase_means(h200_data, phase, "sm_clock_mhz"), rel=0.03
        )
        assert nv.nvmlDeviceGetCurrentClocksEventReasons(h) & pynvml.nvmlClocksEventReasonSwPowerCap


def test_injected_errors_are_pynvml_errors_and_run_out() -> None:
    nv = FakeNvml(count=2)
    nv.nvmlInit()
    h0, h1 = nv.nvmlDeviceGetHandleByIndex(0), nv.nvmlDeviceGetHandleByIndex(1)
    nv.inject_error("nvmlDeviceGetPowerUsage", pynvml.NVML_ERROR_UNKNOWN, index=0, times=1)
    with pytest.raises(pynvml.NVMLError_Unknown):
        nv.nvmlDeviceGetPowerUsage(h0)
    assert nv.nvmlDeviceGetPowerUsage(h1) > 0
    assert nv.nvmlDeviceGetPowerUsage(h0) > 0


def test_uninitialised_and_missing_library_answer_as_nvml_does() -> None:
    nv = FakeNvml()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nv.nvmlDeviceGetCount()
    with pytest.raises(pynvml.NVMLError_LibraryNotFound):
        FakeNvml(library_present=False).nvmlInit()
