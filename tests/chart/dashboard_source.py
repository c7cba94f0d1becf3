"""Source of the Grafana dashboards in charts/powertrain/dashboards/*.json.

The JSON files are generated from this module (`python tests/chart/dashboard_source.py`) and committed, so
Grafana users can import them as they are; a test checks the files equal what this module builds. Every
query uses only metrics of powertrain.metrics (operator) and powertrain_agent.metrics (agent).

Label conventions of the exporters: the agent labels GPU series with `node`, `gpu`, `uuid`, `model` and, for a
GPU held by a pod, `exported_namespace`, `exported_pod`, `training_job`. The operator labels by `model`
(the node's `nvidia.com/gpu.product` value), `queue`, `phase`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "charts" / "powertrain" / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
JOB = 'exported_namespace="$namespace", training_job="$job"'
# One series per node naming its domain at the chosen level; `max by` folds the copies a second operator
# replica may export, so the join below stays many-to-one.
DOMAIN_OF_NODE = 'max by (node, domain) (powertrain_node_domain_info{level="$level"})'
# The job's queue; `max by` drops the phase label so a phase change never splits the join.
QUEUE_OF_JOB = "max by (exported_namespace, training_job, queue) (powertrain_job_info)"


def by_domain(agg: str, expr: str) -> str:
    """Aggregate a per-node (or per-GPU) agent series over the topology domains of the level variable."""
    return f"{agg} by (domain) ({expr} * on (node) group_left (domain) {DOMAIN_OF_NODE})"


Panel = dict[str, Any]


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {"refId": ref, "datasource": DS, "expr": expr, "legendFormat": legend}
    if instant:
        t |= {"instant": True, "range": False, "format": "table"}
    return t


def panel(
    kind: str,
    title: str,
    targets: list[dict[str, Any]],
    *,
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    description: str = "",
    stack: bool = False,
    max_value: float | None = None,
    decimals: int | None = None,
) -> Panel:
    defaults: dict[str, Any] = {"unit": unit}
    if max_value is not None:
        defaults |= {"min": 0, "max": max_value}
    if decimals is not None:
        defaults["decimals"] = decimals
    if kind == "timeseries":
        defaults["custom"] = {"fillOpacity": 20 if stack else 5, "stacking": {"mode": "normal" if stack else "none"}}
    refs = "ABCDEFGH"
    p: Panel = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [t | {"refId": refs[i]} for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "gridPos": {"w": w, "h": h},
    }
    if kind == "timeseries":
        p["options"] = {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]}}
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value", "graphMode": "area"}
    return p


def name_only(p: Panel) -> Panel:
    """A stat that shows its series' name instead of the value (for info series whose value is always 1)."""
    p["options"]["textMode"] = "name"
    return p


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}}


def text(title: str, content: str, w: int = 24, h: int = 6) -> Panel:
    return {
        "type": "text",
        "title": title,
        "options": {"mode": "markdown", "content": content},
        "gridPos": {"w": w, "h": h},
    }


def layout(panels: list[Panel]) -> list[Panel]:
    """Place panels left to right, wrapping at Grafana's 24 columns; ids follow the order."""
    x = y = line_h = 0
    for i, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if p["type"] == "row" or x + w > 24:
            x, y, line_h = 0, y + line_h, 0
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        p["id"] = i
        x, line_h = x + w, max(line_h, h)
        if p["type"] == "row":
            x, y, line_h = 0, y + h, 0
    return panels


def datasource_var() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "includeAll": False,
        "multi": False,
        "options": [],
    }


def query_var(name: str, label: str, query: str, *, include_all: bool = False) -> dict[str, Any]:
    v: dict[str, Any] = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "current": {},
        "hide": 0,
        "includeAll": include_all,
        "multi": False,
        "options": [],
    }
    if include_all:
        v["allValue"] = ".*"
    return v


def level_var() -> dict[str, Any]:
    """Topology level to group by (rack by default), from the levels the operator exports."""
    v = query_var("level", "Topology level", "label_values(powertrain_node_domain_info, level)")
    v["current"] = {"text": "rack", "value": "rack"}
    return v


