"""Driver of bench/h200_check.sh: agent (nvml backend, read-only) vs nvidia-smi on one GPU under a workload.

Writes into --out: h200_check.md (summary), samples.csv (one row per second: phase, nvidia-smi, agent),
agent.log, workload.log, summary.json.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

WORKLOAD = r"""
import sys, time, torch
phases = [("idle-context", 8), ("matmul-bf16-8192", 25), ("memcopy-4GiB", 12), ("idle-context-after", 6)]
dev = torch.device("cuda")
a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
b = torch.randn_like(a)
src = torch.empty(4 << 30, dtype=torch.uint8, device=dev)
dst = torch.empty_like(src)
torch.cuda.synchronize()
flops = 0.0
for name, seconds in phases:
    print(f"PHASE {name} {time.time():.3f}", flush=True)
    end = time.time() + seconds
    n = 0
    while time.time() < end:
        if name.startswith("matmul"):
            for _ in range(20):
                c = a @ b
            torch.cuda.synchronize()
            n += 20
        elif name.startswith("memcopy"):
            for _ in range(10):
                dst.copy_(src)
            torch.cuda.synchronize()
            n += 10
        else:
            time.sleep(0.1)
    print(f"DONE {name} iterations={n}", flush=True)
print(f"PHASE end {time.time():.3f}", flush=True)
"""

SMI_FIELDS = [
    "power.draw",
    "power.draw.average",
    "power.draw.instant",
    "utilization.gpu",
    "memory.used",
    "temperature.gpu",
    "clocks.sm",
    "power.limit",
    "clocks_event_reasons.sw_power_cap",
]
SMI_BASIC = ["power.draw", "utilization.gpu", "memory.used", "temperature.gpu", "clocks.sm", "power.limit"]

AGENT_SERIES = {
    "power_watts": "powertrain_gpu_power_watts",
    "power_instant_watts": "powertrain_gpu_power_instant_watts",
    "utilization_percent": "powertrain_gpu_utilization_percent",
    "memory_used_bytes": "powertrain_gpu_memory_used_bytes",
    "temperature_celsius": "powertrain_gpu_temperature_celsius",
    "sm_clock_hertz": "powertrain_gpu_sm_clock_hertz",
    "sm_activity_percent": "powertrain_gpu_sm_activity_percent",
    "tensor_activity_percent": "powertrain_gpu_tensor_activity_percent",
    "dram_activity_percent": "powertrain_gpu_dram_activity_percent",
    "energy_joules_total": "powertrain_gpu_energy_joules_total",
    "sample_duration_seconds": "powertrain_agent_sample_duration_seconds",
    "slow_sample_duration_seconds": "powertrain_agent_slow_sample_duration_seconds",
    "process_cpu_seconds_total": "process_cpu_seconds_total",
    "process_resident_memory_bytes": "process_resident_memory_bytes",
}


def _query_smi(fields: list[str], timeout: float) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["nvidia-smi", "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def smi_fields() -> list[str]:
    probe = _query_smi(SMI_FIELDS, timeout=30)
    return SMI_FIELDS if probe is not None and probe.returncode == 0 else SMI_BASIC


def read_smi(fields: list[str]) -> dict[str, float | None]:
    done = _query_smi(fields, timeout=10)
    if done is None:
        return {}
    out = done.stdout.strip()
    values: dict[str, float | None] = {}
    for name, raw in zip(fields, out.split(","), strict=False):
        raw = raw.strip()
        if raw == "Active":
            values[name] = 1.0
        elif raw == "Not Active":
            values[name] = 0.0
        else:
            try:
                values[name] = float(raw)
            except ValueError:
                values[name] = None
    return values


def scrape(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    wanted = {v: k for k, v in AGENT_SERIES.items()}
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = wanted.get(s.name)
            if key and s.labels.get("gpu", "0") == "0":
                out[key] = s.value
            if s.name == "powertrain_gpu_clock_event_reason" and s.labels.get("gpu") == "0":
                out[f"reason_{s.labels['reason']}"] = s.value
            if s.name == "powertrain_agent_nvml_errors_total":
                out[f"nvml_error_{s.labels['error']}"] = s.value
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--port", type=int, default=19402)
    ap.add_argument("--idle-before", type=float, default=6.0)
    ap.add_argument("--idle-only-seconds", type=float, default=50.0, help="run length when torch is not available")
    ap.add_argument("--agent-backend", default="nvml", help="sim: rehearse this script on a machine without a GPU")
    args = ap.parse_args()
    out: Path = args.out
    notes: list[str] = []

    probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    torch_ok = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=120).returncode == 0
    notes.append(f"torch with CUDA available: {torch_ok}")
    fields = smi_fields()
    limit_before = read_smi(["power.limit"]).get("power.limit")

    agent_log = (out / "agent.log").open("w")
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "powertrain_agent",
            "--node-name",
            "h200-check",
            "--backend",
            args.agent_backend,
            "--no-kube",
            "--dry-run-power",
            "--interval",
            "1",
            "--slow-interval",
            "5",
            "--metrics-port",
            str(args.port),
            "--metrics-address",
            "127.0.0.1",
        ],
        stdout=agent_log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            scrape(args.port)
            break
        except Exception:
            if agent.poll() is not None:
                print("agent exited early; see agent.log", file=sys.stderr)
                return 1
            time.sleep(0.5)

    rows: list[dict[str, Any]] = []
    phase = ["idle-no-context"]
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            t = time.time()
            row: dict[str, Any] = {"t": round(t, 3), "phase": phase[0]}
            row.update({f"smi_{k}": v for k, v in read_smi(fields).items()})
            try:
                row.update({f"agent_{k}": v for k, v in scrape(args.port).items()})
            except Exception as exc:
                row["agent_error"] = str(exc)
            rows.append(row)
            stop.wait(max(0.0, 1.0 - (time.time() - t)))

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    time.sleep(args.idle_before)
    workload_log = (out / "workload.log").open("w")
    if torch_ok:
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(WORKLOAD)
        proc = subprocess.Popen([sys.executable, "-u", f.name], stdout=subprocess.PIPE, stderr=workload_log, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            workload_log.write(line)
            if line.startswith("PHASE "):
                phase[0] = line.split()[1]
        proc.wait()
        phase[0] = "idle-no-context-after"
        time.sleep(5)
    else:
        notes.append("no workload: idle only")
        time.sleep(args.idle_only_seconds)
    stop.set()
    th.join()
    agent.terminate()
    try:
        rc = agent.wait(timeout=20)
    except subprocess.TimeoutExpired:
        agent.kill()
        rc = -9
    limit_after = read_smi(["power.limit"]).get("power.limit")
    notes.append(f"agent exit code after SIGTERM: {rc}")
    notes.append(f"power.limit before {limit_before} W, after {limit_after} W (must be equal: read-only run)")

    keys = sorted({k for r in rows for k in r})
    with (out / "samples.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    summary = summarise(rows, fields)
    summary["notes"] = notes
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "h200_check.md").write_text(render(summary))
    print(render(summary))
    return 0


def _mean(values: list[float]) -> float | None:
    return statistics.mean(values) if values else None


def summarise(rows: list[dict[str, Any]], fields: list[str]) -> dict[str, Any]:
    pairs = [
        ("smi_power.draw", "agent_power_watts", 1.0),
        ("smi_utilization.gpu", "agent_utilization_percent", 1.0),
        ("smi_memory.used", "agent_memory_used_bytes", 1 / 2**20),
        ("smi_temperature.gpu", "agent_temperature_celsius", 1.0),
        ("smi_clocks.sm", "agent_sm_clock_hertz", 1e-6),
    ]
    if "power.draw.instant" in fields:
        pairs.append(("smi_power.draw.instant", "agent_power_instant_watts", 1.0))
    phases: dict[str, dict[str, Any]] = {}
    for phase in dict.fromkeys(r["phase"] for r in rows):
        pr = [r for r in rows if r["phase"] == phase]
        entry: dict[str, Any] = {"samples": len(pr)}
        for smi, agent, scale in pairs:
            s = [r[smi] for r in pr if r.get(smi) is not None and r.get(agent) is not None]
            a = [r[agent] * scale for r in pr if r.get(smi) is not None and r.get(agent) is not None]
            entry[smi] = _mean(s)
            entry[agent] = _mean(a)
            entry[f"mean_abs_diff {smi}"] = _mean([abs(x - y) for x, y in zip(s, a, strict=True)])
        for k in (
            "agent_sm_activity_percent",
            "agent_tensor_activity_percent",
            "agent_dram_activity_percent",
            "agent_reason_SwPowerCap",
        ):
            entry[k] = _mean([r[k] for r in pr if r.get(k) is not None])
        phases[phase] = entry
    valid = [r for r in rows if r.get("agent_energy_joules_total") is not None and r.get("smi_power.draw") is not None]
    energy: dict[str, Any] = {}
    if len(valid) > 2:
        agent_j = valid[-1]["agent_energy_joules_total"] - valid[0]["agent_energy_joules_total"]
        smi_j = sum(
            (b["t"] - a["t"]) * (a["smi_power.draw"] + b["smi_power.draw"]) / 2 for a, b in itertools.pairwise(valid)
        )
        energy = {
            "agent_counter_joules": agent_j,
            "smi_power_integral_joules": smi_j,
            "ratio": agent_j / smi_j if smi_j else None,
            "note": "agent energy is read every 5 s, so the window edges differ by up to 5 s",
        }
    cpu = [r for r in rows if r.get("agent_process_cpu_seconds_total") is not None]
    cost: dict[str, Any] = {}
    if len(cpu) > 2:
        wall = cpu[-1]["t"] - cpu[0]["t"]
        cost["agent_cpu_percent_of_one_core"] = (
            100 * (cpu[-1]["agent_process_cpu_seconds_total"] - cpu[0]["agent_process_cpu_seconds_total"]) / wall
        )
        cost["agent_rss_max_mib"] = max(r["agent_process_resident_memory_bytes"] for r in cpu) / 2**20
        cost["note"] = "CPU includes answering the 1 Hz /metrics scrape of this script"
    durations = [r["agent_sample_duration_seconds"] for r in rows if r.get("agent_sample_duration_seconds")]
    slow = [r["agent_slow_sample_duration_seconds"] for r in rows if r.get("agent_slow_sample_duration_seconds")]
    if durations:
        cost["fast_sample_ms_median"] = 1000 * statistics.median(durations)
        cost["fast_sample_ms_max"] = 1000 * max(durations)
    if slow:
        cost["slow_sample_ms_median"] = 1000 * statistics.median(slow)
    errors = {k: v for k, v in (rows[-1] if rows else {}).items() if k.startswith("agent_nvml_error_")}
    return {
        "host": os.uname().nodename,
        "smi_fields": fields,
        "phases": phases,
        "energy": energy,
        "cost": cost,
        "nvml_errors": errors,
        "samples": len(rows),
    }


def render(summary: dict[str, Any]) -> str:
    lines = ["# H200 read-only check: agent (nvml backend) vs nvidia-smi", ""]
    lines += [f"- {n}" for n in summary.get("notes", [])]
    lines += [
        "",
        "| phase | n | smi W | agent W | smi util % | agent util % | smi MiB | agent MiB | smi °C | agent °C "
        "| smi SM MHz | agent SM MHz | SM act % | tensor % | DRAM % | SwPowerCap |",
        "|" + " --- |" * 16,
    ]

    def f(v: Any, d: int = 1) -> str:
        return "-" if v is None else f"{v:.{d}f}"

    for name, p in summary["phases"].items():
        lines.append(
            f"| {name} | {p['samples']} | {f(p['smi_power.draw'])} | {f(p['agent_power_watts'])} "
            f"| {f(p['smi_utilization.gpu'])} | {f(p['agent_utilization_percent'])} | {f(p['smi_memory.used'], 0)} "
            f"| {f(p['agent_memory_used_bytes'], 0)} | {f(p['smi_temperature.gpu'])} "
            f"| {f(p['agent_temperature_celsius'])} "
            f"| {f(p['smi_clocks.sm'], 0)} | {f(p['agent_sm_clock_hertz'], 0)} | {f(p['agent_sm_activity_percent'])} "
            f"| {f(p['agent_tensor_activity_percent'])} | {f(p['agent_dram_activity_percent'])} "
            f"| {f(p['agent_reason_SwPowerCap'], 2)} |"
        )
    lines += ["", "Mean absolute difference per phase (same 1 s ticks):", ""]
    for name, p in summary["phases"].items():
        diffs = ", ".join(f"{k.split(' ', 1)[1]}={f(v, 2)}" for k, v in p.items() if k.startswith("mean_abs_diff"))
        lines.append(f"- {name}: {diffs}")
    lines += [
        "",
        f"Energy: `{json.dumps(summary['energy'])}`",
        "",
        f"Agent cost: `{json.dumps(summary['cost'])}`",
        "",
        f"NVML errors counted by the agent: `{json.dumps(summary['nvml_errors'])}`",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
