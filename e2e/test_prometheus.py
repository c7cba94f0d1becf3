"""A real Prometheus scraping the real operator and two sim agents on the sandbox: every dashboard query returns
data, and every alert the chart ships fires, during a scenario that exercises them (a waiting job, a capped
job with a straggling worker, an idle job, a gang that keeps failing, API errors, an XID, a lost GPU, a
remapped-row failure, a power budget lowered below what the GPUs draw at their minimum limits, then an agent
gone, the operator paused by a higher-priority peer, the operator gone).

Needs `prometheus` (Debian's package); without it the test skips outside CI and fails in CI."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from powertrain.api.constants import JOB_NAME_LABEL
from powertrain.controllers.testing import OperatorProcess, free_port, training_job, wait_for
from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.peering import KOPF_PEERING_CRDS
from powertrain.sandbox.testing import FAST_KUBELET, Kubectl
from powertrain_agent.agent import Agent, AgentConfig
from powertrain_agent.cli import start_exporter, start_watches
from powertrain_agent.collectors.sim import WORKLOAD_ANNOTATION, SimCollector
from powertrain_agent.kube import KubeClient, load_client
from powertrain_agent.reporter import StatusWriter
from prometheus_server import PrometheusServer, alert_names, require, rules_with_for, version

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

DASHBOARDS = Path(__file__).resolve().parents[1] / "charts" / "powertrain" / "dashboards"
PEERING = "prom-e2e"
# Grafana's built-in variables at a 1 s scrape interval: $__rate_interval is at least four scrape intervals.
GRAFANA_BUILTINS = {"$__rate_interval": "10s", "$__interval": "2s", "$__range": "5m"}
# Dashboard variables: the value a person would pick (the node variable takes its "All" value).
PICK = {"level": "rack", "namespace": "default", "job": "capped"}
# Alerts wait minutes in a cluster; here one evaluation, so the scenario stays short (values.prometheusRule.for).
SHORT_FOR = {name: "1s" for name in alert_names()}
LOST_GPU = 7
XID_GPU, XID = 5, 48  # a double-bit ECC error
REMAP_GPU = 6


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(nodes=2, gpus_per_node=8, topology="zone=1,spine=1,rack=2", kubelet=FAST_KUBELET)


class ExportingAgent:
    """The agent's own classes on a sandbox node, in this process (so the test can break its simulated GPUs),
    with its Prometheus exporter on a free port."""

    def __init__(self, sandbox: Sandbox, node: str, dcgm_compat: bool) -> None:
        self.node = node
        self.port = free_port()
        self.sim = SimCollector(8, seed=node)
        self.sim.open()
        kube = KubeClient(load_client(str(sandbox.kubeconfig_path)))
        config = AgentConfig(
            node=node,
            interval_s=0.5,
            slow_interval_s=1.0,
            report_min_interval_s=1,
            report_max_interval_s=2,
            report_jitter_s=0,
            health_clear_s=600.0,
            xid_hold_s=600.0,
        )
        self.agent = Agent(config, self.sim, StatusWriter(kube, node))
        self.server = start_exporter(self.agent, "127.0.0.1", self.port, dcgm_compat=dcgm_compat)
        start_watches(self.agent, kube, node)
        self.thread = threading.Thread(target=self.agent.run, name=f"agent-{node}", daemon=True)
        self.thread.start()
        self.stopped = False

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.server.shutdown()
        self.agent.stop_event.set()
        self.thread.join(timeout=10)
        self.agent.shutdown()


@pytest.fixture
def agents(sandbox: Sandbox) -> Iterator[list[ExportingAgent]]:
    # Both with --dcgm-compat, scraped with honor_labels as the chart does then: the powertrain_* series and the
    # dashboards must not change, and DCGM's pod labels must survive the scrape.
    running = [ExportingAgent(sandbox, node, dcgm_compat=True) for node in sandbox.node_names]
    yield running
    for a in running:
        a.stop()


def job(name: str, **kw: Any) -> dict[str, Any]:
    workload = kw.pop("workload", None)
    cap = kw.pop("cap", None)
    manifest = training_job(name, level="node", **kw)
    if workload:
        manifest["spec"]["template"]["metadata"]["annotations"][WORKLOAD_ANNOTATION] = workload
    if cap:
        manifest["spec"]["power"] = {"capWatts": cap}
    return manifest


QUEUES = [{"name": "default", "weight": 1}, {"name": "research", "weight": 2}]
# Budgets are enforced: while the jobs start, ones every gang fits in (at minimum limits: 8 GPUs a rack, 200 W
# each busy, 77 W each idle); the rack budget binds the capped job (4 x ~390 W and 4 idle GPUs), which the
# operator holds under it by lowering its limits. Prices, so jobs have a cost estimate; a straggler reported
# after the shortest window the policy allows, over a short efficiency window.
SPEC = {
    "power": {"clusterWatts": 4000, "budgetLevel": "rack", "domainWatts": 1500},
    "queues": QUEUES,
    "cost": {"defaultGpuHour": 2.5, "energyPerKwh": 0.15},
    "efficiency": {"windowSeconds": 20},
    "rescheduling": {"straggler": "Warn", "stragglerWindowSeconds": 30},
}
POLICY = {
    "apiVersion": "powertrain.dev/v1alpha1",
    "kind": "ClusterTrainingPolicy",
    "metadata": {"name": "default"},
    "spec": SPEC,
}
# Then an operator of the site lowers the budgets below what the capped job's rack draws even with every busy
# GPU at its minimum limit (4 x ~195 W + 4 idle GPUs x 77 W, which no limit lowers): the budget cannot be held,
# the operator says so (policy status, powertrain_power_budget_draw_watts), and the alert fires.
UNHOLDABLE = {**SPEC, "power": {"clusterWatts": 1500, "budgetLevel": "rack", "domainWatts": 900}}


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def substitute(expr: str, values: dict[str, str]) -> str:
    for name, value in GRAFANA_BUILTINS.items():
        expr = expr.replace(name, value)
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    assert "$" not in expr, f"unresolved Grafana variable in {expr}"
    return expr


def resolve_variables(prom: PrometheusServer, dashboard: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Each query variable's values from Prometheus (as Grafana asks for them) → the value picked; problems."""
    values: dict[str, str] = {}
    problems: list[str] = []
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = substitute(var["query"]["query"], values)
        match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
        assert match, f"variable ${var['name']}: not a label_values() query: {query}"
        found = prom.label_values(match.group(2), match.group(1))
        if not found:
            problems.append(f"{dashboard['title']}: variable ${var['name']} has no values: {query}")
            values[var["name"]] = "none"
        elif var.get("includeAll"):
            values[var["name"]] = var.get("allValue") or "|".join(found)
        else:
            wanted = PICK.get(var["name"], found[0])
            if wanted not in found:
                problems.append(f"{dashboard['title']}: ${var['name']} lacks {wanted!r} (has {found})")
            values[var["name"]] = wanted
    return values, problems