def dashboard(
    uid: str, title: str, description: str, panels: list[Panel], variables: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["powertrain", "gpu"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "",
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "tags": ["powertrain"],
                "asDropdown": True,
                "title": "Powertrain",
                "includeVars": False,
            }
        ],
        "templating": {"list": [datasource_var(), *variables]},
        "panels": layout(panels),
    }


def cluster_overview() -> dict[str, Any]:
    rate = "$__rate_interval"
    panels = [
        row("Capacity: allocated vs really busy"),
        panel("stat", "GPUs allocated", [target("sum(powertrain_gpus_allocated)")], w=4, h=4),
        panel("stat", "GPUs free", [target("sum(powertrain_gpus_free)")], w=4, h=4),
        panel(
            "stat",
            "Fragmented free GPUs",
            [target("sum(powertrain_gpus_fragmented)")],
            w=4,
            h=4,
            description=(
                "Free GPUs that no waiting gang can use (too scattered across the topology, or wrong model): every "
                "free GPU while a gang waits for room, 0 while none does."
            ),
        ),
        panel(
            "stat",
            "Busy GPU-equivalents (SM activity)",
            [target("sum(powertrain_gpu_sm_activity_percent) / 100")],
            w=4,
            h=4,
            decimals=1,
            description="Sum of GPM SM activity over all GPUs, in whole GPUs: what the allocated GPUs really do.",
        ),
        panel("stat", "Jobs running", [target('sum(powertrain_jobs{phase="Running"})')], w=4, h=4),
        panel("stat", "Jobs waiting", [target("sum(powertrain_queue_pending_jobs)")], w=4, h=4),
        panel(
            "timeseries",
            "Allocated vs busy GPUs by model",
            [
                target("sum by (model) (powertrain_gpus_allocated)", "allocated {{model}}"),
                target("sum by (model) (powertrain_gpu_sm_activity_percent) / 100", "SM-active {{model}}"),
                target("sum by (model) (powertrain_gpu_tensor_activity_percent) / 100", "tensor-active {{model}}"),
                target("sum by (model) (powertrain_gpu_utilization_percent) / 100", "NVML 'utilization' {{model}}"),
            ],
            w=16,
            description=(
                "Allocated GPUs (operator) against GPU-equivalents of SM and tensor activity (agents, GPM). NVML's "
                "'utilization' counts time a kernel ran: a memory copy reads 99 % with <1 % tensor activity."
            ),
        ),
        panel(
            "bargauge",
            "Allocated but idle GPUs (SM activity < 5 %)",
            [target('count by (node) (powertrain_gpu_sm_activity_percent{training_job!=""} < 5)', "{{node}}")],
            w=8,
            description="GPUs held by a TrainingJob pod that do almost nothing: idle reservations, data-starved jobs.",
        ),
        panel(
            "timeseries",
            "Free vs fragmented GPUs by model",
            [
                target("sum by (model) (powertrain_gpus_free)", "free {{model}}"),
                target("sum by (model) (powertrain_gpus_fragmented)", "fragmented {{model}}"),
            ],
            description="Fragmented: free GPUs that no waiting gang can use. A large gap means gangs wait on topology.",
        ),
        panel(
            "timeseries",
            "Mean SM activity by node",
            [target("avg by (node) (powertrain_gpu_sm_activity_percent)", "{{node}}")],
            unit="percent",
            max_value=100,
        ),
        row("By topology domain ($level)"),
        panel(
            "timeseries",
            "Held vs really busy GPUs by $level",
            [
                target(
                    by_domain("sum", 'count by (node) (powertrain_gpu_info{exported_pod!=""})'),
                    "held {{domain}}",
                ),
                target(by_domain("sum", "powertrain_gpu_sm_activity_percent") + " / 100", "SM-active {{domain}}"),
                target(
                    by_domain("sum", "powertrain_gpu_tensor_activity_percent") + " / 100", "tensor-active {{domain}}"
                ),
            ],
            w=16,
            description=(
                "GPUs a pod holds against GPU-equivalents of SM and tensor activity, per domain of the chosen "
                "level (the agents' series joined with powertrain_node_domain_info)."
            ),
        ),
        panel(
            "bargauge",
            "Mean SM activity by $level",
            [target(by_domain("avg", "powertrain_gpu_sm_activity_percent"), "{{domain}}", instant=True)],
            unit="percent",
            max_value=100,
            w=8,
        ),
        row("Queues and jobs"),
        panel("timeseries", "Jobs by phase", [target("sum by (phase) (powertrain_jobs)", "{{phase}}")], stack=True),
        panel(
            "timeseries",
            "Queue depth",
            [target("sum by (queue) (powertrain_queue_pending_jobs)", "{{queue}}")],
            stack=True,
        ),
        panel(
            "timeseries",
            "Queue wait (submit → placed), p50 / p95",
            [
                target(
                    f"histogram_quantile(0.5, sum by (le, queue) (rate(powertrain_queue_wait_seconds_bucket[{rate}])))",
                    "p50 {{queue}}",
                ),
                target(
                    "histogram_quantile(0.95, sum by (le, queue) "
                    f"(rate(powertrain_queue_wait_seconds_bucket[{rate}])))",
                    "p95 {{queue}}",
                ),
            ],
            unit="s",
        ),
        panel(
            "timeseries",
            "Placements, resizes, preemptions and gang restarts per hour",
            [
                target("sum by (queue) (increase(powertrain_placements_total[1h]))", "placed {{queue}}"),
                target(
                    "sum by (queue, direction) (increase(powertrain_job_resizes_total[1h]))",
                    "{{direction}} {{queue}}",
                ),
                target("sum by (queue) (increase(powertrain_preemptions_total[1h]))", "preempted {{queue}}"),
                target("sum by (reason) (increase(powertrain_gang_restarts_total[1h]))", "restart: {{reason}}"),
            ],
        ),
        panel(
            "bargauge",
            "Gang restarts per job",
            [
                target(
                    "sort_desc(max by (exported_namespace, training_job) (powertrain_job_gang_restarts) > 0)",
                    "{{exported_namespace}}/{{training_job}}",
                    instant=True,
                )
            ],
            w=24,
            h=6,
            description="Jobs that restarted their whole gang at least once (status.restarts), most first.",
        ),
        row("Operator"),
        panel(
            "timeseries",
            "Placement decision time (p50 / p99)",
            [
                target(
                    "histogram_quantile(0.5, sum by (le) "
                    f"(rate(powertrain_placement_decision_seconds_bucket[{rate}])))",
                    "p50",
                ),
                target(
                    "histogram_quantile(0.99, sum by (le) "
                    f"(rate(powertrain_placement_decision_seconds_bucket[{rate}])))",
                    "p99",
                ),
            ],
            unit="s",
            w=8,
        ),
        panel(
            "timeseries",
            "Reconcile errors per second",
            [target(f"sum by (operation) (rate(powertrain_reconcile_errors_total[{rate}]))", "{{operation}}")],
            unit="ops",
            w=8,
        ),
        panel(
            "timeseries",
            "Leader and scheduling passes",
            [
                target("sum(powertrain_leader)", "replicas leading (must be 1)"),
                target(f"sum(rate(powertrain_scheduling_passes_total[{rate}]))", "passes/s"),
            ],
            w=8,
        ),
    ]
    return dashboard(
        "powertrain-cluster",
        "Powertrain / Cluster overview",
        "GPUs allocated vs really busy (also per topology domain), queues, jobs by phase, restarts, "
        "fragmentation, operator health.",
        panels,
        [level_var()],
    )


