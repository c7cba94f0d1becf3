"""Draw PNG previews of the Grafana dashboards from scrapes of the real exporters (tests/chart/preview_data.py).

Each figure plots, panel by panel, the series the dashboard's queries select, aggregated the same way
(sums, means, rates), and is labelled PREVIEW with where its data came from. It is not a Grafana screenshot.

There is no PromQL engine here: each panel's expression is redone in Python, per scrape tick.
- `sum/avg by (x) (m)`: `series(run, m, by=x, agg=...)`, the samples of one tick grouped and summed or averaged.
- `m * on (node) group_left (domain) max by (node, domain) (powertrain_node_domain_info{level="rack"})`, then
  `sum/avg by (domain)`: `domains()` maps each node to its rack from the operator's powertrain_node_domain_info
  (static in the run), and `series(..., by=that rack)` groups the agents' per-GPU samples by it.
- `... * on (exported_namespace, training_job) group_left (queue) powertrain_job_info`: `queue_of()` reads each
  job's queue from powertrain_job_info at the end of the run (an instant query's evaluation time).
- `increase(c[$__range])`: last minus first sample of each series (no extrapolation, no counter resets in a run).
- Instant queries (bar gauges, stats) use the last scrape of the run.

Usage: .tools/previews-venv/bin/python tools/plot_dashboard_previews.py   (needs matplotlib:
tools/requirements-previews.txt)
"""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".tools" / "previews"
OUT = REPO / "charts" / "powertrain" / "dashboards" / "previews"
SANDBOX = (
    "sandbox cluster (8 nodes x 8 simulated H200, 2 racks) running the repository's example jobs, "
    "with the chart's operator and sim agents"
)
REPLAY = "one agent replaying the recorded H200 trace (powertrain_agent/data/nvml_trace.csv) on 8 GPUs"

Scrape = tuple[float, str, list[tuple[str, dict[str, str], float]]]
Labels = dict[str, str]


def load(name: str) -> list[Scrape]:
    rows = []
    for line in (DATA / f"{name}.jsonl").read_text().splitlines():
        d = json.loads(line)
        rows.append((d["t"], d["source"], [(s[0], s[1], s[2]) for s in d["samples"]]))
    return rows


