"""The Grafana dashboards: importable JSON with stable uids and a datasource variable, packaged as ConfigMaps,
and every PromQL query parses and uses only metrics (and labels) that Powertrain's exporters really export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from chart_helpers import CHART, by_kind, render
from dashboard_source import build_all

from powertrain import metrics as operator_metrics
from powertrain_agent import metrics as agent_metrics

DASHBOARDS = CHART / "dashboards"
FILES = sorted(DASHBOARDS.glob("*.json"))
EXPECTED_UIDS = {
    "cluster-overview.json": "powertrain-cluster",
    "power-energy.json": "powertrain-power",
    "job-view.json": "powertrain-job",
    "node-health.json": "powertrain-node-health",
}
# Values Grafana substitutes before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "6h", "$__interval": "30s"}


def exported_metrics() -> dict[str, frozenset[str]]:
    """Every series name the exporters expose → its labels (histograms expose _bucket/_sum/_count)."""
    out: dict[str, frozenset[str]] = {}
    for doc in operator_metrics.METRICS:
        labels = frozenset(doc.labels)
        if doc.kind == "histogram":
            out[f"{doc.name}_bucket"] = labels | {"le"}
            out[f"{doc.name}_sum"] = labels
            out[f"{doc.name}_count"] = labels
        else:
            out[doc.name] = labels
    for spec in agent_metrics.METRICS:
        out[spec.name] = frozenset(spec.labels)
    assert set(operator_metrics.metric_names()) <= {n.removesuffix("_bucket") for n in out} | set(out)
    assert set(agent_metrics.metric_names()) <= set(out)
    return out


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for p in dashboard["panels"]:
        panels.append(p)
        panels.extend(p.get("panels", []))
    return panels


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expr) for every panel target and every query variable."""
    found = [(f"panel '{p['title']}'", t["expr"]) for p in all_panels(dashboard) for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            found.append((f"variable ${var['name']}", var["query"]["query"]))
    return found


def to_promql(expr: str, variables: list[dict[str, Any]]) -> str:
    """Grafana → PromQL: built-in variables get typical values, dashboard variables a label value."""
    label_values = re.fullmatch(r"label_values\((.*),\s*\w+\)", expr)
    if label_values:  # a Grafana function over a series selector
        expr = label_values.group(1)
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    for var in variables:
        expr = expr.replace(f"${var['name']}", "some-value")
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def selectors(expr: str) -> list[Any]:
    found: list[Any] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def test_all_four_dashboards_ship() -> None:
    assert {p.name for p in FILES} == set(EXPECTED_UIDS)


def test_committed_json_is_what_the_source_builds() -> None:
    built = build_all()
    for path in FILES:
        assert path.read_text() == built[path.name], (
            f"regenerate with: python tests/chart/dashboard_source.py ({path.name})"
        )


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_dashboard_is_importable_on_its_own(path: Path) -> None:
    dashboard = load(path)
    assert dashboard["uid"] == EXPECTED_UIDS[path.name]  # stable: links and bookmarks survive re-imports
    assert dashboard["title"].startswith("Powertrain / ")
    assert "id" not in dashboard  # Grafana assigns ids; a fixed one would clash on import
    variables = dashboard["templating"]["list"]
    assert variables[0]["name"] == "datasource"
    assert variables[0]["type"] == "datasource"
    assert variables[0]["query"] == "prometheus"
    panels = all_panels(dashboard)
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        if p["type"] in ("row", "text"):
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"
        grid = p["gridPos"]
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 24


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_query_uses_only_exported_metrics_and_their_labels(path: Path) -> None:
    exported = exported_metrics()
    dashboard = load(path)
    problems = []
    for where, expr in queries(dashboard):
        promql = to_promql(expr, dashboard["templating"]["list"])
        try:
            found = selectors(promql)
        except Exception as exc:  # a parse error names the query; the test fails below
            problems.append(f"{where}: does not parse ({exc}): {promql}")
            continue
        if not found:
            problems.append(f"{where}: selects no metric: {promql}")
        for sel in found:
            if sel.name not in exported:
                problems.append(f"{where}: metric {sel.name} is not exported by the operator or the agent")
                continue
            for m in sel.matchers.matchers:
                if m.name not in exported[sel.name]:
                    problems.append(
                        f"{where}: {sel.name} has no label {m.name!r} (it has {sorted(exported[sel.name])})"
                    )
    assert not problems, "\n".join(problems)


def test_dashboards_cover_the_metrics_a_platform_team_needs() -> None:
    used = {
        sel.name
        for path in FILES
        for _, expr in queries(load(path))
        for sel in selectors(to_promql(expr, load(path)["templating"]["list"]))
    }
    must = {
        "powertrain_gpus_allocated",
        "powertrain_gpus_fragmented",
        "powertrain_gpu_sm_activity_percent",
        "powertrain_gpu_tensor_activity_percent",
        "powertrain_queue_pending_jobs",
        "powertrain_queue_wait_seconds_bucket",
        "powertrain_jobs",
        "powertrain_gpu_power_watts",
        "powertrain_gpu_power_limit_watts",
        "powertrain_gpu_energy_joules_total",
        "powertrain_gpu_clock_event_reason",
        "powertrain_network_receive_bytes_total",
        "powertrain_gpu_healthy",
        "powertrain_gpu_xid_errors_total",
        "powertrain_gpu_ecc_errors",
        "powertrain_gpu_temperature_celsius",
        "powertrain_node_domain_info",
        "powertrain_power_budget_watts",
        "powertrain_job_info",
        "powertrain_job_gang_restarts",
        "powertrain_job_resizes_total",
    }
    assert must <= used, f"not shown on any dashboard: {sorted(must - used)}"


def test_dashboards_are_packaged_as_sidecar_configmaps(helm_bin: Path) -> None:
    manifests = render(helm_bin, CHART / "ci" / "dashboards-values.yaml")
    configmaps = by_kind(manifests, "ConfigMap")
    assert len(configmaps) == len(FILES)
    shipped = {}
    for cm in configmaps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["namespace"] == "monitoring"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "Powertrain"}
        ((name, content),) = cm["data"].items()
        shipped[name] = json.loads(content)
    assert shipped == {p.name: load(p) for p in FILES}
    assert not by_kind(render(helm_bin), "ConfigMap")  # off by default
