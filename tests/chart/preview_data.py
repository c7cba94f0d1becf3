"""Collect the series the dashboards show, from real exporters, for the PNG previews (not a test).

Two runs, at the same time:
- sandbox: the sandbox cluster (8 nodes x 8 H200, 2 racks), one operator and one sim-backend agent per node,
  started with the chart's command lines, running the repository's example TrainingJobs; the operator's and
  the agents' /metrics are scraped every second. Sim GPUs are modelled on the recorded H200 trace.
  The example ClusterTrainingPolicy sets the power budgets (cluster and per rack; scaled down to this
  cluster, BUDGETS) and the two queues (default, research); llm-pretrain is applied with spec.power.capWatts
  (CAP_WATTS) so the cap panels have a series; one pod each of llm-finetune (queue research), llm-pretrain and
  batch-embeddings is deleted mid-run (RESTARTS), so the operator restarts those gangs (restart panels).
- replay: one agent replaying the recorded H200 trace (the agent's packaged default, nvml_trace.csv) on 8 GPUs,
  scraped every second.
Output: .tools/previews/<run>.jsonl (one scrape per line). Then `tools/plot_dashboard_previews.py` draws them.

Usage: .venv/bin/python tests/chart/preview_data.py [--seconds 120]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from chart_helpers import REPO, by_kind, one, pod_spec, render
from chart_tools import helm, kubectl
from prometheus_client.parser import text_string_to_metric_families

from powertrain.api.constants import JOB_NAME_LABEL
from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.testing import FAST_KUBELET

OUT = REPO / ".tools" / "previews"
EXAMPLES = [
    "cluster-policy.yaml",
    "llm-pretrain.yaml",
    "resnet-finetune.yaml",
    "llm-finetune.yaml",
    "batch-embeddings.yaml",
]
LATE_EXAMPLES = ["urgent-eval.yaml"]
CAPPED = "llm-pretrain.yaml"
# The example policy's budgets are sized for a large cluster; scaled to these 64 GPUs (at most ~45 kW) so draw and
# budget share a plot. This changes only the budget series (the preview's draw is recorded, not planned).
BUDGETS = {"clusterWatts": 48_000, "domainWatts": 24_000}
CAP_WATTS = 550
# (seconds into the run, job): delete one of the job's pods then, as a node problem would, to force a gang restart.
RESTARTS = [(9.0, "llm-finetune"), (14.0, "llm-pretrain"), (65.0, "batch-embeddings")]


def scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as rsp:
            text = rsp.read().decode()
    except OSError:
        return []
    return [(s.name, dict(s.labels), s.value) for fam in text_string_to_metric_families(text) for s in fam.samples]


def record(path: Path, ports: dict[str, int], seconds: float, stop: threading.Event) -> None:
    start = time.time()
    with path.open("w") as out:
        while time.time() - start < seconds and not stop.is_set():
            tick = time.time()
            for source, port in ports.items():
                samples = scrape(port)
                out.write(json.dumps({"t": round(tick - start, 2), "source": source, "samples": samples}) + "\n")
            time.sleep(max(0.0, 1.0 - (time.time() - tick)))


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def with_flag(args: list[str], flag: str, value: Any) -> list[str]:
    return [f"{flag}={value}" if a.startswith(f"{flag}=") else a for a in args]


def replay_run(seconds: float, stop: threading.Event) -> None:
    port = 19502
    cmd = [sys.executable, "-m", "powertrain", "agent", "--node-name=h200-replay", "--backend=replay"]
    cmd += [
        "--gpus=8",
        "--no-kube",
        "--dry-run-power",
        "--interval=0.5",
        f"--metrics-port={port}",
    ]
    proc = start(cmd, dict(os.environ), OUT / "replay-agent.log")
    try:
        time.sleep(3)
        record(OUT / "replay.jsonl", {"agent:h200-replay": port}, seconds, stop)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def sandbox_run(seconds: float, stop: threading.Event) -> None:
    manifests = render(
        helm(), None, "agent.backend=sim", "agent.extraArgs={--report-min-interval=2,--report-max-interval=5}"
    )
    config = SandboxConfig(nodes=8, gpus_per_node=8, topology="zone=1,spine=1,rack=2", kubelet=FAST_KUBELET)
    with Sandbox(config) as sb:
        env = {**os.environ, "KUBECONFIG": str(sb.kubeconfig_path), "PYTHONUNBUFFERED": "1"}
        # The chart's CRDs, kopf's peering kinds included (the operator leads through a ClusterKopfPeering).
        for crd in by_kind(manifests, "CustomResourceDefinition"):
            cmd = [str(kubectl()), "apply", "--server-side", "--force-conflicts", "-f", "-"]
            subprocess.run(cmd, input=yaml.safe_dump(crd), text=True, env=env, check=True, capture_output=True)
        procs = []
        ports: dict[str, int] = {}
        op = pod_spec(one(manifests, "Deployment", "operator"))["containers"][0]
        args = with_flag(with_flag(op["args"], "--metrics-port", 19600), "--liveness-port", 19601)
        procs.append(
            start([sys.executable, "-m", "powertrain", *args], {**env, "POD_NAME": "op-0"}, OUT / "operator.log")
        )
        ports["operator"] = 19600
        agent = pod_spec(one(manifests, "DaemonSet", "agent"))["containers"][0]
        for i, node in enumerate(sb.node_names):
            port = 19610 + i
            a = [x.replace("$(NODE_NAME)", node) for x in with_flag(agent["args"], "--metrics-port", port)]
            procs.append(
                start([sys.executable, "-m", "powertrain", *a], {**env, "NODE_NAME": node}, OUT / f"agent-{node}.log")
            )
            ports[f"agent:{node}"] = port
        try:
            time.sleep(5)
            k = str(kubectl())

            def apply(names: list[str]) -> None:
                for name in names:
                    doc = yaml.safe_load((REPO / "examples" / name).read_text())
                    if doc["kind"] == "ClusterTrainingPolicy":
                        doc["spec"]["power"] |= BUDGETS
                    if name == CAPPED:
                        doc["spec"].setdefault("power", {})["capWatts"] = CAP_WATTS
                    subprocess.run(
                        [k, "apply", "-f", "-"],
                        input=yaml.safe_dump(doc),
                        text=True,
                        env=env,
                        check=True,
                        capture_output=True,
                    )

            def lose_a_pod(job: str) -> None:
                selector = f"{JOB_NAME_LABEL}={job}"
                got = subprocess.run(
                    [k, "get", "pods", "-l", selector, "-o", "name"], env=env, capture_output=True, text=True
                ).stdout.split()
                if got:
                    subprocess.run([k, "delete", got[0], "--wait=false"], env=env, capture_output=True)

            apply(EXAMPLES)
            timers = [threading.Timer(25, apply, [LATE_EXAMPLES])]
            timers += [threading.Timer(at, lose_a_pod, [job]) for at, job in RESTARTS]
            for timer in timers:
                timer.start()
            record(OUT / "sandbox.jsonl", ports, seconds, stop)
            for timer in timers:
                timer.cancel()
            jobs = subprocess.run([k, "get", "tj", "-A", "-o", "yaml"], env=env, capture_output=True, text=True).stdout
            (OUT / "sandbox-jobs.yaml").write_text(jobs)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    runs = [threading.Thread(target=f, args=(args.seconds, stop)) for f in (replay_run, sandbox_run)]
    for r in runs:
        r.start()
    for r in runs:
        r.join()
    for name in ("replay.jsonl", "sandbox.jsonl"):
        lines = (OUT / name).read_text().splitlines()
        print(f"{OUT / name}: {len(lines)} scrapes")
    print(yaml.safe_load((OUT / "sandbox-jobs.yaml").read_text()) is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
