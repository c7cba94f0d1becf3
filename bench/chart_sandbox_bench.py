"""Benchmark of the chart on the sandbox: `helm install` → first TrainingJob Succeeded, and the API server's
write rate when every request is authorized by RBAC. Writes bench/results/chart_sandbox.md.

    .venv/bin/python bench/chart_sandbox_bench.py [--writes 5000] [--concurrency 64]

1. A 2-node sandbox; `helm install --wait` of charts/powertrain (agent.backend=sim), the operator and agents
   running as real processes with their chart ServiceAccounts; then examples/resnet-finetune.yaml is applied
   and timed to Succeeded.
2. An API server in its own process (as in bench/sandbox_bench.py); a ServiceAccount bound by a RoleBinding to
   a Role that may create and patch pods; pod creates and status merge-patches sent with that account's token
   (64 in flight), so each one goes through token verification and RBAC evaluation; the same load with the
   admin token for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chart"))

from sandbox_bench import SERVER, TOKEN, pct, pod, run_writes

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "chart_sandbox.md"


def install_to_first_job() -> dict[str, float]:
    from chart_tools import helm, kubectl

    from powertrain.sandbox.cluster import Sandbox, SandboxConfig
    from powertrain.sandbox.testing import FAST_KUBELET

    helm_bin, kubectl_bin = helm(), kubectl()
    config = SandboxConfig(nodes=2, gpus_per_node=8, kubelet=FAST_KUBELET, apply_crds=False)
    with Sandbox(config) as sb:
        env = {**os.environ, "KUBECONFIG": str(sb.kubeconfig_path)}
        t0 = time.perf_counter()
        subprocess.run(
            [str(helm_bin), "install", "pt", str(REPO / "charts" / "powertrain"), "-n", "powertrain-system",
             "--create-namespace", "--set", "agent.backend=sim", "--wait", "--timeout", "120s"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        installed = time.perf_counter() - t0
        subprocess.run(
            [str(kubectl_bin), "apply", "-f", str(REPO / "examples" / "resnet-finetune.yaml")],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        applied = time.perf_counter() - t0
        while True:
            phase = subprocess.run(
                [str(kubectl_bin), "get", "tj", "resnet-finetune", "-o", "jsonpath={.status.phase}"],
                env=env, capture_output=True, text=True,
            ).stdout  # fmt: skip
            if phase in ("Succeeded", "Failed"):
                break
            if time.perf_counter() - t0 > 300:
                raise RuntimeError("the TrainingJob did not finish in 300 s")
            time.sleep(0.2)
        if phase != "Succeeded":
            raise RuntimeError(f"the TrainingJob ended {phase}")
        done = time.perf_counter() - t0
    return {"installed": installed, "applied": applied, "succeeded": done}


async def rbac_writes(args: argparse.Namespace) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", SERVER, TOKEN, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    url = (await proc.stdout.readline()).decode().strip()
    out: dict[str, Any] = {}
    try:
        conn = aiohttp.TCPConnector(ssl=False, limit=0)
        async with aiohttp.ClientSession(connector=conn) as admin:
            admin.headers["Authorization"] = f"Bearer {TOKEN}"

            async def post(path: str, body: Any) -> Any:
                async with admin.post(url + path, json=body) as rsp:
                    assert rsp.status == 201, await rsp.text()
                    return await rsp.json()

            await post("/api/v1/namespaces", {"metadata": {"name": "bench"}})
            await post("/api/v1/namespaces/bench/serviceaccounts", {"metadata": {"name": "writer"}})
            rules = [{"apiGroups": [""], "resources": ["pods", "pods/status"], "verbs": ["create", "patch"]}]
            await post("/apis/rbac.authorization.k8s.io/v1/namespaces/bench/roles",
                       {"metadata": {"name": "writer"}, "rules": rules})  # fmt: skip
            await post(
                "/apis/rbac.authorization.k8s.io/v1/namespaces/bench/rolebindings",
                {
                    "metadata": {"name": "writer"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "writer"},
                    "subjects": [{"kind": "ServiceAccount", "name": "writer", "namespace": "bench"}],
                },
            )
            answer = await post("/api/v1/namespaces/bench/serviceaccounts/writer/token", {"spec": {}})
            sa_token = answer["status"]["token"]
            await post("/api/v1/nodes", {"metadata": {"name": "n-0"}})
        for who, token in (("service account (RBAC)", sa_token), ("admin (system:masters)", TOKEN)):
            conn = aiohttp.TCPConnector(ssl=False, limit=0)
            async with aiohttp.ClientSession(connector=conn, headers={"Authorization": f"Bearer {token}"}) as s:
                prefix = "sa" if token == sa_token else "ad"
                creates = [
                    (
                        "POST",
                        "/api/v1/namespaces/bench/pods",
                        _named(pod(i, "n-0"), f"{prefix}-{i}"),
                        "application/json",
                    )
                    for i in range(args.writes)
                ]
                secs, lat = await run_writes(s, url, creates, args.concurrency)
                patches = [
                    ("PATCH", f"/api/v1/namespaces/bench/pods/{prefix}-{i}/status",
                     {"status": {"phase": "Running"}}, "application/merge-patch+json")
                    for i in range(args.writes)
                ]  # fmt: skip
                psecs, plat = await run_writes(s, url, patches, args.concurrency)
                out[who] = {
                    "creates": args.writes / secs,
                    "create_p50": pct(lat, 0.5) * 1000,
                    "create_p99": pct(lat, 0.99) * 1000,
                    "patches": args.writes / psecs,
                    "patch_p50": pct(plat, 0.5) * 1000,
                    "patch_p99": pct(plat, 0.99) * 1000,
                }
        # And a write RBAC refuses, to show the denial path is not the slow one.
        conn = aiohttp.TCPConnector(ssl=False, limit=0)
        async with (
            aiohttp.ClientSession(connector=conn, headers={"Authorization": f"Bearer {sa_token}"}) as s,
            s.delete(url + "/api/v1/namespaces/bench/pods/sa-0") as rsp,
        ):
            out["denied"] = (rsp.status, (await rsp.json())["message"])
    finally:
        proc.terminate()
        await proc.wait()
    return out


def _named(body: dict[str, Any], name: str) -> dict[str, Any]:
    body["metadata"]["name"] = name
    return body


def write_results(args: argparse.Namespace, first: dict[str, float], writes: dict[str, Any]) -> None:
    load = os.getloadavg()[0]
    lines = [
        "# Chart on the sandbox: install → first job, and writes with RBAC",
        "",
        f"Recorded {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/chart_sandbox_bench.py` on {platform.machine()} "
        f"with {os.cpu_count()} CPUs, Python {platform.python_version()}; 1-minute load average {load:.1f} "
        "(the machine is shared).",
        "",
        "## helm install → first TrainingJob Succeeded",
        "",
        "A 2-node sandbox (8 simulated GPUs each); `helm install --wait` of charts/powertrain with "
        "agent.backend=sim (2 operator replicas and 2 agents as real processes, each with its chart "
        "ServiceAccount's node-bound token), then `kubectl apply -f examples/resnet-finetune.yaml` (its pods run "
        "10 s by the sandbox's run-seconds annotation).",
        "",
        "| Step | Seconds since `helm install` started |",
        "| --- | --- |",
        f"| `helm install --wait` returned (Deployment available, DaemonSet ready) | {first['installed']:.1f} |",
        f"| TrainingJob applied | {first['applied']:.1f} |",
        f"| TrainingJob Succeeded | {first['succeeded']:.1f} |",
        "",
        "Target (issue 15): under 60 s.",
        "",
        "## Writes with RBAC on",
        "",
        f"API server in its own process, load over HTTPS from one client process, {args.concurrency} requests in "
        f"flight, {args.writes:,} pod creates then {args.writes:,} pods/status merge-patches per credential. The "
        "service account's token is verified (HMAC, then its ServiceAccount looked up) and each request checked "
        "against its Role.",
        "",
        "| Credential | Pod creates | Status patches |",
        "| --- | --- | --- |",
    ]
    for who, r in writes.items():
        if who == "denied":
            continue
        lines.append(
            f"| {who} | {r['creates']:,.0f} /s (p50 {r['create_p50']:.1f} ms, p99 {r['create_p99']:.1f} ms) | "
            f"{r['patches']:,.0f} /s (p50 {r['patch_p50']:.1f} ms, p99 {r['patch_p99']:.1f} ms) |"
        )
    code, message = writes["denied"]
    lines += [
        "",
        f"A delete outside the Role answers {code}: `{message}`.",
        "",
        "Target (issue 15): ≥ 1,000 writes/s with RBAC on. The client shares the 2 CPUs with the server.",
        "",
    ]
    RESULTS.write_text("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--writes", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=64)
    args = p.parse_args()
    first = install_to_first_job()
    print(json.dumps(first))
    writes = asyncio.run(rbac_writes(args))
    print(json.dumps(writes, default=str))
    write_results(args, first, writes)
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
