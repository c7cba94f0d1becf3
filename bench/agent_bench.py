"""Benchmark of the node agent; writes bench/results/agent.md.

1. Cost of one fast sample of 8 GPUs through the real NVML collector over the fake NVML, two ways:
   - pure overhead: the fake answers instantly, so this is the agent's own Python cost;
   - recorded costs: each fake call waits the µs that call took on the real H200 (nvml_costs.json), so this
     estimates the wall time on a real 8-GPU node.
   Same for one slow sample (energy ~4 ms and PCIe ~21 ms per call: this is why they are off the fast path).
2. CPU and RSS of a real `powertrain agent` process (sim backend, 8 GPUs, 1 s interval, no API server),
   scraped every 15 s like Prometheus would, over --duration seconds.
3. The per-pod evidence path: one kubelet pod-resources List (gRPC over a unix socket, against the sandbox
   kubelet's server) and reading 8 pods' io.stat + net/dev from a host-like tree, per slow sample; then a real
   agent process on a sandbox node with 8 one-GPU pods, attributing through the node's pod-resources socket and
   reporting per-pod network/storage to the API server, CPU and RSS as in 2.

Usage: .venv/bin/python bench/agent_bench.py [--duration 180] [--output bench/results/agent.md]
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
import tempfile
import threading
import time
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any

from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.podresources import PodDevices, PodResourcesServers
from powertrain.sandbox.restclient import RestClient, api_path
from powertrain_agent.collectors.nvml import NvmlCollector
from powertrain_agent.data import H200_COSTS as COSTS
from powertrain_agent.fake_nvml import H200_HGX, FakeNvml
from powertrain_agent.podio import PodIoReader
from powertrain_agent.podresources import PodResourcesClient

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def sample_costs(costs: dict[str, float] | None, repeats: int) -> tuple[list[float], list[float]]:
    nv = FakeNvml(count=8, spec=H200_HGX, seed="bench", call_costs_us=costs)
    for i in range(8):
        nv.set_workload(i, "matmul")
    col = NvmlCollector(nv)
    col.open()
    col.sample()  # prime GPM
    fast, slow = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        col.sample()
        fast.append(time.perf_counter() - t)
    for _ in range(max(repeats // 20, 3)):
        t = time.perf_counter()
        col.sample_slow()
        slow.append(time.perf_counter() - t)
    col.close()
    return fast, slow


def proc_cpu_rss(pid: int) -> tuple[float, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return cpu, rss


PODS = 8


def pod_path_costs(repeats: int) -> tuple[list[float], list[float]]:
    """Seconds per pod-resources List (8 pods) and per read of 8 pods' io.stat + net/dev."""
    with tempfile.TemporaryDirectory(prefix="pt-bench-") as tmp:
        root = Path(tmp)
        uids = [f"0a1b2c3d-4e5f-6789-abcd-ef01234567{i:02d}" for i in range(PODS)]
        for i, uid in enumerate(uids):
            slice_name = f"kubepods-burstable-pod{uid.replace('-', '_')}.slice"
            pod = root / "cgroup" / "kubepods.slice" / "kubepods-burstable.slice" / slice_name
            (pod / "cri-containerd-x.scope").mkdir(parents=True)
            (pod / "cgroup.procs").write_text("")
            (pod / "cri-containerd-x.scope" / "cgroup.procs").write_text(f"{1000 + i}\n")
            (pod / "io.stat").write_text("259:0 rbytes=1048576 wbytes=4096 rios=10 wios=1 dbytes=0 dios=0\n" * 2)
            (root / "proc" / str(1000 + i) / "net").mkdir(parents=True)
            (root / "proc" / str(1000 + i) / "net" / "dev").write_text(
                "h\nh\n    lo: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n  eth0: 9 1 0 0 0 0 0 0 9 1 0 0 0 0 0 0\n"
            )
        reader = PodIoReader(root / "proc", root / "cgroup")
        reads = []
        for _ in range(repeats):
            t = time.perf_counter()
            for uid in uids:
                reader.read(uid)
            reads.append(time.perf_counter() - t)

        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        listing: list[PodDevices] = [("ml", f"w-{i}", (str(i),)) for i in range(PODS)]
        servers = PodResourcesServers(root / "sock", lambda _node: listing)
        asyncio.run_coroutine_threadsafe(servers.start(["bench"]), loop).result(10)
        client = PodResourcesClient(servers.socket("bench"))
        client.list()  # connect once, as the agent's long-lived channel does
        lists = []
        for _ in range(repeats):
            t = time.perf_counter()
            client.list()
            lists.append(time.perf_counter() - t)
        client.close()
        asyncio.run_coroutine_threadsafe(servers.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    return lists, reads


def agent_cmd(port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "powertrain_agent",
        "--backend",
        "sim",
        "--gpus",
        "8",
        "--interval",
        "1",
        "--metrics-port",
        str(port),
        "--metrics-address",
        "127.0.0.1",
        "--log-level",
        "WARNING",
        *extra,
    ]


async def create_pod(client: RestClient, pod: dict[str, Any]) -> None:
    await client.create(api_path("pods", "default"), pod)


def run_agent_on_sandbox(duration: float, port: int, pod_resources: bool = True) -> dict[str, object]:
    """The agent on a sandbox node with 8 one-GPU pods, through the node's pod-resources socket (or, for
    comparison, without it: the simulator's own GPU map, and grpcio never imported)."""
    with Sandbox(SandboxConfig(nodes=1, gpus_per_node=8, pod_resources=True)) as sb:
        node = sb.node_names[0]
        for i in range(PODS):
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"w-{i}", "namespace": "default", "labels": {"powertrain.dev/job-name": "bench"}},
                "spec": {
                    "nodeName": node,
                    "containers": [{"name": "t", "image": "i", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
                },
            }
            sb.call(partial(create_pod, pod=pod))
        socket = str(sb.pod_resources_socket(node)) if pod_resources else "none"
        extra = ["--kubeconfig", str(sb.kubeconfig_path), "--pod-resources-socket", socket]
        env = {**os.environ, "NODE_NAME": node}
        result = run_agent(duration, port, agent_cmd(port, *extra), env)
        report = sb.call(lambda c: c.get(f"/apis/powertrain.dev/v1alpha1/nodetelemetries/{node}"))
    status = report.get("status") or {}
    pods = status.get("pods") or []
    result["attribution"] = status.get("podAttribution")
    result["pods_reported"] = len(pods)
    result["pods_with_rates"] = sum(1 for p in pods if p.get("networkRxBytesPerSecond") is not None)
    return result


def run_agent(
    duration: float, port: int, cmd: list[str] | None = None, env: dict[str, str] | None = None
) -> dict[str, object]:
    cmd = cmd or agent_cmd(port, "--node-name", "bench", "--no-kube")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(5)  # let imports and first samples settle before measuring
        cpu0, rss0 = proc_cpu_rss(proc.pid)
        t0 = time.time()
        rss_series = [rss0]
        scrape_bytes = 0
        while time.time() - t0 < duration:
            time.sleep(15)
            scrape_bytes = len(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read())
            rss_series.append(proc_cpu_rss(proc.pid)[1])
        cpu1, _ = proc_cpu_rss(proc.pid)
        wall = time.time() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return {
        "wall_s": wall,
        "cpu_percent": 100 * (cpu1 - cpu0) / wall,
        "rss_start_mib": rss_series[0] / 2**20,
        "rss_end_mib": rss_series[-1] / 2**20,
        "rss_max_mib": max(rss_series) / 2**20,
        "scrape_bytes": scrape_bytes,
        "exit_code": proc.returncode,
    }


def ms(values: list[float]) -> str:
    return f"{1000 * statistics.median(values):.3f} ms (p95 {1000 * sorted(values)[int(0.95 * len(values))]:.3f} ms)"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=180.0)
    ap.add_argument("--repeats", type=int, default=400)
    ap.add_argument("--port", type=int, default=19411)
    ap.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "agent.md")
    args = ap.parse_args()

    costs = json.loads(COSTS.read_text())
    fast0, slow0 = sample_costs(None, args.repeats)
    fast1, slow1 = sample_costs(costs, args.repeats) if costs else ([], [])
    agent = run_agent(args.duration, args.port)
    lists, reads = pod_path_costs(args.repeats)
    evidence = run_agent_on_sandbox(args.duration, args.port + 1)
    baseline = run_agent_on_sandbox(args.duration, args.port + 2, pod_resources=False)

    lines = [
        "# Node agent benchmark",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()} "
        f"(shared with other work: treat as an upper bound). Script: `bench/agent_bench.py`.",
        "",
        "## One sample of 8 GPUs (real NVML collector over the fake NVML)",
        "",
        "| sample | pure agent overhead (fake answers instantly) | with the H200's recorded per-call costs |",
        "| --- | --- | --- |",
        f"| fast (every interval): utilization, memory, power, temperature, clocks, reasons, limits, "
        f"2 field values, GPM | {ms(fast0)} | {ms(fast1) if fast1 else 'n/a (nvml_costs.json not found)'} |",
        f"| slow (every 5 s, own thread): energy, PCIe tx/rx, ECC, remapped rows, NVLink (18 links), processes "
        f"| {ms(slow0)} | {ms(slow1) if slow1 else 'n/a'} |",
        "",
        "The recorded costs (µs per call, `nvml_costs.json`) cover utilization, memory, power, energy, temperature,"
        " clocks, throttle reasons, power limit, PCIe and processes; calls without a recorded cost (GPM, field "
        "values, limits, NVLink, ECC) count as free in the second column. The slow sample is dominated by "
        "energy (~4 ms) and PCIe (2 × ~21 ms) per GPU, which is why they never run on the fast path.",
        "",
        f"## A running agent: sim backend, 8 GPUs, 1 s interval, scraped every 15 s, {agent['wall_s']:.0f} s",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| CPU | {agent['cpu_percent']:.2f} % of one core |",
        f"| RSS at start / end / max | {agent['rss_start_mib']:.1f} / {agent['rss_end_mib']:.1f} / "
        f"{agent['rss_max_mib']:.1f} MiB |",
        f"| /metrics size | {agent['scrape_bytes']} bytes |",
        f"| exit code after SIGTERM | {agent['exit_code']} |",
        "",
        "The sim backend runs the same collector, exporter and threads as on real GPUs, plus the simulator's "
        "physics, so this is an upper bound of the agent's own cost. On the real H200 (1 GPU) the agent used "
        "0.49 % of one core and 49 MiB: see h200_check.md.",
        "",
        "## Per-pod evidence: pod-resources attribution and per-pod network / storage",
        "",
        "| step (once per slow sample, every 5 s) | cost |",
        "| --- | --- |",
        f"| kubelet pod-resources List, {PODS} pods (gRPC, unix socket, sandbox kubelet's server) | {ms(lists)} |",
        f"| read {PODS} pods' cgroup io.stat + /proc/PID/net/dev (host-like tree on local disk) | {ms(reads)} |",
        "",
        f"A real agent on a sandbox node with {PODS} one-GPU pods (sim backend, 1 s interval, attribution through "
        f"the node's pod-resources socket, NodeTelemetry reports with per-pod rates, scraped every 15 s), "
        f"{evidence['wall_s']:.0f} s:",
        "",
        "| measure | with pod-resources (default) | `--pod-resources-socket none` (no grpcio) |",
        "| --- | --- | --- |",
        f"| CPU, % of one core (goal < 1 %) | {evidence['cpu_percent']:.2f} | {baseline['cpu_percent']:.2f} |",
        f"| RSS at start / end / max, MiB (goal < 80) | {evidence['rss_start_mib']:.1f} / "
        f"{evidence['rss_end_mib']:.1f} / {evidence['rss_max_mib']:.1f} | {baseline['rss_start_mib']:.1f} / "
        f"{baseline['rss_end_mib']:.1f} / {baseline['rss_max_mib']:.1f} |",
        f"| GPUs attributed by | {evidence['attribution']} | {baseline['attribution']} |",
        f"| pods in the last report / with network and storage rates | {evidence['pods_reported']} / "
        f"{evidence['pods_with_rates']} | {baseline['pods_reported']} / {baseline['pods_with_rates']} |",
        f"| exit code after SIGTERM | {evidence['exit_code']} | {baseline['exit_code']} |",
        "",
        "The sim backend's per-pod byte counters come from its workload model, not from files, so the file reads "
        "are timed separately above; at 8 pods per 5 s they add well under 0.1 % of a core.",
        "",
        "Resident memory is mostly imported code. Measured as VmRSS after the import in a fresh interpreter on "
        "this machine: `kubernetes` ~36 MiB, aiohttp (powertrain.kubeclient's transport) ~23 MiB, the CEL engine "
        "~28 MiB, the pydantic API models without it ~22 MiB, grpcio ~26 MiB (its C core; the channel itself is "
        "small), http.client + ssl ~7 MiB. The agent talks to the API server through its own standard-library "
        "client (`powertrain_agent/kubehttp.py`) and the models load the CEL engine only when a rule is evaluated "
        "(NodeTelemetry has none), so a reporting agent carries the models and, with the socket, grpcio. Before "
        "that (commit 2a6c289, same machine, same script): 107.0 / 107.5 / 107.5 MiB with pod-resources, "
        "93.0 / 93.3 / 93.3 MiB without; CPU 0.26 / 0.17 % of a core. The --no-kube exporter above imports "
        "none of them.",
        "",
    ]
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
