"""Telemetry windows per worker (core/telemetry.py): what the snapshot keeps from reports, and the job's usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from powertrain.api import constants as c
from powertrain.core.snapshot import ClusterSnapshot
from powertrain.core.telemetry import HISTORY_SECONDS, summarize

T0 = datetime(2026, 1, 1, tzinfo=UTC)
JOB = ("ml", "llm")


def worker(rank: int, node: str, gpus: int = 8, uid: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": f"llm-worker-{rank}",
        "namespace": "ml",
        "labels": {c.JOB_NAME_LABEL: "llm", c.REPLICA_INDEX_LABEL: str(rank)},
    }
    if uid:
        meta["uid"] = uid
    return {
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": "t", "resources": {"limits": {c.GPU_RESOURCE: gpus}}}]},
        "status": {"phase": "Running"},
    }


def report(
    node: str,
    at: datetime,
    pods: dict[str, tuple[int, float]],
    *,
    io: dict[str, dict[str, Any]] | None = None,
    uid: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`pods`: pod name -> (GPUs, SM activity of each); `io`: pod name -> extra PodReading fields."""
    gpus, readings, index = [], [], 0
    for name, (count, sm) in pods.items():
        ref = {"namespace": "ml", "name": name, **({"uid": uid[name]} if uid and name in uid else {})}
        for _ in range(count):
            gpus.append(
                {
                    "index": index,
                    "uuid": f"GPU-{node}-{index}",
                    "smActivityPercent": sm,
                    "tensorActivityPercent": sm * 0.9,
                    "powerWatts": 100 + 6 * sm,
                    "clockEventReasons": ["SwPowerCap"] if sm > 90 else [],
                    "pod": ref,
                }
            )
            index += 1
        readings.append({**ref, "gpus": count, **((io or {}).get(name, {}))})
    return {
        "metadata": {"name": node},
        "status": {"timestamp": at.isoformat(), "windowSeconds": 20.0, "gpus": gpus, "pods": readings},
    }


def gang(nodes: int = 3) -> ClusterSnapshot:
    return ClusterSnapshot.build(pods=[worker(r, f"n{r}") for r in range(nodes)])


def net(rx: float, tx: float, read: float = 0.0, write: float = 0.0, **more: Any) -> dict[str, Any]:
    return {
        "networkRxBytesPerSecond": rx,
        "networkTxBytesPerSecond": tx,
        "storageReadBytesPerSecond": read,
        "storageWriteBytesPerSecond": write,
        **more,
    }


def test_the_usage_shows_the_worker_at_zero_that_the_mean_hides() -> None:
    s = gang()
    s.upsert_telemetry(report("n0", T0, {"llm-worker-0": (8, 95.0)}, io={"llm-worker-0": net(1e9, 1e9, 4e7)}))
    s.upsert_telemetry(report("n1", T0, {"llm-worker-1": (8, 0.0)}, io={"llm-worker-1": net(1e6, 1e6, 0)}))
    s.upsert_telemetry(report("n2", T0, {"llm-worker-2": (8, 93.0)}, io={"llm-worker-2": net(9e8, 9e8, 5e7)}))
    usage = summarize(s.job_telemetry(JOB, T0 + timedelta(seconds=5), 180))
    assert usage is not None
    assert usage.workers == 3
    assert usage.sm_activity_percent is not None
    assert (usage.sm_activity_percent.min, usage.sm_activity_percent.median, usage.sm_activity_percent.max) == (
        0.0,
        93.0,
        95.0,
    )
    assert usage.sm_activity_percent.min_worker == "llm-worker-1"
    assert usage.network_rx_bytes_per_second is not None
    assert usage.network_rx_bytes_per_second.total == pytest.approx(1e9 + 1e6 + 9e8)
    assert usage.network_rx_bytes_per_second.min_worker == "llm-worker-1"
    assert usage.storage_read_bytes_per_second is not None
    assert usage.storage_read_bytes_per_second.total == pytest.approx(9e7)
    assert usage.storage_read_bytes_per_second.median == pytest.approx(4e7)