def has_data(series: list[dict[str, Any]]) -> bool:
    return any(v != "NaN" for s in series for _, v in s["values"])


def wait_firing(prom: PrometheusServer, names: set[str], timeout: float = 60) -> dict[str, list[dict[str, str]]]:
    deadline = time.monotonic() + timeout
    while True:
        firing = prom.firing()
        if names <= firing.keys():
            return firing
        if time.monotonic() > deadline:
            rules = [
                (r["name"], r["health"], r.get("lastError", ""))
                for g in prom.api("rules")["groups"]
                for r in g["rules"]
            ]
            raise AssertionError(
                f"not firing: {sorted(names - firing.keys())}; firing: {sorted(firing)}; rules: {rules}"
            )
        time.sleep(0.5)


def check_idle_stats(prom: PrometheusServer) -> list[str]:
    """On a cluster with agents but no jobs, every single-number panel that needs no job shows a number."""
    problems = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        values, _ = resolve_variables(prom, dashboard)
        for panel in all_panels(dashboard["panels"]):
            if panel["type"] != "stat" or any("$job" in t["expr"] for t in panel["targets"]):
                continue
            for t in panel["targets"]:
                expr = substitute(t["expr"], values)
                if not prom.api("query", query=expr)["result"]:
                    problems.append(f"{path.name} / {panel['title']}: No data on an idle cluster: {expr}")
    return problems


