"""Fragmented GPUs: what stays free while a gang waits for room; nothing while nobody does (or waits on quota)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core_builders import H100, cluster, job, policy, running, snap, worker_pods

from powertrain.core.fragmentation import fragmented_gpus
from powertrain.core.placement import gpus_free_by_model
from powertrain.core.scheduler import schedule

NOW = datetime(2026, 1, 1, 1, tzinfo=UTC)
NODES = cluster(spines=1, racks=2, nodes=4)  # 8 nodes x 8 GPUs, as in the chart's sandbox
NAMES = [n["metadata"]["name"] for n in NODES]


def busy(gpus_taken: list[int], priority: int = 10) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    jobs, pods = [], []
    for i, gpus in enumerate(gpus_taken):
        j = running(job(f"run{i}", gpus=gpus, priority=priority), [NAMES[i]])
        jobs.append(j)
        pods += worker_pods(j)
    return jobs, pods


def fragmented(
    jobs: list[dict[str, Any]], pods: list[dict[str, Any]], reason: str | None = None, **kw: Any
) -> dict[str, int]:
    s = snap(NODES, jobs, pods, **kw)
    decisions = schedule(s, NOW)
    assert not decisions.placements, "the scenario expects nothing to fit"
    if reason is not None:
        assert [w.reason for w in decisions.waiting.values()] == [reason]
    return fragmented_gpus(gpus_free_by_model(s), decisions)


def test_gpus_left_free_while_a_big_gang_waits_are_fragmented() -> None:
    jobs, pods = busy([8, 8, 8, 8, 8, 8, 4])  # 52 of 64 held; 12 free on two nodes
    big = job("big", replicas=8, gpus=8, level="spine", priority=0, created="2026-01-01T00:30:00Z")
    assert fragmented([*jobs, big], pods, "WaitingForResources") == {"NVIDIA-H200": 12}


def test_a_gang_preempting_others_still_leaves_the_free_gpus_fragmented_meanwhile() -> None:
    jobs, pods = busy([8, 8, 8, 8, 8, 8, 4], priority=0)
    urgent = job("urgent", replicas=8, gpus=8, level="spine", priority=100, created="2026-01-01T00:30:00Z")
    assert fragmented([*jobs, urgent], pods, "WaitingForPreemption") == {"NVIDIA-H200": 12}


def test_gpus_of_a_model_no_waiting_gang_accepts_are_fragmented() -> None:
    jobs, pods = busy([8, 8, 8, 8, 8, 8, 8, 4])
    h100_only = job("h100", gpus=2, models=[H100], created="2026-01-01T00:30:00Z")
    assert fragmented([*jobs, h100_only], pods) == {"NVIDIA-H200": 4}


def test_free_gpus_are_not_fragmented_when_no_gang_waits() -> None:
    jobs, pods = busy([8, 8, 4])
    assert fragmented(jobs, pods) == {"NVIDIA-H200": 0}


def test_a_gang_waiting_on_its_queue_quota_makes_nothing_fragmented() -> None:
    jobs, pods = busy([8, 8, 4])
    capped = job("over", replicas=2, gpus=8, queue="small", created="2026-01-01T00:30:00Z")
    rules = policy(queues=[{"name": "default"}, {"name": "small", "gpuQuota": 8}])
    assert fragmented([*jobs, capped], pods, "QuotaExceeded", policy=rules) == {"NVIDIA-H200": 0}