def test_infiniband_counts_for_a_worker_that_holds_its_whole_node_and_shared_nodes_are_counted() -> None:
    s = gang(2)
    whole = net(1e6, 2e6, infiniband="pod", infinibandRxBytesPerSecond=4e9, infinibandTxBytesPerSecond=5e9)
    shared = net(1e6, 2e6, infiniband="shared")
    s.upsert_telemetry(report("n0", T0, {"llm-worker-0": (8, 90.0)}, io={"llm-worker-0": whole}))
    s.upsert_telemetry(report("n1", T0, {"llm-worker-1": (8, 90.0)}, io={"llm-worker-1": shared}))
    usage = summarize(s.job_telemetry(JOB, T0, 180))
    assert usage is not None
    assert usage.network_rx_bytes_per_second is not None
    assert usage.network_tx_bytes_per_second is not None
    assert usage.network_rx_bytes_per_second.total == pytest.approx(4e9 + 1e6 + 1e6)
    assert usage.network_tx_bytes_per_second.max == pytest.approx(5e9 + 2e6)
    assert usage.infiniband_shared == 1


def test_the_window_holds_each_report_once_in_order_and_drops_what_is_too_old() -> None:
    s = gang(1)
    for i, sm in enumerate((90.0, 10.0, 80.0)):
        s.upsert_telemetry(report("n0", T0 + timedelta(seconds=20 * i), {"llm-worker-0": (8, sm)}))
    s.upsert_telemetry(report("n0", T0, {"llm-worker-0": (8, 0.0)}))  # an older report seen late: ignored
    s.upsert_telemetry(report("n0", T0 + timedelta(seconds=40), {"llm-worker-0": (8, 0.0)}))  # seen again: ignored
    window = s.job_telemetry(JOB, T0 + timedelta(seconds=40), 30)
    (w,) = window.workers
    assert [p.sm_activity_percent for p in w.points] == [10.0, 80.0]  # ends after now - 30 s
    assert w.points[-1].power_watts == pytest.approx(8 * (100 + 6 * 80))
    assert w.points[0].clock_event_reasons == frozenset()
    long = s.job_telemetry(JOB, T0 + timedelta(seconds=40), 600)
    assert [p.sm_activity_percent for p in long.workers[0].points] == [90.0, 10.0, 80.0]
    later = T0 + timedelta(seconds=HISTORY_SECONDS + 60)
    s.upsert_telemetry(report("n0", later, {"llm-worker-0": (8, 50.0)}))
    kept = s.job_telemetry(JOB, later, 10 * HISTORY_SECONDS).workers[0].points
    assert [p.sm_activity_percent for p in kept] == [50.0]  # bounded history


def test_a_stale_worker_is_left_out_and_a_recreated_pod_does_not_inherit_its_predecessors_points() -> None:
    s = ClusterSnapshot.build(pods=[worker(0, "n0", uid="new"), worker(1, "n1")])
    s.upsert_telemetry(report("n0", T0, {"llm-worker-0": (8, 0.0)}, uid={"llm-worker-0": "old"}))
    s.upsert_telemetry(report("n1", T0 - timedelta(seconds=400), {"llm-worker-1": (8, 90.0)}))
    assert summarize(s.job_telemetry(JOB, T0, 180)) is None
    s.upsert_telemetry(
        report("n0", T0 + timedelta(seconds=20), {"llm-worker-0": (8, 70.0)}, uid={"llm-worker-0": "new"})
    )
    usage = summarize(s.job_telemetry(JOB, T0 + timedelta(seconds=20), 180))
    assert usage is not None
    assert usage.workers == 1
    assert usage.sm_activity_percent is not None
    assert usage.sm_activity_percent.min == 70.0


def test_removing_a_nodes_report_forgets_its_pods_points() -> None:
    s = gang(1)
    s.upsert_telemetry(report("n0", T0, {"llm-worker-0": (8, 90.0)}))
    s.remove_telemetry("n0")
    assert summarize(s.job_telemetry(JOB, T0, 180)) is None