def check_dashboards(prom: PrometheusServer, start: float) -> tuple[int, list[str]]:
    checked = 0
    problems: list[str] = []
    end = time.time()
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        values, var_problems = resolve_variables(prom, dashboard)
        problems += var_problems
        checked += sum(1 for v in dashboard["templating"]["list"] if v["type"] == "query")
        for panel in all_panels(dashboard["panels"]):
            for t in panel.get("targets", []):
                expr = substitute(t["expr"], values)
                checked += 1
                if not has_data(prom.query_range(expr, start, end, step=1)):
                    problems.append(f"{path.name} / {panel['title']}: no data: {expr}")
    return checked, problems


def check_dcgm_names(prom: PrometheusServer, kubectl: Kubectl) -> None:
    """A dcgm-exporter style query finds the capped job's pod by DCGM's own labels, in DCGM's units."""
    pods = {p["metadata"]["name"] for p in kubectl.json("get", "pods", "-l", f"{JOB_NAME_LABEL}=capped")["items"]}
    power = prom.api("query", query='sum by (namespace, pod) (DCGM_FI_DEV_POWER_USAGE{pod!=""})')["result"]
    by_pod = {(r["metric"]["namespace"], r["metric"]["pod"]): float(r["value"][1]) for r in power}
    assert len(pods) == 2
    for pod in pods:
        assert 0 < by_pod[("default", pod)] <= 2 * 400  # W, 2 GPUs capped at 400 W
    active = prom.api("query", query="max(DCGM_FI_PROF_SM_ACTIVE)")["result"]
    assert 0 < float(active[0]["value"][1]) <= 1  # a ratio, not a percentage
    gpus = prom.api("query", query="count(DCGM_FI_DEV_GPU_TEMP)")["result"]
    assert float(gpus[0]["value"][1]) == 15  # 16 GPUs, one fell off the bus; each seen once


@pytest.fixture
def prometheus_binary() -> str:
    """Checked before the sandbox starts: skip (or, in CI, fail) at once when Prometheus is not installed."""
    require("promtool")
    return require("prometheus")


