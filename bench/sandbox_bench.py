"""Benchmark of the sandbox API server: writes/s with many open watches, LIST latency at 10k+ objects,
watch delivery latency and the server's RSS. Writes bench/results/sandbox.md.

    .venv/bin/python bench/sandbox_bench.py [--nodes 1000] [--pods 10000] [--watches 50] [--concurrency 64]

The server runs in its own process (as `powertrain sandbox up` does); the load comes from this process over
HTTPS with keep-alive connections. Watchers only count bytes, except one that decodes events to time them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "sandbox.md"
TOKEN = "bench-token"
SERVER = """
import asyncio, sys
from powertrain.sandbox.apiserver import ApiServer
async def main():
    s = ApiServer(token=sys.argv[1])
    await s.start()
    print(s.url, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pod(i: int, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"p-{i}",
            "labels": {"app": f"job-{i % 100}", "bench": "yes"},
            "annotations": {"bench/sent": repr(time.time())},
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "img:1", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        },
    }


async def run_writes(
    session: aiohttp.ClientSession, url: str, bodies: list[tuple[str, str, Any, str]], concurrency: int
) -> tuple[float, list[float]]:
    """Send (method, path, body, content-type) requests with `concurrency` in flight; returns (seconds, latencies)."""
    queue: asyncio.Queue[tuple[str, str, Any, str]] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    latencies: list[float] = []

    async def worker() -> None:
        while not queue.empty():
            method, path, body, ctype = queue.get_nowait()
            if isinstance(body, dict) and "metadata" in body and "annotations" in body["metadata"]:
                body["metadata"]["annotations"]["bench/sent"] = repr(time.time())
            t0 = time.perf_counter()
            async with session.request(
                method, url + path, data=json.dumps(body), headers={"Content-Type": ctype}
            ) as resp:
                await resp.read()
                if resp.status >= 300:
                    raise RuntimeError(f"{method} {path}: {resp.status}")
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies


async def counting_watch(session: aiohttp.ClientSession, url: str, counts: list[int], idx: int) -> None:
    async with session.get(
        url + "/api/v1/pods", params={"watch": "true", "resourceVersion": "1", "timeoutSeconds": "3600"}
    ) as resp:
        async for chunk in resp.content.iter_any():
            counts[idx] += chunk.count(b"\n")