def power_energy() -> dict[str, Any]:
    rate = "$__rate_interval"
    n = 'node=~"$node"'
    panels = [
        row("Power"),
        panel(
            "timeseries",
            "Cluster GPU power: draw vs caps",
            [
                target(f"sum(powertrain_gpu_power_watts{{{n}}})", "draw (1 s average)"),
                target(f'sum(powertrain_gpu_power_limit_watts{{{n}, limit="enforced"}})', "enforced caps"),
                target(
                    f'sum(powertrain_gpu_power_limit_watts{{{n}, limit="operator_requested"}})', "requested by operator"
                ),
                target(f'sum(powertrain_gpu_power_limit_watts{{{n}, limit="default"}})', "default limits"),
                target('max(powertrain_power_budget_watts{level="cluster"})', "cluster budget"),
            ],
            unit="watt",
            w=16,
            description=(
                "Draw against the sum of enforced limits and the ClusterTrainingPolicy's cluster budget. Caps come "
                "from jobs' spec.power.capWatts or their power mode, lowered where a budget needs it (the operator "
                "holds every budget). 'enforced' can be lower than requested when an out-of-band limit wins."
            ),
        ),
        panel("stat", "Cluster GPU power now", [target(f"sum(powertrain_gpu_power_watts{{{n}}})")], unit="watt", w=4),
        panel(
            "stat",
            "Headroom to caps",
            [
                target(
                    f'sum(powertrain_gpu_power_limit_watts{{{n}, limit="enforced"}})'
                    f" - sum(powertrain_gpu_power_watts{{{n}}})"
                )
            ],
            unit="watt",
            w=4,
        ),
        panel(
            "timeseries",
            "Power draw vs caps vs budget by $level",
            [
                target(by_domain("sum", f"powertrain_gpu_power_watts{{{n}}}"), "draw {{domain}}"),
                target(
                    by_domain("sum", f'powertrain_gpu_power_limit_watts{{{n}, limit="enforced"}}'),
                    "caps {{domain}}",
                ),
                target('max by (domain) (powertrain_power_budget_watts{level="$level"})', "budget {{domain}}"),
            ],
            unit="watt",
            w=16,
            description=(
                "Per domain of the chosen level (rack by default; budgets exist at the policy's budgetLevel): GPU "
                "draw, the sum of enforced limits and the domain's budget."
            ),
        ),
        panel(
            "bargauge",
            "Budget used by $level",
            [
                target(
                    by_domain("sum", f"powertrain_gpu_power_watts{{{n}}}")
                    + ' / on (domain) max by (domain) (powertrain_power_budget_watts{level="$level"}) * 100',
                    "{{domain}}",
                    instant=True,
                )
            ],
            unit="percent",
            max_value=100,
            w=8,
            description="GPU draw as a share of the domain's power budget (domains without a budget are not shown).",
        ),
        panel(
            "timeseries",
            "Power by node",
            [target(f"sum by (node) (powertrain_gpu_power_watts{{{n}}})", "{{node}}")],
            unit="watt",
            stack=True,
        ),
        panel(
            "timeseries",
            "Power vs cap per GPU",
            [
                target(f"powertrain_gpu_power_watts{{{n}}}", "{{node}}/{{gpu}} draw"),
                target(f'powertrain_gpu_power_limit_watts{{{n}, limit="enforced"}}', "{{node}}/{{gpu}} cap"),
            ],
            unit="watt",
        ),
        row("Energy"),
        panel(
            "bargauge",
            "Energy per TrainingJob in the time range",
            [
                target(
                    "sort_desc(sum by (exported_namespace, training_job) "
                    '(increase(powertrain_gpu_energy_joules_total{training_job!=""}[$__range]))) / 3.6e6',
                    "{{exported_namespace}}/{{training_job}}",
                    instant=True,
                )
            ],
            unit="kwatth",
            description="GPU energy from the cards' energy counters, charged to the job whose pod held the GPU.",
        ),
        panel(
            "bargauge",
            "Energy per namespace in the time range",
            [
                target(
                    "sum by (exported_namespace) (increase(powertrain_gpu_energy_joules_total[$__range])) / 3.6e6",
                    "{{exported_namespace}}",
                    instant=True,
                )
            ],
            unit="kwatth",
            description="Series without a namespace are GPUs no pod held (idle energy).",
        ),
        panel(
            "bargauge",
            "Energy per queue in the time range",
            [
                target(
                    "sort_desc(sum by (queue) (sum by (exported_namespace, training_job) "
                    '(increase(powertrain_gpu_energy_joules_total{training_job!=""}[$__range])) '
                    f"* on (exported_namespace, training_job) group_left (queue) {QUEUE_OF_JOB})) / 3.6e6",
                    "{{queue}}",
                    instant=True,
                )
            ],
            unit="kwatth",
            description=(
                "Each job's GPU energy charged to its queue (joined with powertrain_job_info); jobs already deleted "
                "have no queue any more and are left out."
            ),
        ),
        panel(
            "timeseries",
            "GPU energy rate by node",
            [target(f"sum by (node) (rate(powertrain_gpu_energy_joules_total{{{n}}}[{rate}]))", "{{node}}")],
            unit="watt",
            description="The energy counter's rate: average power between scrapes, independent of sampling.",
        ),
        row("Throttling"),
        panel(
            "timeseries",
            "GPUs held down by each clock-event reason",
            [
                target(
                    f'sum by (reason) (powertrain_gpu_clock_event_reason{{{n}, reason!="GpuIdle"}})',
                    "{{reason}}",
                )
            ],
            stack=True,
            description=(
                "SwPowerCap: power-bound (the cap decides speed). "
                "Thermal and HwSlowdown: a cooling or hardware problem."
            ),
        ),
        panel(
            "timeseries",
            "Mean SM clock",
            [target(f"avg by (node) (powertrain_gpu_sm_clock_hertz{{{n}}})", "{{node}}")],
            unit="hertz",
        ),
        panel(
            "table",
            "Power-cap actuator outcomes",
            [target(f"sum by (node, action) (powertrain_agent_power_actions{{{n}}})", instant=True)],
            w=24,
            h=6,
        ),
    ]
    return dashboard(
        "powertrain-power",
        "Powertrain / Power & energy",
        "GPU power draw vs caps vs budgets per domain and cluster, energy per job, namespace and queue, "
        "throttle reasons.",
        panels,
        [query_var("node", "Node", "label_values(powertrain_agent_info, node)", include_all=True), level_var()],
    )


