"""Benchmark of the pure scheduling core (no Kubernetes, no I/O): how long placement decisions take.

Run: .venv/bin/python bench/placement_bench.py [--nodes 4096] [--trials 60] [--jobs 10000]
                                               [--out bench/results/placement.md]

Cluster: N nodes × 8 H200 GPUs in a 4-level topology (node < rack of 16 < spine of 8 racks < zone of 8 spines;
4,096 nodes = 4 zones). Occupancy is made the way a busy cluster looks: Powertrain gangs of 1–32 replicas
placed by the core itself, plus other schedulers' pods holding 1–8 GPUs, until the target share of GPUs is
in use, with a few cordoned and NotReady nodes and some unhealthy GPUs reported by telemetry.

(a) A 128-replica × 8-GPU gang (Preferred, spine): the time of one whole `schedule()` pass that places it,
    median and p99 over many trials on several random occupancies (each trial starts from the same snapshot;
    a pass builds its own capacity counts, so trials are independent). Also a Required-rack 16×8 gang and a
    gang that does not fit (the reason is computed, a domain is kept for it).
(b) 10,000 single-GPU jobs queued at once: one `schedule()` pass; placements per second of that pass, and
    separately the cost of ingesting the 10,000 TrainingJobs into the snapshot (parsing + validation) and of
    the per-job lifecycle decisions the shell makes in the same pass. Then the same jobs spread over four
    queues weighted 1:2:3:4, so the pass interleaves them by weighted fair share.
kube-scheduler's reference: on the order of 100–300 pods/s on 5,000-node clusters (its SLO tests).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from powertrain.api import constants as c
from powertrain.core.lifecycle import decide_all
from powertrain.core.scheduler import schedule
from powertrain.core.snapshot import ClusterSnapshot

NOW = datetime(2026, 1, 2, tzinfo=UTC)
GPUS = 8
RACK, SPINE, ZONE = 16, 8, 8  # nodes per rack, racks per spine, spines per zone


def make_nodes(count: int, rng: random.Random) -> list[dict[str, Any]]:
    nodes = []
    for i in range(count):
        rack, spine = i // RACK, i // (RACK * SPINE)
        zone = i // (RACK * SPINE * ZONE)
        name = f"gpu-{i:05d}"
        ready = "False" if rng.random() < 0.003 else "True"
        nodes.append(
            {
                "metadata": {
                    "name": name,
                    "labels": {
                        c.HOSTNAME_LABEL: name,
                        c.GPU_PRODUCT_LABEL: "NVIDIA-H200",
                        c.RACK_LABEL: f"rack-{rack:04d}",
                        c.SPINE_LABEL: f"spine-{spine:03d}",
                        c.ZONE_LABEL: f"zone-{zone}",
                    },
                },
                "spec": {"unschedulable": True} if rng.random() < 0.005 else {},
                "status": {
                    "allocatable": {"cpu": "192", "memory": "2Ti", c.GPU_RESOURCE: str(GPUS), "pods": "110"},
                    "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                },
            }
        )
    return nodes


def tj(name: str, replicas: int, gpus: int, level: str, mode: str, created: str, priority: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": "bench", "uid": f"uid-{name}", "creationTimestamp": created},
        "spec": {
            "replicas": replicas,
            "gpusPerReplica": gpus,
            "topology": {"level": level, "mode": mode},
            "priority": priority,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "trainer", "image": "img", "resources": {"requests": {"cpu": "8", "memory": "64Gi"}}}
                    ]
                }
            },
        },
    }


def worker_pod(job: dict[str, Any], rank: int, node: str) -> dict[str, Any]:
    name = job["metadata"]["name"]
    return {
        "metadata": {
            "name": f"{name}-worker-{rank}",
            "namespace": "bench",
            "labels": {c.JOB_NAME_LABEL: name, c.REPLICA_INDEX_LABEL: str(rank), c.GANG_GENERATION_LABEL: "1"},
        },
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "trainer",
                    "image": "img",
                    "resources": {
                        "requests": {"cpu": "8", "memory": "64Gi"},
                        "limits": {c.GPU_RESOURCE: str(job["spec"]["gpusPerReplica"])},
                    },
                }
            ],
        },
        "status": {"phase": "Running"},
    }


def busy_cluster(count: int, occupancy: float, seed: int) -> ClusterSnapshot:
    """A snapshot with `occupancy` of its GPUs held: 60 % by Powertrain gangs, 40 % by other pods."""
    rng = random.Random(seed)
    nodes = make_nodes(count, rng)
    snap = ClusterSnapshot.build(nodes=nodes)
    total = count * GPUS
    # Other schedulers' pods, scattered.
    foreign_target = int(total * occupancy * 0.4)
    held = 0
    k = 0
    while held < foreign_target:
        node = nodes[rng.randrange(count)]["metadata"]["name"]
        free = snap.nodes[node].free().get(c.GPU_RESOURCE, 0)
        if free <= 0:
            continue
        gpus = min(free, rng.choice([1, 1, 2, 4, 8]))
        snap.upsert_pod(
            {
                "metadata": {"name": f"other-{k}", "namespace": "other"},
                "spec": {
                    "nodeName": node,
                    "containers": [{"name": "c", "image": "i", "resources": {"limits": {c.GPU_RESOURCE: str(gpus)}}}],
                },
                "status": {"phase": "Running"},
            }
        )
        held += gpus
        k += 1
    # Powertrain gangs placed by the core itself, then turned into running gangs with bound pods.
    gang_target = int(total * occupancy * 0.6)
    held = 0
    g = 0
    while held < gang_target:
        replicas = rng.choice([1, 1, 2, 2, 4, 4, 8, 16, 32])
        gpus = 8 if replicas > 1 else rng.choice([1, 2, 4, 8])
        job = tj(
            f"gang-{g}",
            replicas,
            gpus,
            rng.choice(["rack", "spine"]),
            "Preferred",
            "2026-01-01T00:00:00Z",
            priority=rng.randrange(0, 100),
        )
        snap.upsert_job(job)
        key = ("bench", f"gang-{g}")
        decisions = schedule(snap, NOW, jobs=[snap.jobs[key]])
        g += 1
        placement = decisions.placements.get(key)
        if placement is None:
            snap.remove_job(*key)
            if replicas == 1:
                break
            continue
        job["status"] = {
            "phase": "Running",
            "placement": {"level": placement.level, "domain": placement.domain, "nodes": list(placement.nodes)},
            "startTime": "2026-01-01T00:00:00Z",
            "submitTime": "2026-01-01T00:00:00Z",
        }
        job["metadata"]["resourceVersion"] = "2"
        snap.upsert_job(job)
        for rank, node in enumerate(placement.nodes):
            snap.upsert_pod(worker_pod(job, rank, node))
        held += replicas * gpus
    # Some GPUs reported unhealthy.
    for i in rng.sample(range(count), max(1, count // 200)):
        name = nodes[i]["metadata"]["name"]
        gpus_report = [{"index": j, "uuid": f"GPU-{name}-{j}", "healthy": j != 0} for j in range(GPUS)]
        snap.upsert_telemetry({"metadata": {"name": name}, "status": {"gpus": gpus_report}})
    return snap


def timed(fn: Callable[[], Any], trials: int) -> tuple[list[float], Any]:
    out: list[float] = []
    result: Any = None
    gc.collect()
    for _ in range(trials):
        start = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - start)
    return out, result


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


COLD = False
"""--cold: every gang-case trial starts without the capacity counts the snapshot keeps across passes (the cost
of the first pass after a node changed); by default trials after the first reuse them, as repeated passes do."""


def _pass(snap: ClusterSnapshot, info: Any) -> Any:
    kept = getattr(snap, "kept", None)
    if COLD and kept is not None:
        kept.clear()
    return schedule(snap, NOW, jobs=[info])


def gang_case(snaps: list[ClusterSnapshot], job: dict[str, Any], trials: int) -> dict[str, Any]:
    times: list[float] = []
    outcome = ""
    key = ("bench", job["metadata"]["name"])
    for snap in snaps:
        snap.upsert_job(job)
        info = snap.jobs[key]
        samples, decisions = timed(lambda s=snap, i=info: _pass(s, i), trials)
        times.extend(samples)
        placement = decisions.placements.get(key)
        if placement is not None:
            outcome = f"placed in {placement.level} ({placement.node_count} nodes)"
        else:
            outcome = f"not placed: {decisions.waiting[key].message}"
        snap.remove_job(*key)
    return {
        "median_ms": statistics.median(times) * 1e3,
        "p99_ms": pct(times, 0.99) * 1e3,
        "n": len(times),
        "outcome": outcome,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=4096)
    parser.add_argument("--trials", type=int, default=60, help="trials per occupancy sample")
    parser.add_argument("--samples", type=int, default=3, help="random occupancies for the gang cases")
    parser.add_argument("--occupancy", type=float, default=0.65)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--cold", action="store_true", help="gang cases without kept capacity counts (see COLD)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "placement.md")
    args = parser.parse_args()
    global COLD
    COLD = args.cold

    t0 = time.perf_counter()
    snaps = [busy_cluster(args.nodes, args.occupancy, seed) for seed in range(args.samples)]
    setup_s = time.perf_counter() - t0
    used = [
        1 - sum(max(n.free().get(c.GPU_RESOURCE, 0), 0) for n in s.nodes.values()) / (args.nodes * GPUS) for s in snaps
    ]
    print(
        f"built {args.samples} clusters of {args.nodes} nodes in {setup_s:.1f}s; GPUs in use: "
        + ", ".join(f"{u:.0%}" for u in used),
        flush=True,
    )

    cases = {
        "128×8 gang, Preferred spine": tj("big", 128, 8, "spine", "Preferred", "2026-01-01T01:00:00Z", 0),
        "128×8 gang, Preferred spine, priority 100 (may preempt)": tj(
            "big-vip", 128, 8, "spine", "Preferred", "2026-01-01T01:00:00Z", 100
        ),
        "8×8 gang, Required rack": tj("rack8", 8, 8, "rack", "Required", "2026-01-01T01:00:00Z", 0),
        "128×8 gang, Required rack (cannot fit)": tj("nofit", 128, 8, "rack", "Required", "2026-01-01T01:00:00Z", 0),
    }
    gang_results = {}
    for label, job in cases.items():
        gang_results[label] = gang_case(snaps, job, args.trials)
        r = gang_results[label]
        print(
            f"(a) {label}: median {r['median_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms over {r['n']} passes; "
            f"{r['outcome'][:140]}",
            flush=True,
        )

    # (b) 10,000 single-GPU jobs on a half-busy cluster.
    snap = busy_cluster(args.nodes, 0.5, seed=100)
    jobs = [
        tj(f"single-{i:05d}", 1, 1, "rack", "Preferred", f"2026-01-01T02:{(i // 60) % 60:02d}:{i % 60:02d}Z")
        for i in range(args.jobs)
    ]
    start = time.perf_counter()
    for job in jobs:
        snap.upsert_job(job)
    ingest_s = time.perf_counter() - start
    gc.collect()
    start = time.perf_counter()
    decisions = schedule(snap, NOW)
    pass_s = time.perf_counter() - start
    placed = len(decisions.placements)
    start = time.perf_counter()
    plans = decide_all(snap, NOW, decisions)
    lifecycle_s = time.perf_counter() - start
    print(
        f"(b) {args.jobs} single-GPU jobs: {placed} placed in one pass of {pass_s:.2f}s = {placed / pass_s:,.0f} "
        f"placements/s; ingest {ingest_s:.2f}s ({args.jobs / ingest_s:,.0f} jobs/s); lifecycle for "
        f"{len(plans)} jobs {lifecycle_s:.2f}s",
        flush=True,
    )

    # (b) again with the jobs spread over four queues weighted 1:2:3:4, so the pass orders them by fair share.
    fair_snap = busy_cluster(args.nodes, 0.5, seed=100)
    queues = [{"name": f"w{w}", "weight": w} for w in (1, 2, 3, 4)]
    refused = fair_snap.set_policy(
        {"apiVersion": c.API_VERSION, "kind": "ClusterTrainingPolicy", "spec": {"queues": queues}}
    )
    assert refused is None, refused
    for i, job in enumerate(jobs):
        fair_snap.upsert_job({**job, "spec": {**job["spec"], "queue": f"w{i % 4 + 1}"}})
    gc.collect()
    start = time.perf_counter()
    fair = schedule(fair_snap, NOW)
    fair_s = time.perf_counter() - start
    fair_result = (len(fair.placements), fair_s)
    print(f"(b) over 4 weighted queues: {len(fair.placements)} placed in {fair_s:.2f}s", flush=True)

    write_results(
        args,
        setup_s,
        used,
        gang_results,
        placed,
        pass_s,
        ingest_s,
        lifecycle_s,
        len(plans),
        len(decisions.waiting),
        fair_result,
    )
    return 0


def write_results(
    args: argparse.Namespace,
    setup_s: float,
    used: list[float],
    gangs: dict[str, dict[str, Any]],
    placed: int,
    pass_s: float,
    ingest_s: float,
    lifecycle_s: float,
    planned: int,
    waiting: int,
    fair: tuple[int, float],
) -> None:
    cpu = platform.processor() or platform.machine()
    lines = [
        "# Placement engine benchmark (`bench/placement_bench.py`)",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPU(s) ({cpu}), Python "
        f"{sys.version.split()[0]}, one thread; load average at the end {os.getloadavg()[0]:.1f} (a shared machine: "
        "p99 includes time the benchmark waited for a core). Re-run: `.venv/bin/python bench/placement_bench.py`.",
        "",
        f"Cluster: {args.nodes} nodes × {GPUS} H200 GPUs, 4 levels (node < rack of {RACK} < spine of {SPINE} racks "
        f"< zone of {ZONE} spines), ~0.5 % cordoned, ~0.3 % NotReady, one unhealthy GPU on 0.5 % of nodes. "
        f"Occupancy for (a): {', '.join(f'{u:.0%}' for u in used)} of GPUs held (60 % by Powertrain gangs of 1–32 "
        "replicas placed by the core, 40 % by other schedulers' pods of 1–8 GPUs).",
        "",
        "## (a) One gang: time of a whole `schedule()` pass that decides it",
        "",
        f"{args.samples} random occupancies × {args.trials} passes each.",
        "",
        "| Case | Median | p99 | Passes | Outcome |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for label, r in gangs.items():
        outcome = r["outcome"].replace("|", "\\|")
        lines.append(f"| {label} | {r['median_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['n']} | {outcome} |")
    lines += [
        "",
        f"## (b) {args.jobs:,} queued single-GPU jobs, one pass (cluster 50 % busy)",
        "",
        "| Measure | Value |",
        "| --- | ---: |",
        f"| Jobs placed in the pass | {placed:,} (waiting: {waiting:,}) |",
        f"| `schedule()` pass | {pass_s:.2f} s |",
        f"| **Placements per second** | **{placed / pass_s:,.0f}** |",
        f"| Ingesting the TrainingJobs into the snapshot (parse + validate, once per resourceVersion) | "
        f"{ingest_s:.2f} s ({args.jobs / ingest_s:,.0f} jobs/s) |",
        f"| Lifecycle decisions for all {planned:,} jobs in the same pass | {lifecycle_s:.2f} s |",
        f"| Same jobs over 4 queues weighted 1:2:3:4 (fair-share order): placed, pass | {fair[0]:,}, {fair[1]:.2f} s |",
        f"| **Placements per second, 4 weighted queues** | **{fair[0] / fair[1]:,.0f}** |",
        "",
        "kube-scheduler: on the order of 100–300 pods/s on 5,000-node clusters; the goal here was ≥ 10× that.",
        f"Setup (building {args.samples} busy clusters through the core itself): {setup_s:.1f} s.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