async def timing_watch(session: aiohttp.ClientSession, url: str, delays: list[float], rv: str) -> None:
    async with session.get(
        url + "/api/v1/pods", params={"watch": "true", "resourceVersion": rv, "timeoutSeconds": "3600"}
    ) as resp:
        async for line in resp.content:
            ev = json.loads(line)
            sent = ev["object"]["metadata"].get("annotations", {}).get("bench/sent")
            if sent:
                delays.append(time.time() - float(sent))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def bench(args: argparse.Namespace, url: str, pid: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    conn = aiohttp.TCPConnector(ssl=False, limit=0)
    async with aiohttp.ClientSession(connector=conn, headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        out["rss_start_mib"] = rss_mib(pid)
        nodes = [
            (
                "POST",
                "/api/v1/nodes",
                {"metadata": {"name": f"n-{i}", "labels": {"rack": f"r{i % 32}"}}},
                "application/json",
            )
            for i in range(args.nodes)
        ]
        await run_writes(session, url, nodes, args.concurrency)
        counts = [0] * args.watches
        watchers = [asyncio.create_task(counting_watch(session, url, counts, i)) for i in range(args.watches - 1)]
        async with session.get(url + "/api/v1/pods", params={"limit": "1"}) as resp:
            rv = (await resp.json())["metadata"]["resourceVersion"]
        delays: list[float] = []
        watchers.append(asyncio.create_task(timing_watch(session, url, delays, rv)))
        await asyncio.sleep(0.5)
        creates = [
            ("POST", "/api/v1/namespaces/default/pods", pod(i, f"n-{i % args.nodes}"), "application/json")
            for i in range(args.pods)
        ]

        async def measure(step: str, rate: str, writes: list[tuple[str, str, Any, str]]) -> None:
            cpu0 = cpu_seconds(pid)
            secs, lat = await run_writes(session, url, writes, args.concurrency)
            out[f"{step}_server_cpu_ms"] = (cpu_seconds(pid) - cpu0) / len(writes) * 1e3
            out[rate] = len(writes) / secs
            out[f"{step}_p50_ms"], out[f"{step}_p99_ms"] = pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3

        await measure("create", "create_pods_per_s", creates)
        patches = [
            (
                "PATCH",
                f"/api/v1/namespaces/default/pods/p-{i}/status",
                {"metadata": {"annotations": {"bench/sent": ""}}, "status": {"phase": "Running"}},
                "application/merge-patch+json",
            )
            for i in range(args.pods)
        ]
        await measure("patch", "status_patches_per_s", patches)
        await asyncio.sleep(1.0)
        out["watch_events_delivered"] = sum(counts)
        out["watch_events_expected"] = 2 * args.pods * (args.watches - 1)
        # Delivery delay at a steady, unsaturated rate (at saturation it only measures queueing).
        delays.clear()
        for i in range(args.paced_writes):
            t_next = time.perf_counter() + 1 / args.paced_rate
            body = {"metadata": {"annotations": {"bench/sent": repr(time.time())}}}
            async with session.patch(
                url + f"/api/v1/namespaces/default/pods/p-{i}",
                data=json.dumps(body),
                headers={"Content-Type": "application/merge-patch+json"},
            ) as resp:
                await resp.read()
            await asyncio.sleep(max(0.0, t_next - time.perf_counter()))
        await asyncio.sleep(0.5)
        out["watch_delay_p50_ms"] = pct(delays, 0.5) * 1e3
        out["watch_delay_p99_ms"] = pct(delays, 0.99) * 1e3
        out["watch_delay_samples"] = len(delays)
        for name, params in [
            ("list_all_pods", {}),
            ("list_label_selector", {"labelSelector": "app=job-7"}),
            ("list_node_field_selector", {"fieldSelector": "spec.nodeName=n-3"}),
            ("list_nodes", None),
        ]:
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                path = "/api/v1/nodes" if params is None else "/api/v1/pods"
                async with session.get(url + path, params=params or {}) as resp:
                    raw = await resp.read()
                times.append(time.perf_counter() - t0)
            out[f"{name}_ms"] = statistics.median(times) * 1e3
            out[f"{name}_items"] = len(json.loads(raw)["items"])
        out["rss_end_mib"] = rss_mib(pid)
        out["objects"] = args.nodes + args.pods
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    return out


def write_results(args: argparse.Namespace, r: dict[str, Any]) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Sandbox API server benchmark",
        "",
        f"Recorded {when} by `bench/sandbox_bench.py` on {platform.machine()} with {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}. Server in its own process, load over HTTPS (keep-alive) from one "
        f"client process; {args.concurrency} requests in flight, {args.watches} concurrent watches on all pods.",
        "",
        "| Measure | Result |",
        "| --- | --- |",
        f"| Objects held | {r['objects']:,} ({args.nodes:,} nodes + {args.pods:,} pods) |",
        f"| Pod creates | {r['create_pods_per_s']:,.0f} /s (p50 {r['create_p50_ms']:.1f} ms, "
        f"p99 {r['create_p99_ms']:.1f} ms) |",
        f"| Pod status merge-patches | {r['status_patches_per_s']:,.0f} /s (p50 {r['patch_p50_ms']:.1f} ms, "
        f"p99 {r['patch_p99_ms']:.1f} ms) |",
        f"| Server CPU per write, {args.watches} watches fed | create {r['create_server_cpu_ms']:.2f} ms, "
        f"status patch {r['patch_server_cpu_ms']:.2f} ms (≈ {1e3 / r['patch_server_cpu_ms']:,.0f} patches/s per "
        "core) |",
        f"| Watch events delivered to {args.watches - 1} counting watchers | {r['watch_events_delivered']:,} of "
        f"{r['watch_events_expected']:,} |",
        f"| Watch delivery delay (patch sent → event decoded; {args.paced_rate}/s steady, {args.watches} watches "
        f"open) | p50 {r['watch_delay_p50_ms']:.1f} ms, p99 {r['watch_delay_p99_ms']:.1f} ms "
        f"({r['watch_delay_samples']:,} events) |",
        f"| LIST all pods ({r['list_all_pods_items']:,}) | {r['list_all_pods_ms']:.0f} ms |",
        f"| LIST pods by label (`app=job-7`, {r['list_label_selector_items']:,}) | "
        f"{r['list_label_selector_ms']:.1f} ms |",
        f"| LIST pods by field (`spec.nodeName=n-3`, {r['list_node_field_selector_items']:,}) | "
        f"{r['list_node_field_selector_ms']:.1f} ms |",
        f"| LIST nodes ({r['list_nodes_items']:,}) | {r['list_nodes_ms']:.1f} ms |",
        f"| Server RSS | {r['rss_start_mib']:.0f} MiB empty → {r['rss_end_mib']:.0f} MiB loaded |",
        "",
        "Targets (issue 3): ≥ 1,000 writes/s and ≥ 10,000 objects with many concurrent watches on a 2-core machine.",
        "The client shares the CPUs with the server, so these numbers are a lower bound for the server alone; "
        f"the 1-minute load average before the run was {r['load_before']:.1f} (other work on the machine).",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=10_000)
    p.add_argument("--watches", type=int, default=50)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--paced-rate", type=int, default=200, help="writes/s while measuring watch delivery delay")
    p.add_argument("--paced-writes", type=int, default=1000)
    args = p.parse_args()
    load = os.getloadavg()[0]
    env = {**os.environ, "PYTHONPATH": str(REPO / "operator")}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, TOKEN], stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout is not None
    try:
        url = proc.stdout.readline().strip()
        results = asyncio.run(bench(args, url, proc.pid))
    finally:
        proc.terminate()
        proc.wait(10)
    results["load_before"] = load
    write_results(args, results)


if __name__ == "__main__":
    main()
