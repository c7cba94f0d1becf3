"""Prometheus Operator objects of the chart: ServiceMonitor/PodMonitor options as kube-prometheus-stack charts
name them, and the opt-in PrometheusRule built from the chart's one rule file (alerts/powertrain-alerts.yaml),
which promtool accepts as it is and as rendered. e2e/test_prometheus.py makes every alert fire."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_helpers import CHART, by_kind, one, render, run_helm

RULES = CHART / "alerts" / "powertrain-alerts.yaml"
MONITORING = CHART / "ci" / "monitoring-values.yaml"


def source_rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed: apt-get install -y --no-install-recommends prometheus"
        if os.environ.get("POWERTRAIN_CI") or os.environ.get("CI"):
            pytest.fail(f"{message} (CI must run this test: .ci/run installs it)")
        pytest.skip(message)
    return found


def check_rules(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def test_the_rule_file_passes_promtool_and_covers_what_a_platform_team_needs() -> None:
    result = check_rules(RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    names = {r["alert"] for r in source_rules()}
    assert names == {
        "PowertrainOperatorAbsent",
        "PowertrainOperatorNotLeading",
        "PowertrainJobStuckWaiting",
        "PowertrainGangRestartingRepeatedly",
        "PowertrainPowerBudgetExceeded",
        "PowertrainAgentNotReporting",
        "PowertrainGpuUnhealthy",
        "PowertrainGpuXidError",
        "PowertrainGpuRemappedRowFailure",
    }
    for rule in source_rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]


def test_prometheus_rule_is_opt_in_and_ships_the_rule_file_with_the_values_overrides(
    helm_bin: Path, tmp_path: Path
) -> None:
    assert not by_kind(render(helm_bin), "PrometheusRule")
    rule = one(render(helm_bin, MONITORING), "PrometheusRule")
    values = yaml.safe_load(MONITORING.read_text())["prometheusRule"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rendered = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    expected = {r["alert"]: r for r in source_rules() if r["alert"] not in values["disabled"]}
    assert rendered.keys() == expected.keys()
    for name, source in expected.items():
        got = rendered[name]
        assert got["expr"] == source["expr"]
        assert got["annotations"] == source["annotations"]  # {{ $labels }} left for Prometheus, not Helm
        assert got["for"] == values["for"].get(name, source["for"])
        assert got["labels"] == source["labels"] | values["ruleLabels"]
    # What the chart renders is itself a valid rule file.
    (tmp_path / "rendered.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = check_rules(tmp_path / "rendered.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    # With no overrides, the rule object carries the file unchanged.
    plain = one(render(helm_bin, None, "prometheusRule.enabled=true"), "PrometheusRule")
    assert plain["spec"] == yaml.safe_load(RULES.read_text())


def test_values_schema_knows_every_alert_and_refuses_unknown_ones(helm_bin: Path) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["prometheusRule"]["properties"]
    names = sorted(r["alert"] for r in source_rules())
    assert sorted(schema["for"]["propertyNames"]["enum"]) == names
    assert sorted(schema["disabled"]["items"]["enum"]) == names
    for bad, where in (
        ("prometheusRule.for.PowertrainTypo=5m", "PowertrainTypo"),
        ("prometheusRule.for.PowertrainGpuUnhealthy=soon", "prometheusRule/for/PowertrainGpuUnhealthy"),
    ):
        result = run_helm(helm_bin, "template", "pt", str(CHART), "--set", bad)
        assert result.returncode != 0
        assert where in result.stderr, result.stderr


def test_monitors_carry_honor_labels_relabelings_and_additional_labels(helm_bin: Path, tmp_path: Path) -> None:
    manifests = render(helm_bin, MONITORING)
    values = yaml.safe_load(MONITORING.read_text())["monitoring"]
    pod_monitor = one(manifests, "PodMonitor")
    (endpoint,) = pod_monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["honorLabels"] is True
    assert endpoint["relabelings"] == values["podMonitor"]["relabelings"]
    assert endpoint["metricRelabelings"] == values["podMonitor"]["metricRelabelings"]
    for monitor in by_kind(manifests, "ServiceMonitor"):
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["honorLabels"] is False
        assert "relabelings" not in endpoint
        assert "metricRelabelings" not in endpoint
    relabel = {"sourceLabels": ["__name__"], "regex": "powertrain_gpu_pcie_.*", "action": "drop"}
    service_monitor = {"enabled": True, "honorLabels": True, "metricRelabelings": [relabel]}
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump({"monitoring": {"serviceMonitor": service_monitor}}))
    for monitor in by_kind(render(helm_bin, values_file), "ServiceMonitor"):
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["honorLabels"] is True
        assert endpoint["metricRelabelings"] == [relabel]


def test_dcgm_compat_passes_the_flag_and_honours_the_dcgm_pod_labels(helm_bin: Path) -> None:
    off = one(render(helm_bin), "DaemonSet", "agent")
    assert "--dcgm-compat" not in off["spec"]["template"]["spec"]["containers"][0]["args"]
    sets = ("agent.dcgmCompat=true", "monitoring.serviceMonitor.enabled=true", "monitoring.podMonitor.enabled=true")
    manifests = render(helm_bin, None, *sets)
    ds = one(manifests, "DaemonSet", "agent")
    assert "--dcgm-compat" in ds["spec"]["template"]["spec"]["containers"][0]["args"]
    # Without honorLabels Prometheus would rename DCGM's pod/namespace labels to exported_pod/exported_namespace.
    (endpoint,) = one(manifests, "PodMonitor")["spec"]["podMetricsEndpoints"]
    assert endpoint["honorLabels"] is True
    assert one(manifests, "ServiceMonitor", "agent")["spec"]["endpoints"][0]["honorLabels"] is True
    assert one(manifests, "ServiceMonitor", "operator")["spec"]["endpoints"][0]["honorLabels"] is False