def test_every_dashboard_query_has_data_and_every_alert_fires(
    prometheus_binary: str, sandbox: Sandbox, kubectl: Kubectl, agents: list[ExportingAgent], tmp_path: Path
) -> None:
    print(f"Prometheus: {version(prometheus_binary)}")
    for crd in KOPF_PEERING_CRDS:
        sandbox.api("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    rules = tmp_path / "powertrain-alerts.yaml"
    rules.write_text(yaml.safe_dump(rules_with_for(SHORT_FOR), sort_keys=False))
    operator = OperatorProcess(sandbox.kubeconfig_path, tmp_path / "operator.log", peering=PEERING, priority=10)
    targets = {"powertrain-operator": [operator.metrics_port], "powertrain-agent": [a.port for a in agents]}
    honor = frozenset({"powertrain-agent"})
    with PrometheusServer(tmp_path / "prometheus", targets, [rules], honor) as prom, operator:
        try:
            run_scenario(prom, sandbox, kubectl, agents, operator)
        finally:
            print(operator.log_text()[-3000:])
            print(prom.log_text()[-2000:])


def run_scenario(
    prom: PrometheusServer, sandbox: Sandbox, kubectl: Kubectl, agents: list[ExportingAgent], op: OperatorProcess
) -> None:
    start = time.time()
    wait_for("Prometheus scraping the operator and both agents", lambda: prom.targets_up() == {
        "powertrain-operator": 1, "powertrain-agent": 2})  # fmt: skip
    kubectl.apply(POLICY)
    time.sleep(5)  # the policy's queues in a pass, then a few scrapes
    idle_problems = check_idle_stats(prom)
    assert not idle_problems, "\n".join(idle_problems)
    first, second = agents
    # GPUs break before the jobs come, so no gang is moved off them (a moved gang would wait again, and under
    # the enforced budget below it could not come back): the gangs are placed on the healthy ones.
    second.sim.fake.lose_gpu(LOST_GPU)  # falls off the bus: XID 79, GPU_IS_LOST, unhealthy
    first.sim.fake.push_xid(XID_GPU, XID)
    first.sim.fake.gpus[REMAP_GPU].remapped = (0, 1, 0, 1)  # one uncorrectable remap, and remapping failed

    def broken_gpus_reported() -> bool:
        unhealthy = set()
        for agent in agents:
            status = kubectl.json("get", "nodetelemetries", agent.node).get("status", {})
            unhealthy |= {(agent.node, g["index"]) for g in status.get("gpus", []) if not g.get("healthy", True)}
        return unhealthy >= {(second.node, LOST_GPU), (first.node, XID_GPU), (first.node, REMAP_GPU)}

    wait_for("the broken GPUs reported unhealthy", broken_gpus_reported, timeout=30)
    kubectl.apply(
        # Two workers on one node, so the gang has a slowest worker (and, below, a straggler).
        job("capped", replicas=2, gpus=2, mode="Required", cap=400, run_seconds=3600),
        job("idle", gpus=2, workload="idle", queue="research", run_seconds=3600),
        job("flaky", gpus=1, run_seconds=1, exit_code=1, backoff_limit=100),
    )
    wait_for(
        "capped and idle running",
        lambda: all(
            kubectl.json("get", "tj", j).get("status", {}).get("readyReplicas") == n
            for j, n in (("capped", 2), ("idle", 1))
        ),
        timeout=60,
    )
    capped_pods = kubectl.json("get", "pods", "-l", f"{JOB_NAME_LABEL}=capped")["items"]
    straggler = sorted(p["metadata"]["name"] for p in capped_pods)[1]
    kubectl("annotate", "pod", straggler, f"{WORKLOAD_ANNOTATION}=starved", "--overwrite")
    # Two 8-GPU gangs cannot fit beside the others (and one GPU is lost): this job waits.
    kubectl.apply(job("waiting", replicas=2, gpus=8))
    assert sandbox.server is not None
    sandbox.server.faults.configure(
        error_rate=1.0, codes=(500,), verbs={"patch"}, resources={"trainingjobs.powertrain.dev"}
    )
    time.sleep(4)
    sandbox.server.faults.clear()

    def restarted() -> bool:
        return int(kubectl.json("get", "tj", "flaky").get("status", {}).get("restarts") or 0) >= 3

    wait_for("the flaky gang restarted three times", restarted, timeout=120)
    kubectl.apply({**POLICY, "spec": UNHOLDABLE})

    def budget_exceeded() -> bool:
        conditions = kubectl.json("get", "clustertrainingpolicy", "default").get("status", {}).get("conditions", [])
        return any(c["type"] == "BudgetExceeded" and c["status"] == "True" for c in conditions)

    wait_for("the policy saying its budget cannot be held", budget_exceeded, timeout=60)

    def straggling() -> bool:
        conditions = kubectl.json("get", "tj", "capped").get("status", {}).get("conditions", [])
        return any(c["type"] == "Straggler" and c["status"] == "True" for c in conditions)

    wait_for("the capped gang's starved worker reported as a straggler", straggling, timeout=120)
    time.sleep(15)  # a few scrapes of everything, so rates and increases have two samples

    checked, problems = check_dashboards(prom, start)
    print(f"dashboard queries checked: {checked}, without data: {len(problems)}")
    assert not problems, "\n".join(problems)

    # The panels show what happened, not just some number.
    for expr in (
        "sum(powertrain_queue_pending_jobs)",  # the waiting job
        "sum(increase(powertrain_reconcile_errors_total[5m]))",  # the injected API errors
        "sum(increase(powertrain_gpu_xid_errors_total[5m]))",  # XIDs 79 and 48, each the first of its kind
        "sum(increase(powertrain_gang_restarts_total[5m]))",
        "count(powertrain_gpu_healthy == 0)",
        "max(powertrain_job_power_cap_watts)",
    ):
        (result,) = prom.api("query", query=expr)["result"]
        assert float(result["value"][1]) >= 1, f"{expr} = {result['value'][1]}"
    check_dcgm_names(prom, kubectl)

    scenario_alerts = {
        "PowertrainJobStuckWaiting",
        "PowertrainGangRestartingRepeatedly",
        "PowertrainPowerBudgetExceeded",
        "PowertrainGpuUnhealthy",
        "PowertrainGpuXidError",
        "PowertrainGpuRemappedRowFailure",
    }
    firing = wait_firing(prom, scenario_alerts)
    stuck = {a["training_job"] for a in firing["PowertrainJobStuckWaiting"]}
    assert "waiting" in stuck
    for name in stuck - {"waiting", "flaky"}:  # flaky waits between its restarts
        # A job that ran throughout never counts. One may, legitimately, if it was sent back to the queue (moved off
        # the GPU the scenario loses, say) and then waited, e.g. under the lowered budgets.
        status = kubectl.json("get", "tj", name).get("status", {})
        requeued = (status.get("restarts") or 0) + (status.get("moves") or 0) > 0
        assert status.get("phase") != "Running" or requeued, f"{name} ran throughout yet counts as stuck: {status}"
    assert {a["training_job"] for a in firing["PowertrainGangRestartingRepeatedly"]} == {"flaky"}
    assert {(a["node"], a["gpu"]) for a in firing["PowertrainGpuUnhealthy"]} >= {(second.node, str(LOST_GPU))}
    assert {(a["node"], a["gpu"], a["xid"]) for a in firing["PowertrainGpuXidError"]} >= {
        (first.node, str(XID_GPU), str(XID)), (second.node, str(LOST_GPU), "79")}  # fmt: skip
    assert {(a["node"], a["gpu"]) for a in firing["PowertrainGpuRemappedRowFailure"]} == {(first.node, str(REMAP_GPU))}
    assert {a.get("level") for a in firing["PowertrainPowerBudgetExceeded"]} & {"rack", None}
    fired = set(firing)

    first.stop()  # its node keeps its NodeTelemetry, but nothing scrapes an agent there any more
    firing = wait_firing(prom, {"PowertrainAgentNotReporting"})
    assert {a["node"] for a in firing["PowertrainAgentNotReporting"]} == {first.node}
    fired.add("PowertrainAgentNotReporting")

    # A live peer of higher priority pauses the operator: it stays up but no replica leads.
    peer = {"priority": 100, "lifetime": 3600, "lastseen": datetime.now(UTC).isoformat()}
    sandbox.api(
        "PATCH",
        f"/apis/kopf.dev/v1/clusterkopfpeerings/{PEERING}",
        {"status": {"e2e-higher-priority-peer": peer}},
        content_type="application/merge-patch+json",
    )
    wait_firing(prom, {"PowertrainOperatorNotLeading"})
    fired.add("PowertrainOperatorNotLeading")

    op.kill()
    wait_firing(prom, {"PowertrainOperatorAbsent"})
    fired.add("PowertrainOperatorAbsent")
    print(f"alerts fired: {len(fired)} of {len(alert_names())}: {sorted(fired)}")
    assert fired == set(alert_names())
