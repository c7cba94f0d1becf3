"""What the chart promises about the agent's privileges and both components' network reach, checked on the
rendered manifests: privileges only with the actuator, hostPID only for procfs attribution, ingress only from
Prometheus, egress only to the API server and DNS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from chart_helpers import CHART, CI_VALUES, Manifest, by_kind, component, one, pod_spec, render, run_helm

VALUES_IDS = [p.name.removesuffix("-values.yaml") for p in CI_VALUES]


def _policies(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {str(component(p)): p for p in by_kind(manifests, "NetworkPolicy")}


def _valid(manifests: list[Manifest]) -> None:
    for m in manifests:
        if m["kind"] in ("NetworkPolicy", "DaemonSet"):
            kubernetes_validate.validate(m, "1.30.0", strict=True)


@pytest.mark.parametrize("values", CI_VALUES, ids=VALUES_IDS)
def test_root_and_sys_admin_only_with_the_actuator_and_no_escalation_without_it(helm_bin: Path, values: Path) -> None:
    import yaml

    actuator = (yaml.safe_load(values.read_text()) or {}).get("agent", {}).get("actuator", {}).get("enabled", True)
    for workload in by_kind(render(helm_bin, values), "DaemonSet") + by_kind(render(helm_bin, values), "Deployment"):
        pod = pod_spec(workload)
        (c,) = pod["containers"]
        sc = c["securityContext"]
        added = sc["capabilities"].get("add", [])
        root = pod["securityContext"]["runAsUser"] == 0
        privileged = component(workload) == "agent" and actuator
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert (root, added) == ((True, ["SYS_ADMIN"]) if privileged else (False, [])), workload["metadata"]["name"]
        assert "privileged" not in sc
        if not added:
            # no_new_privs: nothing in the container can gain privileges through a setuid or file-capability binary.
            assert sc["allowPrivilegeEscalation"] is False


def test_host_pid_is_a_value_needed_only_by_procfs_attribution(helm_bin: Path) -> None:
    def agent(*sets: str) -> Manifest:
        return one(render(helm_bin, None, *sets), "DaemonSet", "agent")

    default = agent()
    assert pod_spec(default)["hostPID"] is True
    assert "CKV_K8S_17" in " ".join(default["metadata"]["annotations"].values())
    for sets in (("agent.podAttribution=none",), ("agent.podAttribution=none", "agent.hostPID=false")):
        ds = agent(*sets)
        assert pod_spec(ds)["hostPID"] is False
        assert "CKV_K8S_17" not in " ".join(ds["metadata"]["annotations"].values())
    # procfs attribution without hostPID would silently attribute nothing: refused with the way out.
    result = run_helm(helm_bin, "template", "pt", str(CHART), "--set", "agent.hostPID=false")
    assert result.returncode != 0
    assert "agent.podAttribution=procfs needs agent.hostPID=true" in result.stderr
    assert "agent.podAttribution=none" in result.stderr


def test_only_prometheus_may_scrape_and_its_namespace_and_labels_are_values(helm_bin: Path) -> None:
    prometheus = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    for policy in _policies(render(helm_bin)).values():
        (rule,) = policy["spec"]["ingress"]
        assert rule["from"] == [prometheus]  # one peer: that namespace AND those pods
    custom = render(
        helm_bin,
        None,
        "networkPolicy.prometheus.namespaceSelector.matchLabels.team=observability",
        "networkPolicy.prometheus.podSelector.matchLabels.app=vmagent",
        "networkPolicy.metricsFrom[0].ipBlock.cidr=10.9.0.0/16",
    )
    _valid(custom)
    for policy in _policies(custom).values():
        (rule,) = policy["spec"]["ingress"]
        assert rule["from"] == [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "monitoring", "team": "observability"}
                },
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus", "app": "vmagent"}},
            },
            {"ipBlock": {"cidr": "10.9.0.0/16"}},
        ]
    anyone = render(
        helm_bin, None, "networkPolicy.prometheus.namespaceSelector=null", "networkPolicy.prometheus.podSelector=null"
    )
    for policy in _policies(anyone).values():
        (rule,) = policy["spec"]["ingress"]
        assert "from" not in rule  # asked for explicitly


def _egress_ports(rule: dict[str, Any]) -> set[tuple[int, str]]:
    return {(p["port"], p["protocol"]) for p in rule["ports"]}


def test_egress_reaches_only_the_api_server_and_dns(helm_bin: Path) -> None:
    policies = _policies(render(helm_bin))
    assert set(policies) == {"operator", "agent"}
    for policy in policies.values():
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        api, dns = policy["spec"]["egress"]
        assert _egress_ports(api) == {(443, "TCP"), (6443, "TCP")}
        assert "to" not in api  # the API server's address is the installer's to give (next test)
        assert _egress_ports(dns) == {(53, "UDP"), (53, "TCP")}
        assert dns["to"] == [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ]


def test_the_api_server_address_and_port_are_values(helm_bin: Path) -> None:
    manifests = render(
        helm_bin,
        None,
        "networkPolicy.egress.apiServer.cidrs={10.0.0.10/32,10.0.0.11/32}",
        "networkPolicy.egress.apiServer.ports={8443}",
    )
    _valid(manifests)
    for policy in _policies(manifests).values():
        api, _dns = policy["spec"]["egress"]
        assert api["to"] == [{"ipBlock": {"cidr": "10.0.0.10/32"}}, {"ipBlock": {"cidr": "10.0.0.11/32"}}]
        assert _egress_ports(api) == {(8443, "TCP")}
    for policy in _policies(render(helm_bin, None, "networkPolicy.egress.enabled=false")).values():
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        assert "egress" not in policy["spec"]
    assert not by_kind(render(helm_bin, None, "networkPolicy.enabled=false"), "NetworkPolicy")