def job_view() -> dict[str, Any]:
    rate = "$__rate_interval"
    on_job_nodes = f"and on (node) count by (node) (powertrain_gpu_info{{{JOB}}})"
    panels = [
        panel("stat", "GPUs", [target(f"count(powertrain_gpu_info{{{JOB}}})")], w=4, h=4),
        panel("stat", "Nodes", [target(f"count(count by (node) (powertrain_gpu_info{{{JOB}}}))")], w=4, h=4),
        panel(
            "stat",
            "Mean SM activity",
            [target(f"avg(powertrain_gpu_sm_activity_percent{{{JOB}}})")],
            unit="percent",
            w=4,
            h=4,
        ),
        panel(
            "stat",
            "Mean tensor activity",
            [target(f"avg(powertrain_gpu_tensor_activity_percent{{{JOB}}})")],
            unit="percent",
            w=4,
            h=4,
        ),
        panel("stat", "Power now", [target(f"sum(powertrain_gpu_power_watts{{{JOB}}})")], unit="watt", w=4, h=4),
        panel(
            "stat",
            "Energy in range",
            [target(f"sum(increase(powertrain_gpu_energy_joules_total{{{JOB}}}[$__range])) / 3.6e6")],
            unit="kwatth",
            w=4,
            h=4,
        ),
        panel(
            "stat",
            "Gang restarts",
            [target(f"max(powertrain_job_gang_restarts{{{JOB}}})")],
            w=4,
            h=4,
        ),
        panel(
            "stat",
            "Requested cap per GPU",
            [target(f"max(powertrain_job_power_cap_watts{{{JOB}}})")],
            unit="watt",
            w=4,
            h=4,
            description="spec.power.capWatts, else the cap the job's power mode settled on; empty when uncapped.",
        ),
        panel(
            "stat",
            "Estimated cost",
            [target(f"max(powertrain_job_cost_estimate{{{JOB}}})")],
            w=4,
            h=4,
            decimals=2,
            description=(
                "status.costEstimate in the policy's cost.currency: GPU-hours × price per GPU-hour + GPU energy × "
                "price per kWh. An estimate (no CPU, storage, network or non-GPU power); empty without prices."
            ),
        ),
        name_only(
            panel(
                "stat",
                "Queue / phase",
                [target(f"max by (queue, phase) (powertrain_job_info{{{JOB}}})", "{{queue}} / {{phase}}")],
                w=12,
                h=4,
            )
        ),
        text(
            "Reading this job",
            "**Healthy, compute-bound**: tensor activity high, power near the cap with *SwPowerCap*.  \n"
            "**Data-starved**: SM activity low while NVML 'utilization' looks fine, low PCIe and network traffic, "
            "power far below the cap — fix the input pipeline.  \n"
            "**Communication-bound**: tensor activity low while network rx/tx on the job's nodes is high — "
            "a tighter topology (`spec.topology`) helps.  \n"
            "**Straggler**: one GPU's SM activity far below the others (see *min vs median*).",
            h=5,
        ),
        panel(
            "timeseries",
            "SM activity per GPU",
            [target(f"powertrain_gpu_sm_activity_percent{{{JOB}}}", "{{node}}/{{gpu}}")],
            unit="percent",
            max_value=100,
        ),
        panel(
            "timeseries",
            "Tensor activity vs NVML 'utilization'",
            [
                target(f"avg(powertrain_gpu_tensor_activity_percent{{{JOB}}})", "tensor active (GPM)"),
                target(f"avg(powertrain_gpu_dram_activity_percent{{{JOB}}})", "DRAM bandwidth (GPM)"),
                target(f"avg(powertrain_gpu_utilization_percent{{{JOB}}})", "NVML 'utilization'"),
            ],
            unit="percent",
            max_value=100,
        ),
        panel(
            "timeseries",
            "Straggler check: min vs median SM activity",
            [
                target(f"min(powertrain_gpu_sm_activity_percent{{{JOB}}})", "min"),
                target(f"quantile(0.5, powertrain_gpu_sm_activity_percent{{{JOB}}})", "median"),
            ],
            unit="percent",
            max_value=100,
        ),
        panel(
            "timeseries",
            "Memory used per GPU",
            [target(f"powertrain_gpu_memory_used_bytes{{{JOB}}}", "{{node}}/{{gpu}}")],
            unit="bytes",
        ),
        panel(
            "timeseries",
            "Power vs cap",
            [
                target(f"sum(powertrain_gpu_power_watts{{{JOB}}})", "draw"),
                target(f'sum(powertrain_gpu_power_limit_watts{{{JOB}, limit="enforced"}})', "caps"),
            ],
            unit="watt",
        ),
        panel(
            "timeseries",
            "Network on the job's nodes",
            [
                target(
                    f"sum by (node) (rate(powertrain_network_receive_bytes_total[{rate}])) {on_job_nodes}",
                    "rx {{node}}",
                ),
                target(
                    f"sum by (node) (rate(powertrain_network_transmit_bytes_total[{rate}])) {on_job_nodes}",
                    "tx {{node}}",
                ),
            ],
            unit="Bps",
            description="All traffic of the nodes the job's GPUs are on (InfiniBand/RoCE ports and Ethernet).",
        ),
        panel(
            "timeseries",
            "PCIe traffic per GPU",
            [
                target(f"powertrain_gpu_pcie_receive_bytes_per_second{{{JOB}}}", "rx {{node}}/{{gpu}}"),
                target(f"powertrain_gpu_pcie_transmit_bytes_per_second{{{JOB}}}", "tx {{node}}/{{gpu}}"),
            ],
            unit="Bps",
        ),
        panel(
            "table",
            "Placement",
            [target(f"powertrain_gpu_info{{{JOB}}}", instant=True)],
            w=12,
            description="Which pod holds which GPU on which node.",
        ),
        panel(
            "timeseries",
            "Throttle reasons on the job's GPUs",
            [
                target(
                    f'sum by (reason) (powertrain_gpu_clock_event_reason{{{JOB}, reason!="GpuIdle"}})',
                    "{{reason}}",
                )
            ],
            stack=True,
        ),
        panel(
            "timeseries",
            "Workers' SM activity: min / median / max",
            [
                target(f'max(powertrain_job_worker_sm_activity_percent{{{JOB}, stat="{stat}"}})', stat)
                for stat in ("min", "median", "max")
            ],
            unit="percent",
            max_value=100,
            description=(
                "From the operator's status.usage: one value per worker (a pod, its GPUs averaged). A worker at 0 % "
                "beside busy peers pulls min down while the mean barely moves."
            ),
        ),
        panel(
            "timeseries",
            "Job network and storage, summed over workers",
            [
                target(f'max(powertrain_job_{kind}_bytes_per_second{{{JOB}, direction="{way}"}})', f"{kind} {way}")
                for kind, way in (("network", "rx"), ("network", "tx"), ("storage", "read"), ("storage", "write"))
            ],
            unit="Bps",
            w=24,
            description=(
                "From the operator's status.usage: the pods' own network namespaces (plus InfiniBand of workers "
                "that hold a whole node) and their cgroups' block I/O, not the whole nodes' traffic."
            ),
        ),
        name_only(
            panel(
                "stat",
                "Efficiency verdict",
                [target(f"max by (verdict) (powertrain_job_efficiency{{{JOB}}})", "{{verdict}}")],
                w=6,
                description=(
                    "status.efficiency.verdict: the first rule of the policy's spec.efficiency that matches the last "
                    "window of telemetry (Idle, Straggler, ThermalThrottled, PowerThrottled, Healthy, MemoryBound, "
                    "CommunicationBound, InputBound, Underutilized); `kubectl describe tj` shows the rule's numbers."
                ),
            )
        ),
        panel(
            "timeseries",
            "Efficiency evidence",
            [
                target(f'max(powertrain_job_efficiency_evidence{{{JOB}, figure="{figure}"}})', figure)
                for figure in ("sm", "tensor", "dram")
            ]
            + [
                target(f'100 * max(powertrain_job_efficiency_evidence{{{JOB}, figure="{figure}"}})', f"{figure} × 100")
                for figure in ("slowest_ratio", "power_throttled", "thermal_throttled")
            ]
            + [target(f"max by (condition) (powertrain_job_reschedule_condition{{{JOB}}}) * 100", "{{condition}}")],
            unit="percent",
            w=18,
            description=(
                "The numbers behind the verdict, over the policy's efficiency window: SM, tensor and DRAM activity, "
                "the slowest worker over the gang median, the share of reports throttled; Straggler/Idle at 100 "
                "while the job has that condition (policy spec.rescheduling)."
            ),
        ),
    ]
    return dashboard(
        "powertrain-job",
        "Powertrain / Job view",
        "One TrainingJob: its GPUs' activity, memory, power, energy, network, placement, restarts, cap.",
        panels,
        [
            query_var(
                "namespace", "Namespace", 'label_values(powertrain_gpu_info{training_job!=""}, exported_namespace)'
            ),
            query_var(
                "job",
                "TrainingJob",
                'label_values(powertrain_gpu_info{exported_namespace="$namespace", training_job!=""}, training_job)',
            ),
        ],
    )