def series(
    run: list[Scrape],
    name: str,
    by: Callable[[Labels], str | None] = lambda _: "all",
    agg: str = "sum",
    where: Callable[[Labels], bool] = lambda _: True,
) -> dict[str, tuple[list[float], list[float]]]:
    """Per scrape tick: aggregate `name` samples into groups (sum or mean), like `sum by (...)`."""
    per_tick: dict[float, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for t, _, samples in run:
        for n, labels, value in samples:
            if n == name and where(labels):
                group = by(labels)
                if group is not None:
                    per_tick[t][group].append(value)
    out: dict[str, tuple[list[float], list[float]]] = {}
    for t in sorted(per_tick):
        for group, values in per_tick[t].items():
            ts, vs = out.setdefault(group, ([], []))
            ts.append(t)
            vs.append(sum(values) if agg == "sum" else max(values) if agg == "max" else sum(values) / len(values))
    return out


def rate(points: tuple[list[float], list[float]], window: float = 10.0) -> tuple[list[float], list[float]]:
    ts, vs = points
    out_t, out_v = [], []
    j = 0
    for i, t in enumerate(ts):
        while ts[j] < t - window:
            j += 1
        if i > j and t > ts[j]:
            out_t.append(t)
            out_v.append(max(0.0, vs[i] - vs[j]) / (t - ts[j]))
    return out_t, out_v


def plot(ax: Any, groups: dict[str, tuple[list[float], list[float]]], title: str, unit: str = "", **kw: Any) -> None:
    for label, (ts, vs) in sorted(groups.items()):
        ax.plot(ts, vs, label=label, linewidth=1.4, drawstyle="steps-post", **kw)
    if len(groups) > 10:  # one line per GPU: a legend would cover the plot
        title = f"{title} ({len(groups)} series)"
    style(ax, title, unit, legend=0 < len(groups) <= 10)
    if len(groups) > 10:
        ax.texts[-1].remove()


def style(ax: Any, title: str, unit: str = "", legend: bool = True) -> None:
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlabel("seconds", fontsize=8)
    if unit:
        ax.set_ylabel(unit, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=7, loc="upper left", ncol=2)
    else:
        ax.text(0.5, 0.5, "no series", transform=ax.transAxes, ha="center", color="grey")


def figure(title: str, source: str, rows: int) -> tuple[Any, Any]:
    fig, axes = plt.subplots(rows, 2, figsize=(14, 3.2 * rows), constrained_layout=True)
    wrapped = "\n".join(textwrap.wrap(f"data: {source}", 150))
    fig.suptitle(f"PREVIEW — Powertrain / {title}\n{wrapped}", fontsize=11, color="#444")
    return fig, axes.flatten()


def model(labels: Labels) -> str:
    return labels.get("model", "?")


def only(run: list[Scrape], source_prefix: str) -> list[Scrape]:
    return [s for s in run if s[1].startswith(source_prefix)]


def stack(ax: Any, groups: dict[str, tuple[list[float], list[float]]], title: str, unit: str = "") -> None:
    if not groups:
        style(ax, title, unit, legend=False)
        return
    ticks = sorted({t for ts, _ in groups.values() for t in ts})
    labels = sorted(groups)
    values = []
    for label in labels:
        lookup = dict(zip(*groups[label], strict=True))
        values.append([lookup.get(t, 0.0) for t in ticks])
    ax.stackplot(ticks, values, labels=labels, alpha=0.8)
    style(ax, title, unit)


def domains(run: list[Scrape], level: str) -> dict[str, str]:
    """node -> domain at `level`, from the operator's powertrain_node_domain_info (the `$level` join)."""
    return {
        lab["node"]: lab["domain"]
        for _, src, samples in run
        if src == "operator"
        for n, lab, v in samples
        if n == "powertrain_node_domain_info" and lab["level"] == level and v > 0
    }


def last(run: list[Scrape], name: str, source: str = "operator") -> list[tuple[Labels, float]]:
    """The samples of `name` in the last scrape of `source`: what an instant query at the end of the range sees."""
    for _, src, samples in reversed(run):
        if src == source:
            return [(lab, v) for n, lab, v in samples if n == name]
    return []


def queue_of(run: list[Scrape]) -> dict[str, str]:
    """namespace/job -> queue, `max by (exported_namespace, training_job, queue) (powertrain_job_info)`."""
    return {
        f"{lab['exported_namespace']}/{lab['training_job']}": lab["queue"]
        for lab, v in last(run, "powertrain_job_info")
        if v > 0
    }


def job_energy_kwh(agents: list[Scrape]) -> dict[str, float]:
    """`sum by (exported_namespace, training_job) (increase(powertrain_gpu_energy_joules_total{training_job!=""}))`.

    increase() per series (a GPU's counter only counts for the job while its pod holds it), summed per job."""
    counters = series(
        agents,
        "powertrain_gpu_energy_joules_total",
        lambda lab: (
            f"{lab['exported_namespace']}/{lab['training_job']}|{lab['uuid']}" if lab.get("training_job") else None
        ),
    )
    kwh: dict[str, float] = defaultdict(float)
    for key, (_, vs) in counters.items():
        kwh[key.split("|")[0]] += (max(vs) - min(vs)) / 3.6e6
    return kwh


def bars(ax: Any, values: dict[str, float], title: str, unit: str, color: str = "#5b8") -> None:
    names = sorted(values, key=values.__getitem__)
    ax.barh(names, [values[n] for n in names], color=color)
    style(ax, title, legend=False)
    ax.set_xlabel(unit, fontsize=8)
    if names:
        ax.texts[-1].remove()


def cluster_overview(sb: list[Scrape]) -> None:
    fig, ax = figure("Cluster overview", SANDBOX, 4)
    op, agents = only(sb, "operator"), only(sb, "agent:")
    groups = {f"allocated {k}": v for k, v in series(op, "powertrain_gpus_allocated", model).items()}
    for metric, name in (
        ("powertrain_gpu_sm_activity_percent", "SM-active"),
        ("powertrain_gpu_tensor_activity_percent", "tensor-active"),
        ("powertrain_gpu_utilization_percent", "NVML 'utilization'"),
    ):
        for k, (ts, vs) in series(agents, metric, model).items():
            groups[f"{name} {k}"] = (ts, [v / 100 for v in vs])
    plot(ax[0], groups, "Allocated vs busy GPUs by model", "GPUs")
    free = {f"free {k}": v for k, v in series(op, "powertrain_gpus_free", model).items()}
    free |= {f"fragmented {k}": v for k, v in series(op, "powertrain_gpus_fragmented", model).items()}
    plot(ax[1], free, "Free vs fragmented GPUs by model", "GPUs")
    stack(ax[2], series(op, "powertrain_jobs", lambda lab: lab["phase"]), "Jobs by phase", "jobs")
    plot(ax[3], series(op, "powertrain_queue_pending_jobs", lambda lab: lab["queue"]), "Queue depth", "jobs")
    waits: dict[str, tuple[list[float], list[float]]] = {}
    sums = series(op, "powertrain_queue_wait_seconds_sum", lambda lab: lab["queue"])
    counts = series(op, "powertrain_queue_wait_seconds_count", lambda lab: lab["queue"])
    for q, (ts, vs) in sums.items():
        c = dict(zip(*counts.get(q, ([], [])), strict=True))
        pts = [(t, v / c[t]) for t, v in zip(ts, vs, strict=True) if c.get(t)]
        if pts:
            waits[f"mean wait {q}"] = ([p[0] for p in pts], [p[1] for p in pts])
    plot(ax[4], waits, "Queue wait (submit → placed), mean so far", "s")
    plot(
        ax[5],
        series(agents, "powertrain_gpu_sm_activity_percent", lambda lab: lab["node"], "mean"),
        "Mean SM activity by node",
        "%",
    )
    # By topology domain ($level = rack, the dashboard's default): agent series joined to the rack of their node.
    rack = domains(op, "rack")
    on_rack = {
        f"held {k}": v
        for k, v in series(
            agents,
            "powertrain_gpu_info",
            lambda lab: rack.get(lab["node"]),
            where=lambda lab: lab.get("exported_pod", "") != "",
        ).items()
    }
    for metric, name in (
        ("powertrain_gpu_sm_activity_percent", "SM-active"),
        ("powertrain_gpu_tensor_activity_percent", "tensor-active"),
    ):
        for k, (ts, vs) in series(agents, metric, lambda lab: rack.get(lab["node"])).items():
            on_rack[f"{name} {k}"] = (ts, [v / 100 for v in vs])
    plot(ax[6], on_rack, "Held vs really busy GPUs by rack", "GPUs")
    restarts = {
        f"{lab['exported_namespace']}/{lab['training_job']}": v
        for lab, v in last(op, "powertrain_job_gang_restarts")
        if v > 0
    }
    bars(ax[7], restarts, "Gang restarts per job (end of run)", "restarts", color="#c75")
    save(fig, "cluster-overview.png")


def power_energy(rp: list[Scrape], sb: list[Scrape]) -> None:
    fig, ax = figure(
        "Power & energy",
        f"budgets, caps, energy per job and queue: {SANDBOX}, with the example ClusterTrainingPolicy's budgets "
        f"lowered to fit 64 GPUs and llm-pretrain capped at 550 W per GPU; per-GPU power, throttling, clocks: {REPLAY}",
        5,
    )
    op, agents = only(sb, "operator"), only(sb, "agent:")

    def limits(run: list[Scrape], by: Callable[[Labels], str | None]) -> dict[str, dict[str, Any]]:
        return {
            kind: series(run, "powertrain_gpu_power_limit_watts", by, where=lambda lab, x=kind: lab["limit"] == x)
            for kind in ("enforced", "operator_requested", "default")
        }

    cluster = {"draw (1 s average)": series(agents, "powertrain_gpu_power_watts").get("all", ([], []))}
    for kind, got in limits(agents, lambda _: "all").items():
        if got:
            cluster[{"enforced": "enforced caps", "operator_requested": "requested by operator"}.get(kind, kind)] = got[
                "all"
            ]
    budget = series(op, "powertrain_power_budget_watts", where=lambda lab: lab["level"] == "cluster", agg="max")
    if budget:
        cluster["cluster budget"] = budget["all"]
    plot(ax[0], {k: v for k, v in cluster.items() if v[0]}, "Cluster GPU power: draw vs caps vs budget", "W")

    rack = domains(op, "rack")

    def on_rack(lab: Labels) -> str | None:
        return rack.get(lab["node"])

    per_rack = {f"draw {k}": v for k, v in series(agents, "powertrain_gpu_power_watts", on_rack).items()}
    per_rack |= {f"caps {k}": v for k, v in limits(agents, on_rack)["enforced"].items()}
    budgets = series(
        op, "powertrain_power_budget_watts", lambda lab: lab["domain"], "max", lambda lab: lab["level"] == "rack"
    )
    per_rack |= {f"budget {k}": v for k, v in budgets.items()}
    plot(ax[1], per_rack, "Power draw vs caps vs budget by rack", "W")

    draw_now = {k: v[1][-1] for k, v in series(agents, "powertrain_gpu_power_watts", on_rack).items()}
    budget_now = {lab["domain"]: v for lab, v in last(op, "powertrain_power_budget_watts") if lab["level"] == "rack"}
    used = {d: 100 * draw_now[d] / budget_now[d] for d in draw_now if budget_now.get(d)}
    bars(ax[2], used, "Budget used by rack (end of run)", "%", color="#79c")
    ax[2].set_xlim(0, 100)

    kwh = job_energy_kwh(agents)
    queues = queue_of(op)
    per_queue: dict[str, float] = defaultdict(float)
    for job, e in kwh.items():
        if job in queues:  # the join drops jobs with no powertrain_job_info (deleted jobs)
            per_queue[queues[job]] += e
    bars(ax[3], {k: v * 1000 for k, v in kwh.items()}, "Energy per TrainingJob in the range", "Wh")
    bars(ax[4], {k: v * 1000 for k, v in per_queue.items()}, "Energy per queue in the range", "Wh", color="#b8b")

    per_gpu = series(rp, "powertrain_gpu_power_watts", lambda lab: f"gpu {lab['gpu']}")
    plot(ax[5], dict(sorted(per_gpu.items())[:4]), "Power per GPU (4 of 8, replayed trace)", "W")
    energy = series(rp, "powertrain_gpu_energy_joules_total", lambda lab: lab["node"])
    plot(ax[6], {k: rate(v) for k, v in energy.items()}, "GPU energy rate by node (replayed trace)", "W")
    reasons = series(
        rp, "powertrain_gpu_clock_event_reason", lambda lab: None if lab["reason"] == "GpuIdle" else lab["reason"]
    )
    stack(
        ax[7],
        {k: v for k, v in reasons.items() if max(v[1]) > 0},
        "GPUs held down by each clock-event reason (replayed trace)",
        "GPUs",
    )
    plot(ax[8], series(rp, "powertrain_gpu_sm_clock_hertz", lambda lab: lab["node"], "mean"), "Mean SM clock", "Hz")
    replay_power = {"draw (1 s average)": series(rp, "powertrain_gpu_power_watts")["all"]}
    for kind, got in limits(rp, lambda _: "all").items():
        if got:
            replay_power[f"{kind} limits"] = got["all"]
    plot(ax[9], replay_power, "Cluster GPU power: draw vs caps (replayed trace, no operator)", "W")
    save(fig, "power-energy.png")


def job_view(sb: list[Scrape], job: str) -> None:
    fig, ax = figure(f"Job view (default/{job})", SANDBOX, 4)
    agents = only(sb, "agent:")

    def mine(lab: Labels) -> bool:
        return lab.get("training_job") == job

    def gpu(lab: Labels) -> str:
        return f"{lab['node']}/{lab['gpu']}"

    plot(ax[0], series(agents, "powertrain_gpu_sm_activity_percent", gpu, where=mine), "SM activity per GPU", "%")
    mix = {}
    for metric, name in (
        ("powertrain_gpu_tensor_activity_percent", "tensor active (GPM)"),
        ("powertrain_gpu_dram_activity_percent", "DRAM bandwidth (GPM)"),
        ("powertrain_gpu_utilization_percent", "NVML 'utilization'"),
    ):
        got = series(agents, metric, agg="mean", where=mine)
        if got:
            mix[name] = got["all"]
    plot(ax[1], mix, "Tensor activity vs NVML 'utilization'", "%")
    plot(ax[2], series(agents, "powertrain_gpu_memory_used_bytes", gpu, where=mine), "Memory used per GPU", "bytes")
    power = {"draw": series(agents, "powertrain_gpu_power_watts", where=mine).get("all", ([], []))}
    power["caps"] = series(
        agents, "powertrain_gpu_power_limit_watts", where=lambda lab: mine(lab) and lab["limit"] == "enforced"
    ).get("all", ([], []))
    plot(ax[3], {k: v for k, v in power.items() if v[0]}, "Power vs cap", "W")
    nodes = {lab["node"] for _, _, s in agents for n, lab, _ in s if n == "powertrain_gpu_info" and mine(lab)}
    net: dict[str, tuple[list[float], list[float]]] = {}
    for metric, d in (
        ("powertrain_network_receive_bytes_total", "rx"),
        ("powertrain_network_transmit_bytes_total", "tx"),
    ):
        for node, pts in series(agents, metric, lambda lab: lab["node"] if lab["node"] in nodes else None).items():
            net[f"{d} {node}"] = rate(pts)
    quiet = all(max(vs, default=0) == 0 for _, vs in net.values())
    plot(ax[4], net, "Network on the job's nodes" + (" (the sandbox simulates no traffic)" if quiet else ""), "B/s")
    sm = series(agents, "powertrain_gpu_sm_activity_percent", gpu, where=mine)
    ticks = sorted({t for ts, _ in sm.values() for t in ts})
    by_tick = [[dict(zip(*sm[g], strict=True)).get(t) for g in sm] for t in ticks]
    mins = [min(v for v in row if v is not None) for row in by_tick]
    meds = [sorted(v for v in row if v is not None)[len([v for v in row if v is not None]) // 2] for row in by_tick]
    plot(
        ax[5],
        {"min": (ticks, mins), "median": (ticks, meds)} if ticks else {},
        "Straggler check: min vs median SM activity",
        "%",
    )
    op = only(sb, "operator")
    key = {"exported_namespace": "default", "training_job": job}

    def this_job(lab: Labels) -> bool:
        return all(lab.get(k) == v for k, v in key.items())

    # The stat panels show the value at the end of the range; their sparklines are the series plotted here.
    restarts = series(op, "powertrain_job_gang_restarts", lambda _: "gang restarts", "max", this_job)
    now = f"{restarts['gang restarts'][1][-1]:.0f}" if restarts else "no data"
    plot(ax[6], restarts, f"Gang restarts (stat: {now})", "restarts")
    cap = series(op, "powertrain_job_power_cap_watts", lambda _: "requested cap per GPU", "max", this_job)
    now = f"{cap['requested cap per GPU'][1][-1]:.0f} W" if cap else "none"
    info = [f"{lab['queue']} / {lab['phase']}" for lab, v in last(op, "powertrain_job_info") if this_job(lab) and v]
    plot(ax[7], cap, f"Requested cap per GPU (stat: {now}); queue / phase (stat): {', '.join(info) or 'no data'}", "W")
    save(fig, "job-view.png")


def node_health(rp: list[Scrape]) -> None:
    fig, ax = figure("Node health", REPLAY, 3)
    healthy = series(rp, "powertrain_gpu_healthy")
    unhealthy = {"unhealthy GPUs": (healthy["all"][0], [8 - v for v in healthy["all"][1]])} if healthy else {}
    lost = series(rp, "powertrain_gpu_lost")
    if lost:
        unhealthy["lost GPUs"] = lost["all"]
    plot(ax[0], unhealthy, "Unhealthy and lost GPUs (none in the trace)", "GPUs")
    plot(
        ax[1],
        series(rp, "powertrain_gpu_temperature_celsius", lambda lab: f"{lab['node']} hottest GPU", "max"),
        "Temperature",
        "°C",
    )
    slow = series(
        rp,
        "powertrain_gpu_clock_event_reason",
        lambda lab: (
            lab["reason"]
            if lab["reason"] in ("SwThermalSlowdown", "HwThermalSlowdown", "HwSlowdown", "HwPowerBrakeSlowdown")
            else None
        ),
    )
    plot(ax[2], slow, "Thermal and hardware slowdowns (GPUs affected)", "GPUs")
    ecc = series(rp, "powertrain_gpu_ecc_errors", lambda lab: f"{lab['error_type']} {lab['counter_type']}")
    plot(ax[3], ecc, "ECC errors", "errors")
    plot(
        ax[4],
        series(rp, "powertrain_agent_sample_duration_seconds", lambda lab: "fast sample"),
        "Agent: sample time",
        "s",
    )
    plot(
        ax[5],
        series(rp, "powertrain_agent_slow_sample_duration_seconds", lambda lab: "slow sample"),
        "Agent: slow sample time",
        "s",
    )
    save(fig, "node-health.png")


def save(fig: Any, name: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / name, dpi=80)
    plt.close(fig)
    print(f"wrote {OUT / name}")


def jobs_seen(sb: Iterable[Scrape]) -> set[str]:
    return {
        lab["training_job"]
        for _, _, s in sb
        for n, lab, _ in s
        if n == "powertrain_gpu_info" and lab.get("training_job")
    }


def busiest_job(sb: Iterable[Scrape]) -> str:
    held: dict[str, int] = defaultdict(int)
    for _, _, samples in sb:
        for n, lab, _ in samples:
            if n == "powertrain_gpu_info" and lab.get("training_job"):
                held[lab["training_job"]] += 1
    return max(held, key=held.__getitem__)


def main() -> None:
    sb, rp = load("sandbox"), load("replay")
    cluster_overview(sb)
    power_energy(rp, sb)
    job_view(sb, "llm-pretrain" if "llm-pretrain" in jobs_seen(sb) else busiest_job(sb))
    node_health(rp)


if __name__ == "__main__":
    main()
