"""Waiting messages name what is short, and jobs that can never fit say so (reason NeverFits)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from core_builders import cluster, job, running, snap, worker_pods

from powertrain.core import conditions as cond
from powertrain.core.lifecycle import decide_all
from powertrain.core.scheduler import schedule

NOW = datetime(2026, 1, 2, tzinfo=UTC)
D = "default"
NODES = cluster()  # 2 spines × 2 racks × 4 nodes × 8 GPUs = 128 GPUs, 128 cpu per node


def _cpu(amount: str) -> dict[str, Any]:
    return {"containers": [{"name": "t", "image": "i", "resources": {"requests": {"cpu": amount}}}]}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            job("huge", replicas=1000, gpus=8),
            "the whole cluster holds 16 8-GPU worker(s) (128 GPUs); the job needs 1000",
        ),
        (
            job("wide", replicas=1, gpus=64),
            "each worker asks for 64 nvidia.com/gpu but no eligible node has more than 8",
        ),
        (
            job("seventeen", replicas=17, gpus=8),
            "the whole cluster holds 16 8-GPU worker(s) (128 GPUs); the job needs 17",
        ),
        (
            job("rack64", replicas=8, gpus=8, mode="Required"),
            "the largest rack (z1/s0/s0-r0) holds 4 8-GPU worker(s) (32 GPUs); "
            "the job needs 8 worker(s) (8×8 = 64 GPUs) inside one rack",
        ),
        (
            job("cpu", replicas=1, gpus=8, pod_spec=_cpu("10000")),
            "each worker asks for 10000 cpu but no eligible node has more than 128",
        ),
    ],
    ids=["1000x8", "1x64", "17x8", "64-required-in-racks-of-32", "10000-cpu"],
)
def test_jobs_that_can_never_fit_say_so_and_block_nobody(obj: dict[str, Any], expected: str) -> None:
    s = snap(NODES, [obj, job("small", replicas=1, gpus=1)])
    d = schedule(s, NOW)
    key = (D, obj["metadata"]["name"])
    assert d.waiting[key].reason == cond.REASON_NEVER_FITS
    assert expected in d.waiting[key].message
    assert "0 free" not in d.waiting[key].message
    assert (D, "small") in d.placements
    plan = next(p for p in decide_all(s, NOW, d) if p.key == key)
    unschedulable = next(c for c in plan.status.conditions if c.type == cond.UNSCHEDULABLE)
    assert unschedulable.reason == cond.REASON_NEVER_FITS


def test_a_job_that_fits_once_gangs_finish_still_waits_for_resources() -> None:
    busy = running(job("busy", replicas=16, gpus=8), [n["metadata"]["name"] for n in NODES])
    s = snap(NODES, [busy, job("next", replicas=2, gpus=8)], pods=worker_pods(busy))
    d = schedule(s, NOW)
    assert d.waiting[(D, "next")].reason == cond.REASON_WAITING_FOR_RESOURCES


def test_free_gpus_next_to_too_little_cpu_name_the_cpu() -> None:
    # Every node keeps 7 of its 8 GPUs free, but a running gang holds 120 of its 128 cpu.
    busy = running(job("busy", replicas=16, gpus=1, pod_spec=_cpu("120")), [n["metadata"]["name"] for n in NODES])
    pods = worker_pods(busy)
    for pod in pods:
        pod["spec"]["containers"][0]["resources"]["requests"] = {"cpu": "120"}
    s = snap(NODES, [busy, job("next", replicas=1, gpus=4, pod_spec=_cpu("16"))], pods=pods)
    waiting = schedule(s, NOW).waiting[(D, "next")]
    assert waiting.reason == cond.REASON_WAITING_FOR_RESOURCES
    assert "112 GPUs are free, but not enough cpu (each worker asks for 16, the most free on a node is 8)" in (
        waiting.message
    )


def test_a_job_blocked_only_by_domains_kept_for_jobs_ahead_is_not_never_fits() -> None:
    nodes = cluster(spines=1, racks=2, nodes=2)  # two racks of 2 × 8 GPUs
    busy = [running(job(f"busy-{r}", replicas=1, gpus=8, priority=9), [f"s0-r{r}-n0"]) for r in (0, 1)]
    pods = [p for b in busy for p in worker_pods(b)]
    # Three blocked 2×8 gangs of different shapes: the first two keep one rack each, the third finds none kept
    # for it, yet it could fit once the busy gangs finish.
    waiting = [
        job(f"w{i}", replicas=2, gpus=8, mode="Required", pod_spec=_cpu(str(i + 1)), created=f"2026-01-01T00:0{i}:00Z")
        for i in range(3)
    ]
    d = schedule(snap(nodes, [*busy, *waiting], pods=pods), NOW)
    third = d.waiting[(D, "w2")]
    assert third.reason == cond.REASON_WAITING_FOR_RESOURCES
    assert "kept for jobs ahead of it" in third.message


def test_never_fits_is_said_past_the_analysed_jobs_of_a_pass() -> None:
    busy = running(job("busy", replicas=16, gpus=8, priority=9), [n["metadata"]["name"] for n in NODES])
    blocked = [
        job(f"b{i:02d}", replicas=1, gpus=8, pod_spec=_cpu(str(i + 1)), created="2026-01-01T00:00:00Z")
        for i in range(70)
    ]
    late = job("late", replicas=1, gpus=64, created="2026-01-01T01:00:00Z")
    d = schedule(snap(NODES, [busy, *blocked, late], pods=worker_pods(busy)), NOW)
    assert d.waiting[(D, "b69")].reason == cond.REASON_WAITING_FOR_RESOURCES
    assert d.waiting[(D, "late")].reason == cond.REASON_NEVER_FITS
    assert "each worker asks for 64 nvidia.com/gpu" in d.waiting[(D, "late")].message