def node_health() -> dict[str, Any]:
    n = 'node=~"$node"'
    panels = [
        panel("stat", "Unhealthy GPUs", [target(f"count(powertrain_gpu_healthy{{{n}}} == 0) or vector(0)")], w=4, h=4),
        panel("stat", "Lost GPUs", [target(f"sum(powertrain_gpu_lost{{{n}}})")], w=4, h=4),
        panel(
            "stat",
            "XIDs in range",
            [target(f"sum(increase(powertrain_gpu_xid_errors_total{{{n}}}[$__range])) or vector(0)")],
            w=4,
            h=4,
        ),
        panel("stat", "Agents reporting", [target(f"count(powertrain_agent_info{{{n}}})")], w=4, h=4),
        panel(
            "stat", "Hottest GPU", [target(f"max(powertrain_gpu_temperature_celsius{{{n}}})")], unit="celsius", w=4, h=4
        ),
        panel(
            "stat",
            "GPUs needing a reset or reboot",
            [target(f"count(powertrain_gpu_recovery_action{{{n}}} > 0) or vector(0)")],
            w=4,
            h=4,
        ),
        panel(
            "table",
            "Unhealthy GPUs (the operator stops placing on them)",
            [target(f"powertrain_gpu_healthy{{{n}}} == 0", instant=True)],
            w=24,
            h=6,
        ),
        panel(
            "timeseries",
            "XID errors",
            [
                target(
                    f"sum by (node, gpu, xid) (increase(powertrain_gpu_xid_errors_total{{{n}}}[5m]))",
                    "{{node}}/{{gpu}} XID {{xid}}",
                )
            ],
            description=(
                "XID 79: fallen off the bus; 48/63/64/94/95: ECC and row-remap events; "
                "13/31/43: usually the application."
            ),
        ),
        panel(
            "timeseries",
            "ECC errors (volatile) and remapped rows",
            [
                target(
                    f'sum by (node, gpu, error_type) (powertrain_gpu_ecc_errors{{{n}, counter_type="volatile"}})',
                    "{{node}}/{{gpu}} {{error_type}}",
                ),
                target(
                    f'powertrain_gpu_remapped_rows{{{n}, state=~"pending|failure"}} > 0',
                    "{{node}}/{{gpu}} remap {{state}}",
                ),
            ],
        ),
        panel(
            "timeseries",
            "Temperature",
            [target(f"max by (node) (powertrain_gpu_temperature_celsius{{{n}}})", "{{node}} hottest GPU")],
            unit="celsius",
        ),
        panel(
            "timeseries",
            "Thermal and hardware slowdowns",
            [
                target(
                    f"sum by (node, reason) (powertrain_gpu_clock_event_reason{{{n}, "
                    'reason=~"SwThermalSlowdown|HwThermalSlowdown|HwSlowdown|HwPowerBrakeSlowdown"})',
                    "{{node}} {{reason}}",
                )
            ],
        ),
        panel(
            "timeseries",
            "NVLink",
            [
                target(f"sum by (node) (powertrain_gpu_nvlink_links_up{{{n}}})", "{{node}} links up"),
                target(f"sum by (node) (powertrain_gpu_nvlink_errors{{{n}}})", "{{node}} errors"),
            ],
        ),
        panel(
            "timeseries",
            "Agent: sample time and NVML errors",
            [
                target(f"max by (node) (powertrain_agent_sample_duration_seconds{{{n}}})", "{{node}} fast sample"),
                target(f"max by (node) (powertrain_agent_slow_sample_duration_seconds{{{n}}})", "{{node}} slow sample"),
                target(
                    f"sum by (node) (rate(powertrain_agent_nvml_errors_total{{{n}}}[$__rate_interval]))",
                    "{{node}} NVML errors/s",
                ),
            ],
            unit="s",
        ),
    ]
    return dashboard(
        "powertrain-node-health",
        "Powertrain / Node health",
        "Unhealthy and lost GPUs, XIDs, ECC and row remapping, temperatures, slowdowns, agent health.",
        panels,
        [query_var("node", "Node", "label_values(powertrain_agent_info, node)", include_all=True)],
    )


DASHBOARDS = {
    "cluster-overview": cluster_overview,
    "power-energy": power_energy,
    "job-view": job_view,
    "node-health": node_health,
}


def build_all() -> dict[str, str]:
    """File name → JSON text, exactly as committed."""
    return {
        f"{name}.json": json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()
    }


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for filename, content in build_all().items():
        (OUT / filename).write_text(content)
        print(f"wrote {OUT / filename}")
