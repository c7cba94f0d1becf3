"""Benchmark of the power planner: modes on a workload mix, and budgets after a lowered budget; writes
bench/results/power.md.

Both parts run the operator's own core (`power_modes.job_power_step`, `power.plan_power`) over a real
`ClusterSnapshot`, against the sim agent's GPU physics (`powertrain_agent.fake_nvml.FakeGpu`: draw, SM clock,
throughput under a limit) as the ground truth, with a clock instead of wall time:

- Modes: four 8-GPU jobs that each must do the same work (1 h at full speed): a dense matmul (compute-bound,
  pinned at its 700 W limit), a memory copy, a data-starved loop, and a job that switches from matmul to memory
  copy half-way (a phase change). Agents report a 10 s window; the operator passes once per window. Energy is
  what the GPUs drew until each job finished, slowdown is each job's run time over its time in Performance,
  exploration included.
- Budgets: 4 nodes × 8 GPUs in 2 racks, jobs of priorities 0-3 (8 GPUs each, dense matmul, Performance); the
  budget of rack 0 drops from none to 6000 W, then 4000 W. The draw follows a new limit with a 0.3 s time
  constant (nvml_power_step.csv: the instant reading settles ~0.4 s after a step); agents report every 1 s and
  the operator passes once per second, as in the sandbox. Settling time = from the budget change until the
  rack's true draw stays under the budget; violation = seconds the true draw is above it past 10 s.

- Traces: `powertrain simulate` (topology placement) on the three packaged Philly/Gavel traces, 32 nodes × 8
  GPUs, each power mode: jobs run under the cap their mode settles on for their model's assumed power profile
  (`powertrain.sim.power`). Budgets in the simulator: bench/power_sim_bench.py (its section of the results file
  is kept when this script rewrites the rest).

Usage: .venv/bin/python bench/power_bench.py [--output bench/results/power.md]
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from powertrain.api import constants as c
from powertrain.api.trainingjob import JobPowerStatus
from powertrain.core.power import plan_power
from powertrain.core.power_modes import job_power_step
from powertrain.core.snapshot import ClusterSnapshot
from powertrain.data import trace_path
from powertrain.sim.cluster import parse_cluster
from powertrain.sim.engine import Policy, simulate
from powertrain.sim.report import summarize
from powertrain.sim.trace import load_trace
from powertrain_agent.fake_nvml import H200, WORKLOADS, FakeGpu

ROOT = Path(__file__).resolve().parents[1]
SIM_SECTION = "## `powertrain simulate` with power budgets"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
GPUS = 8
WORK_SECONDS = 3600.0
WINDOW = 10.0
MODES = ("Performance", "Balanced", "Efficiency")
MIX: dict[str, tuple[str, ...]] = {
    "llm (matmul)": ("matmul",),
    "copy (memcopy)": ("memcopy",),
    "input-bound (starved)": ("starved",),
    "phased (matmul → memcopy)": ("matmul", "memcopy"),
}


def node_obj(name: str, rack: str) -> dict[str, Any]:
    labels = {c.HOSTNAME_LABEL: name, c.RACK_LABEL: rack, c.GPU_PRODUCT_LABEL: "NVIDIA-H200"}
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {
            "allocatable": {c.GPU_RESOURCE: str(GPUS), "cpu": "128", "memory": "1Ti", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def job_obj(name: str, node: str, mode: str, priority: int, power: JobPowerStatus | None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running", "placement": {"nodes": [node]}, "startTime": "2026-01-01T00:00:00Z"}
    if power is not None:
        status["power"] = power.to_wire()
    return {
        "metadata": {"name": name, "namespace": "bench", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {
            "gpusPerReplica": GPUS,
            "priority": priority,
            "power": {"mode": mode},
            "template": {"spec": {"containers": [{"name": "t", "image": "i"}]}},
        },
        "status": status,
    }


def pod_obj(job: str, node: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{job}-worker-0", "namespace": "bench", "labels": {c.JOB_NAME_LABEL: job}},
        "spec": {"nodeName": node, "containers": [{"name": "t", "resources": {"limits": {c.GPU_RESOURCE: GPUS}}}]},
        "status": {"phase": "Running"},
    }


def reading(i: int, uuid: str, g: FakeGpu, draw: float, pod: str | None) -> dict[str, Any]:
    w = g.workload
    out: dict[str, Any] = {
        "index": i,
        "uuid": uuid,
        "powerWatts": draw,
        "smClockMhz": g.sm_clock_mhz(),
        "smActivityPercent": w.sm_activity,
        "tensorActivityPercent": w.tensor_activity,
        "dramActivityPercent": w.dram_activity,
        "powerLimitWatts": g.enforced_mw / 1000,
        "defaultPowerLimitWatts": 700,
        "minPowerLimitWatts": 200,
        "maxPowerLimitWatts": 700,
        "clockEventReasons": ["SwPowerCap"] if g.power_capped() else [],
    }
    if pod is not None:
        out["pod"] = {"namespace": "bench", "name": pod}
    return out


@dataclass
class SimJob:
    name: str
    node: str
    phases: tuple[str, ...]
    priority: int = 0
    gpus: list[FakeGpu] = field(default_factory=list)
    done: float = 0.0  # work done, in seconds of full-speed work
    finished_at: float | None = None
    energy: float = 0.0
    power: JobPowerStatus | None = None

    def phase(self) -> str:
        index = min(int(self.done / WORK_SECONDS * len(self.phases)), len(self.phases) - 1)
        return self.phases[index]


def snapshot(jobs: list[SimJob], mode: str, racks: dict[str, str], draws: dict[str, float], at: datetime,
             policy: dict[str, Any] | None = None) -> ClusterSnapshot:  # fmt: skip
    live = [j for j in jobs if j.finished_at is None]
    reports = []
    for node in racks:
        gpus = []
        for j in live:
            if j.node == node:
                for i, g in enumerate(j.gpus):
                    gpus.append(reading(i, g.uuid, g, draws.get(g.uuid, g.draw_watts()), f"{j.name}-worker-0"))
        status = {"timestamp": at.isoformat(), "windowSeconds": WINDOW, "gpus": gpus}
        reports.append({"metadata": {"name": node}, "status": status})
    return ClusterSnapshot.build(
        nodes=[node_obj(n, r) for n, r in racks.items()],
        jobs=[job_obj(j.name, j.node, mode, j.priority, j.power) for j in live],
        pods=[pod_obj(j.name, j.node) for j in live],
        telemetry=reports,
        policy={"metadata": {"name": "default"}, "spec": policy or {}},
    )


def apply(jobs: list[SimJob], snap: ClusterSnapshot, at: datetime) -> dict[str, int]:
    caps = {}
    for j in jobs:
        if j.finished_at is None:
            j.power, _ = job_power_step(snap, ("bench", j.name), at)
            if j.power.cap_watts is not None:
                caps[("bench", j.name)] = j.power.cap_watts
    plan = plan_power(snap, caps)
    limits: dict[str, int] = {}
    for j in jobs:
        for g in j.gpus:
            cap = plan.budget_limits.get(g.uuid, caps.get(("bench", j.name)))
            limits[g.uuid] = cap or 700
            g.limit_mw = limits[g.uuid] * 1000
    return limits


def run_modes(mode: str) -> list[SimJob]:
    jobs = []
    racks = {}
    for k, (name, phases) in enumerate(MIX.items()):
        node = f"node-{k}"
        racks[node] = "rack-0"
        slug = name.split()[0]
        gpus = [FakeGpu(i, f"GPU-{slug}-{i}", H200, WORKLOADS[phases[0]], limit_mw=700_000) for i in range(GPUS)]
        jobs.append(SimJob(slug, node, phases, gpus=gpus))
    t = 0.0
    while any(j.finished_at is None for j in jobs):
        if t % WINDOW == 0 and t > 0:
            apply(jobs, snapshot(jobs, mode, racks, {}, T0 + timedelta(seconds=t)), T0 + timedelta(seconds=t))
        for j in jobs:
            if j.finished_at is not None:
                continue
            for g in j.gpus:
                g.workload = WORKLOADS[j.phase()]
            rate = sum(g.throughput() for g in j.gpus) / sum(g.workload.rate_per_second for g in j.gpus)
            j.energy += sum(g.draw_watts() for g in j.gpus)
            j.done += rate
            if j.done >= WORK_SECONDS:
                j.finished_at = t + 1
        t += 1.0
    return jobs


@dataclass
class BudgetRun:
    budget: int
    before: float
    settle_s: float | None
    violation_s: float
    after: float
    caps: dict[str, int]


def run_budgets() -> list[BudgetRun]:
    racks = {"node-0": "rack-0", "node-1": "rack-0", "node-2": "rack-1", "node-3": "rack-1"}
    jobs = []
    for k, node in enumerate(racks):
        gpus = [FakeGpu(i, f"GPU-p{k}-{i}", H200, WORKLOADS["matmul"], limit_mw=700_000) for i in range(GPUS)]
        jobs.append(SimJob(f"p{k}", node, ("matmul",), priority=k, gpus=gpus))
    draws = {g.uuid: g.draw_watts() for j in jobs for g in j.gpus}
    rack0 = [g for j in jobs if racks[j.node] == "rack-0" for g in j.gpus]
    dt, tau = 0.1, 0.3
    out = []
    t = 0.0
    for budget in (6000, 4000):
        policy = {"power": {"budgetLevel": "rack", "overrides": [{"domain": "rack-0", "watts": budget}]}}
        before = sum(draws[g.uuid] for g in rack0)
        start, settle, over, last_over = t, None, 0.0, t
        limits: dict[str, int] = {}
        while t < start + 60:
            if round(t * 10) % 10 == 0:  # a pass per second over the last second's reports
                at = T0 + timedelta(seconds=t)
                limits = apply(jobs, snapshot(jobs, "Performance", racks, draws, at, policy), at)
            for g in rack0 + [g for j in jobs for g in j.gpus if g not in rack0]:
                draws[g.uuid] += (g.draw_watts() - draws[g.uuid]) * (1 - math.exp(-dt / tau))
            t = round(t + dt, 1)
            true = sum(draws[g.uuid] for g in rack0)
            if true > budget:
                last_over = t
                if t - start > 10:
                    over += dt
        settle = last_over - start
        after = sum(draws[g.uuid] for g in rack0)
        caps = {j.name: limits.get(j.gpus[0].uuid, 700) for j in jobs if racks[j.node] == "rack-0"}
        out.append(BudgetRun(budget, before, settle, over, after, caps))
    return out


def pass_cost() -> tuple[float, float]:
    """Seconds one pass spends on the power core for 1024 nodes × 8 GPUs, one Efficiency job per node, with 64 rack
    budgets and a cluster budget: (every job's search step, the budget plan and the nodes' requests)."""
    from powertrain.core.power import power_limit_changes

    racks = {f"n{i:04d}": f"rack-{i // 16}" for i in range(1024)}
    jobs = []
    for k, node in enumerate(racks):
        gpus = [FakeGpu(i, f"GPU-{node}-{i}", H200, WORKLOADS["matmul"], limit_mw=700_000) for i in range(GPUS)]
        jobs.append(SimJob(f"j{k}", node, ("matmul",), gpus=gpus))
    policy = {"power": {"budgetLevel": "rack", "domainWatts": 60_000, "clusterWatts": 4_000_000}}
    snap = snapshot(jobs, "Efficiency", racks, {}, T0 + timedelta(seconds=60), policy)
    started = time.perf_counter()
    caps = {}
    for key in snap.jobs:
        state, _ = job_power_step(snap, key, T0 + timedelta(seconds=60))
        if state.cap_watts is not None:
            caps[key] = state.cap_watts
    stepped = time.perf_counter()
    power_limit_changes(snap, None, plan_power(snap, caps))
    return stepped - started, time.perf_counter() - stepped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "power.md")
    args = parser.parse_args()
    results = {mode: run_modes(mode) for mode in MODES}
    base = {j.name: j for j in results["Performance"]}
    lines = [
        "# Power planner: modes and budgets",
        "",
        f"Recorded by `bench/power_bench.py` on CPython {platform.python_version()}: the operator's core "
        "(`power_modes`, `power_budget`) over a `ClusterSnapshot`, against the sim agent's H200 physics "
        "(`fake_nvml.FakeGpu`) as the ground truth, with a simulated clock. See the script's docstring for the "
        "setup. The physics are a model (fitted to one recorded H200 at 700 W and a practitioner's H100 600 W "
        "slowdown), so these numbers check the planner's logic, not a real GPU's savings.",
        "",
        "## Modes on a workload mix (4 jobs × 8 GPUs, each 1 h of work at full speed)",
        "",
        "| mode | job | cap settled | energy (kWh) | energy saved | run time | slowdown |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    summary = []
    for mode, jobs in results.items():
        total = sum(j.energy for j in jobs)
        base_total = sum(j.energy for j in base.values())
        slowdowns = []
        for j in jobs:
            b = base[j.name]
            assert j.finished_at is not None
            assert b.finished_at is not None
            slow = j.finished_at / b.finished_at - 1
            slowdowns.append(slow)
            cap = j.power.cap_watts if j.power is not None and j.power.cap_watts else "none"
            lines.append(
                f"| {mode} | {j.name} | {cap} | {j.energy / 3.6e6:.2f} | {1 - j.energy / b.energy:.1%} | "
                f"{j.finished_at / 60:.1f} min | {slow:+.1%} |"
            )
        summary.append((mode, 1 - total / base_total, sum(slowdowns) / len(slowdowns), max(slowdowns)))
    lines += ["", "| mode | energy saved (mix) | mean slowdown | worst slowdown |", "| --- | --- | --- | --- |"]
    for mode, saved, mean, worst in summary:
        lines.append(f"| {mode} | {saved:.1%} | {mean:+.1%} | {worst:+.1%} |")
    lines += [
        "",
        "Goal: Efficiency saves ≥ 15 % energy at ≤ 5 % mean slowdown on the mix.",
        "",
        "## A lowered rack budget (rack 0: two 8-GPU dense-matmul jobs of priority 0 and 1; ~10.9 kW uncapped)",
        "",
        "| budget | draw before | settled after | violation past 10 s | draw after 60 s | per-GPU limit by job |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in run_budgets():
        caps = ", ".join(f"{k} (priority {k[1:]}): {v} W" for k, v in r.caps.items())
        lines.append(
            f"| {r.budget} W | {r.before:.0f} W | {r.settle_s:.1f} s | {r.violation_s:.1f} s | {r.after:.0f} W | "
            f"{caps} |"
        )
    lines += [
        "",
        "Goal: 0 s of violation past settling; settling ≤ 10 s. The limits are computed in one pass from the last "
        "report; the rest of the settling time is the pass cadence (1 s) and the GPU's response to a new limit. "
        "The sandbox e2e (`e2e/test_power_budget.py`, sim agents, the real operator) measured the same: a rack of "
        "16 busy GPUs from 11.5 kW to under an 8.2 kW budget in 0.3 s.",
        "",
    ]
    lines += [
        "## `powertrain simulate --power-mode` on the Philly/Gavel traces (32 nodes × 8 GPUs, topology placement)",
        "",
        "Per-model power profiles are assumptions (see `powertrain/sim/power.py`), exploration is left out. These "
        "traces are mostly compute-bound, power-bound models (Transformer, LM, ResNet), where a 5 % bound buys "
        "little: the ≥ 15 % goal is met on the mix above, not on these profiles. JCT includes queueing.",
        "",
        "| trace | mode | GPU energy | energy saved | JCT mean | JCT change | makespan |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    nodes = parse_cluster("nodes=32,gpus-per-node=8,topology=zone=1,spine=2,rack=4")
    for trace in ("seed0-0e4a51.csv", "seed0-7f04ca.csv", "seed0-ee9e8c.csv"):
        jobs = load_trace(trace_path(f"philly:{trace.removesuffix('.csv')}"))
        base = None
        for mode in MODES:
            summary = summarize(simulate(jobs, nodes, Policy.TOPOLOGY, power_mode=mode))
            base = base or summary
            saved = 1 - summary.energy_kwh / base.energy_kwh
            lines.append(
                f"| {trace} | {mode} | {summary.energy_kwh:,.0f} kWh | {saved:.1%} | "
                f"{summary.jct_mean_s / 3600:.1f} h | {summary.jct_mean_s / base.jct_mean_s - 1:+.1%} | "
                f"{summary.makespan_s / 3600:,.0f} h |"
            )
    steps, budgets = pass_cost()
    lines += [
        "",
        "## Cost per scheduling pass",
        "",
        f"1024 nodes × 8 GPUs, one Efficiency job per node, 64 rack budgets and a cluster budget, one process on a "
        f"shared 2-CPU machine: every job's search step {steps * 1000:.0f} ms, the budget plan and the nodes' "
        f"requests {budgets * 1000:.0f} ms. Both are linear in jobs and GPUs and run once per pass (at most once a "
        "second).",
        "",
    ]
    old = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
    kept = old[old.index(SIM_SECTION) :] if SIM_SECTION in old else ""  # bench/power_sim_bench.py's section
    args.output.write_text("\n".join(lines) + ("\n" + kept if kept else ""))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
