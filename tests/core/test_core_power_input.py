"""Bad power input on a job: a capWatts outside the GPUs' range is an Event (once), a mode change while running
restarts the search with an Event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core_builders import cluster, job, running, snap, worker_pods

from powertrain.core.power_modes import job_power_step

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _capped_snapshot(cap: int | None, mode: str = "Efficiency") -> Any:
    nodes = cluster(spines=1, racks=1, nodes=1, gpus=2)
    name = nodes[0]["metadata"]["name"]
    obj = running(job("j", gpus=2), [name])
    obj["spec"]["power"] = {"mode": mode, **({"capWatts": cap} if cap is not None else {})}
    gpus = [
        {
            "index": i,
            "uuid": f"GPU-{i}",
            "powerWatts": 500.0,
            "minPowerLimitWatts": 200.0,
            "maxPowerLimitWatts": 700.0,
            "defaultPowerLimitWatts": 700.0,
            "pod": {"namespace": "default", "name": "j-worker-0"},
        }
        for i in range(2)
    ]
    report = {"metadata": {"name": name}, "status": {"timestamp": "2026-01-01T00:00:00Z", "gpus": gpus}}
    return snap(nodes, [obj], worker_pods(obj), telemetry=[report]), obj


def test_a_cap_outside_the_gpus_range_is_an_event_once() -> None:
    s, obj = _capped_snapshot(100)
    state, notes = job_power_step(s, ("default", "j"), NOW)
    assert [n.reason for n in notes] == ["PowerCapClamped"]
    assert "below the GPUs' minimum limit 200 W" in notes[0].message
    assert state.cap_watts == 100  # requested as written: the agent clamps it
    obj["status"]["power"] = state.to_wire()
    s.upsert_job(obj)
    _, again = job_power_step(s, ("default", "j"), NOW)
    assert again == []  # said once, not at every pass
    s, _ = _capped_snapshot(9000)
    _, notes = job_power_step(s, ("default", "j"), NOW)
    assert "above the GPUs' maximum limit 700 W" in notes[0].message


def test_a_mode_change_while_running_restarts_the_search_with_an_event() -> None:
    s, obj = _capped_snapshot(None, mode="Efficiency")
    state, _ = job_power_step(s, ("default", "j"), NOW)
    obj["status"]["power"] = state.model_copy(update={"state": "Settled", "cap_watts": 400}).to_wire()
    obj["spec"]["power"] = {"mode": "Performance"}
    s.upsert_job(obj)
    state, notes = job_power_step(s, ("default", "j"), NOW)
    assert state.state == "Off"
    assert state.cap_watts is None
    assert [n.reason for n in notes] == ["PowerModeChanged"]
    assert "Efficiency -> Performance" in notes[0].message


def test_gpus_without_a_reported_limit_range_are_never_searched() -> None:
    s, obj = _capped_snapshot(None)
    report = s.telemetry[next(iter(s.telemetry))].model_dump(mode="json", by_alias=True, exclude_none=True)
    for g in report["status"]["gpus"]:
        g.pop("minPowerLimitWatts")
        g["smClockMhz"] = 1500.0
    s.upsert_telemetry(report)
    state, _ = job_power_step(s, ("default", "j"), NOW)
    obj["status"]["power"] = state.to_wire()
    s.upsert_job(obj)
    later = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    report["status"]["timestamp"] = "2026-01-01T00:01:00Z"
    s.upsert_telemetry(report)
    state, _ = job_power_step(s, ("default", "j"), later)
    assert state.state == "Baseline"
    assert state.cap_watts is None
    assert "no power-limit range" in (state.reason or "")
