from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from powertrain.api import constants as c
from powertrain.api.trainingjob import TrainingJobStatus
from powertrain.controllers.usage import UsageLedger
from powertrain.core.snapshot import ClusterSnapshot

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def pod(name: str, node: str, job: str = "train") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "labels": {c.JOB_NAME_LABEL: job, c.REPLICA_INDEX_LABEL: "0"}},
        "spec": {"nodeName": node, "containers": [{"name": "t", "resources": {"limits": {c.GPU_RESOURCE: "2"}}}]},
        "status": {"phase": "Running"},
    }


def report(node: str, stamp: datetime, gpus: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": node},
        "status": {"timestamp": stamp.isoformat(), "windowSeconds": 20.0, "gpus": gpus},
    }


def gpu(index: int, pod_name: str | None, sm: float, watts: float, joules: float) -> dict[str, Any]:
    reading: dict[str, Any] = {
        "index": index, "uuid": f"GPU-{index}", "smActivityPercent": sm, "powerWatts": watts, "energyJoules": joules,
    }  # fmt: skip
    if pod_name:
        reading["pod"] = {"namespace": "ns", "name": pod_name}
    return reading


def test_only_the_jobs_gpus_count_and_each_window_is_added_once() -> None:
    snap = ClusterSnapshot.build(pods=[pod("train-worker-0", "n1"), pod("other-worker-0", "n1", job="other")])
    ledger = UsageLedger()
    status = TrainingJobStatus()
    readings = [gpu(0, "train-worker-0", 80, 600, 12_000), gpu(1, "train-worker-0", 60, 500, 10_000),
                gpu(2, "other-worker-0", 5, 120, 2_400), gpu(3, None, 0, 100, 2_000)]  # fmt: skip
    snap.upsert_telemetry(report("n1", T0, readings))
    ledger.roll_up(snap, ("ns", "train"), status)
    assert status.gpu_utilization == 70.0
    assert status.power_watts == 1100.0
    assert status.energy_joules is None  # the first window seen may predate a restart: not counted
    snap.upsert_telemetry(report("n1", T0 + timedelta(seconds=20), readings))
    ledger.roll_up(snap, ("ns", "train"), status)
    ledger.roll_up(snap, ("ns", "train"), status)  # the same window again: no double count
    assert status.energy_joules == 22_000.0
    assert status.gpu_seconds == 40.0


def test_a_job_without_reports_keeps_its_status() -> None:
    snap = ClusterSnapshot.build(pods=[pod("train-worker-0", "n1")])
    status = TrainingJobStatus(energy_joules=5.0)
    UsageLedger().roll_up(snap, ("ns", "train"), status)
    assert status.energy_joules == 5.0
    assert status.gpu_utilization is None


def test_the_status_gets_the_per_worker_spread_beside_the_mean() -> None:
    snap = ClusterSnapshot.build(pods=[pod("train-worker-0", "n1"), pod("train-worker-1", "n2")])
    snap.upsert_telemetry(
        report("n1", T0, [gpu(0, "train-worker-0", 96, 690, 0), gpu(1, "train-worker-0", 94, 680, 0)])
    )
    snap.upsert_telemetry(report("n2", T0, [gpu(0, "train-worker-1", 0, 160, 0), gpu(1, "train-worker-1", 0, 160, 0)]))
    status = TrainingJobStatus()
    UsageLedger().roll_up(snap, ("ns", "train"), status, T0 + timedelta(seconds=3))
    assert status.gpu_utilization == 47.5
    assert status.usage is not None
    assert status.usage.sm_activity_percent is not None
    assert status.usage.sm_activity_percent.min == 0.0
    assert status.usage.sm_activity_percent.min_worker == "train-worker-1"
    assert status.usage.sm_activity_percent.max == 95.0
    wire = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert wire["usage"]["smActivityPercent"]["minWorker"] == "train-worker-1"


def test_usage_goes_when_no_worker_reported_within_the_window() -> None:
    snap = ClusterSnapshot.build(pods=[pod("train-worker-0", "n1")])
    snap.upsert_telemetry(report("n1", T0, [gpu(0, "train-worker-0", 90, 690, 0)]))
    status = TrainingJobStatus()
    ledger = UsageLedger()
    ledger.roll_up(snap, ("ns", "train"), status, T0)
    assert status.usage is not None
    ledger.roll_up(snap, ("ns", "train"), status, T0 + timedelta(minutes=10))  # the agent went quiet
    assert status.usage is None
