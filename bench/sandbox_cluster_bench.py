"""Benchmark of the sandbox cluster: node creation rate, fleet start-up, pod start latency and throughput.

Run: .venv/bin/python bench/sandbox_cluster_bench.py [--pods 500] [--out bench/results/sandbox_cluster.md]

Measures, in one process (API server, kubelet and scheduler share one event loop in the sandbox thread; the
benchmark's client runs in the main thread):
1. `Sandbox` start-up with the 1,213-node Alibaba fleet (nodes/s) and with a uniform 64-node cluster.
2. Pod start latency: pods created one at a time, each timed from POST until the watch shows it Running
   (default scheduler → binding → kubelet admission → Running, start_delay 0).
3. Burst: N pods created at once (creation concurrency 32) until all are Running; pods/s end to end, on the
   64-node cluster and on the Alibaba fleet (where the default scheduler has 1,213 nodes to filter).
Results are appended as a dated section to the results file (Markdown), with the machine's CPU count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import ssl
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from powertrain.data import ALIBABA_NODES as ALIBABA
from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.kubelet import KubeletConfig
from powertrain.sandbox.scheduler import feasible_nodes_to_find

REPO = Path(__file__).resolve().parents[1]


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}
            ],
        },
    }


class Client:
    def __init__(self, sb: Sandbox) -> None:
        self.url = sb.url
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {sb.token}"},
            connector=aiohttp.TCPConnector(limit=64, ssl=ssl.create_default_context(cadata=sb.ca_pem.decode())),
        )

    async def create(self, body: dict[str, Any]) -> None:
        async with self.session.post(f"{self.url}/api/v1/namespaces/default/pods", json=body) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"create failed: {resp.status} {await resp.text()}")

    async def running_times(
        self, expected: int, out: dict[str, float], done: asyncio.Event, arrived: asyncio.Event | None = None
    ) -> None:
        """Watch pods; record when each first shows phase Running."""
        params = {"watch": "true", "resourceVersion": "0", "timeoutSeconds": "600"}
        timeout = aiohttp.ClientTimeout(total=None)
        async with self.session.get(f"{self.url}/api/v1/pods", params=params, timeout=timeout) as resp:
            async for line in resp.content:
                event = json.loads(line)
                obj = event.get("object") or {}
                name = (obj.get("metadata") or {}).get("name")
                if (obj.get("status") or {}).get("phase") == "Running" and name not in out:
                    out[name] = time.perf_counter()
                    if arrived is not None:
                        arrived.set()
                    if len(out) >= expected:
                        done.set()
                        return


async def latency(sb: Sandbox, count: int) -> list[float]:
    client = Client(sb)
    seen: dict[str, float] = {}
    done = asyncio.Event()
    arrived = asyncio.Event()
    watcher = asyncio.create_task(client.running_times(count, seen, done, arrived))
    await asyncio.sleep(0.2)
    samples = []
    try:
        for i in range(count):
            name = f"lat-{i}"
            began = time.perf_counter()
            await client.create(pod(name))
            while name not in seen:
                arrived.clear()
                await arrived.wait()
            samples.append(seen[name] - began)
    finally:
        watcher.cancel()
        await client.session.close()
    return samples


async def burst(sb: Sandbox, count: int) -> float:
    client = Client(sb)
    seen: dict[str, float] = {}
    done = asyncio.Event()
    watcher = asyncio.create_task(client.running_times(count, seen, done))
    await asyncio.sleep(0.2)
    gate = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with gate:
            await client.create(pod(f"burst-{i}"))

    began = time.perf_counter()
    try:
        await asyncio.gather(*(one(i) for i in range(count)))
        await asyncio.wait_for(done.wait(), 600)
    finally:
        watcher.cancel()
        await client.session.close()
    return time.perf_counter() - began


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=500, help="pods in the burst")
    parser.add_argument("--fleet-pods", type=int, default=1000, help="pods in the burst on the Alibaba fleet")
    parser.add_argument("--latency-pods", type=int, default=100, help="pods timed one by one")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/sandbox_cluster.md")
    args = parser.parse_args()
    lines = [
        f"## {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} — {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        "",
        "Everything (API server, kubelet, scheduler, the benchmark's client) shares these CPUs with whatever",
        "else runs on the machine; repeated runs vary by about ±30 %.",
        "",
        "| Measurement | Result |",
        "| --- | --- |",
    ]

    def record(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    began = time.perf_counter()
    with Sandbox(SandboxConfig(cluster_file=ALIBABA, kubelet=KubeletConfig(start_delay=0))) as sb:
        wall = time.perf_counter() - began
        t = sb.timings
        record(
            f"| Alibaba fleet start-up ({t.node_count} nodes) | {wall:.2f} s total; nodes created in "
            f"{t.nodes:.2f} s = **{t.node_count / t.nodes:.0f} nodes/s**; API server {t.api_server:.2f} s, "
            f"CRDs {t.crds:.2f} s, kubelet+scheduler sync {t.controllers:.2f} s |"
        )
        seconds = asyncio.run(burst(sb, args.fleet_pods))
        record(
            f"| Burst on the Alibaba fleet: {args.fleet_pods} pods → all Running (the scheduler filters up to "
            f"{feasible_nodes_to_find(t.node_count)} feasible of {t.node_count} nodes per pod) | "
            f"{seconds:.2f} s = **{args.fleet_pods / seconds:.0f} pods/s** |"
        )
    config = SandboxConfig(nodes=64, gpus_per_node=8, topology="spine=2,rack=4", kubelet=KubeletConfig(start_delay=0))
    with Sandbox(config) as sb:
        record(f"| Uniform 64-node start-up | {sb.timings.total:.2f} s |")
        loop_samples = asyncio.run(latency(sb, args.latency_pods))
        record(
            f"| Pod start latency, POST → Running seen on a watch ({len(loop_samples)} pods, one at a time, "
            f"start_delay 0) | p50 {statistics.median(loop_samples) * 1000:.1f} ms, "
            f"p95 {pct(loop_samples, 0.95) * 1000:.1f} ms, max {max(loop_samples) * 1000:.1f} ms |"
        )
        seconds = asyncio.run(burst(sb, args.pods))
        record(
            f"| Burst: {args.pods} pods created at once → all Running | {seconds:.2f} s = "
            f"**{args.pods / seconds:.0f} pods/s** end to end (each pod: create, bind, 2–3 status writes) |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    header = "" if args.out.exists() else "# Sandbox cluster benchmark (bench/sandbox_cluster_bench.py)\n\n"
    with args.out.open("a") as handle:
        handle.write(header + "\n".join(lines) + "\n\n")
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()
