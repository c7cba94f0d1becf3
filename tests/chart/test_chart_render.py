"""The chart renders with every shipped values file, and what it renders is valid, small and safe."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chart_helpers import (
    CHART,
    CI_VALUES,
    NAMESPACE,
    REPO,
    Manifest,
    by_kind,
    component,
    one,
    pod_spec,
    render,
    run_helm,
)

import powertrain
from powertrain.api import ClusterTrainingPolicy, parse
from powertrain.cli import build_parser

# The chart's kubeVersion floor (ValidatingAdmissionPolicy v1, node-bound service-account tokens) and the newest
# schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# Prometheus Operator kinds: their CRDs are not part of Kubernetes; their shape is checked in test_monitoring_*.
FOREIGN_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
VALUES_IDS = [p.name.removesuffix("-values.yaml") for p in CI_VALUES]


def test_chart_version_follows_the_project() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == powertrain.__version__
    assert chart["version"] == powertrain.__version__


@pytest.mark.parametrize("values", CI_VALUES, ids=VALUES_IDS)
def test_helm_lint_passes(helm_bin: Path, values: Path) -> None:
    result = run_helm(helm_bin, "lint", str(CHART), "--strict", "--namespace", NAMESPACE, "--values", str(values))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=VALUES_IDS)
def test_every_manifest_is_valid_kubernetes(helm_bin: Path, values: Path) -> None:
    manifests = render(helm_bin, values)
    assert manifests
    for m in manifests:
        name = f"{m['kind']}/{m['metadata']['name']}"
        if m["kind"] in FOREIGN_KINDS:
            continue
        if m["kind"] == "ClusterTrainingPolicy":
            parse(ClusterTrainingPolicy, m)  # the same rules the generated CRD enforces
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(m, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{values.name}: {name} is invalid for Kubernetes {version}: {exc.message} at {exc.path}")
        assert m["metadata"].get("namespace") in (None, NAMESPACE, "monitoring"), name


@pytest.mark.parametrize("values", CI_VALUES, ids=VALUES_IDS)
def test_sys_admin_never_comes_with_no_privilege_escalation(helm_bin: Path, values: Path) -> None:
    # The API server refuses that combination (the DaemonSet would never create a pod); schemas cannot see it.
    for workload in by_kind(render(helm_bin, values), "DaemonSet") + by_kind(render(helm_bin, values), "Deployment"):
        for c in pod_spec(workload)["containers"]:
            sc = c.get("securityContext", {})
            if "SYS_ADMIN" in sc.get("capabilities", {}).get("add", []):
                assert sc.get("allowPrivilegeEscalation") is not False


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("operator.replicas=two", "/operator/replicas"),
        ("agent.podAttribution=podResources", "/agent/podAttribution"),
        ("agent.acutator.enabled=false", "acutator"),
        ("agent.backend=cuda", "/agent/backend"),
        ("image.digest=latest", "/image/digest"),
        ("monitoring.serviceMonitor.interval=soon", "/monitoring/serviceMonitor/interval"),
        ("agent.metricsPort=70000", "/agent/metricsPort"),
        ("operator.resources.requests.memory=lots", "/operator/resources/requests/memory"),
        ("crds.install=maybe", "/crds/install"),
        ("agent.intervalSeconds=fast", "/agent/intervalSeconds"),
        ("agent.hostPID=maybe", "/agent/hostPID"),
        ("networkPolicy.egress.apiServer.cidrs={10.0.0.1}", "/networkPolicy/egress/apiServer/cidrs/0"),
        ("networkPolicy.egress.apiServer.ports={70000}", "/networkPolicy/egress/apiServer/ports/0"),
        ("networkPolicy.prometheus.namespaceSelector.name=monitoring", "/networkPolicy/prometheus/namespaceSelector"),
    ],
)
def test_values_schema_rejects_wrong_values(helm_bin: Path, setting: str, field: str) -> None:
    for command in ("template", "lint"):
        args = [command, "pt", str(CHART)] if command == "template" else [command, str(CHART)]
        set_flag = "--set-string" if setting.startswith("operator.replicas") else "--set"
        result = run_helm(helm_bin, *args, set_flag, setting)
        assert result.returncode != 0, f"helm {command} accepted {setting}"
        assert field in result.stdout + result.stderr, result.stdout + result.stderr


def _rules(manifests: list[Manifest], of: str) -> list[dict[str, Any]]:
    return [rule for role in by_kind(manifests, "ClusterRole") if component(role) == of for rule in role["rules"]]


def _grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


@pytest.mark.parametrize("values", CI_VALUES, ids=VALUES_IDS)
def test_rbac_has_no_wildcards_and_no_dangerous_verbs(helm_bin: Path, values: Path) -> None:
    manifests = render(helm_bin, values)
    for role in by_kind(manifests, "ClusterRole") + by_kind(manifests, "Role"):
        assert "aggregationRule" not in role
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert not any("*" in item for item in rule.get(key, [])), f"{role['metadata']['name']}: {rule}"
            assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])
            assert "secrets" not in rule["resources"], "nothing in Powertrain reads secrets"


def test_operator_may_touch_every_resource_its_client_uses(helm_bin: Path) -> None:
    from powertrain.controllers import kube

    grants = _grants(_rules(render(helm_bin), "operator"))
    resources = [v for v in vars(kube).values() if isinstance(v, kube.Resource)]
    assert resources
    cluster_scoped_peering_only = {"kopfpeerings"}  # the chart runs the operator cluster-wide
    for res in resources:
        if res.plural in cluster_scoped_peering_only:
            continue
        verbs = {v for g, r, v in grants if (g, r) == (res.group, res.plural)}
        assert verbs, f"the operator's client uses {res.group or 'core'}/{res.plural} but its ClusterRole has no rule"
    assert ("", "pods/binding", "create") in grants  # gangs are bound by the operator, not kube-scheduler
    assert ("powertrain.dev", "trainingjobs/status", "patch") in grants
    assert ("powertrain.dev", "nodetelemetries", "patch") in grants  # power-cap requests
    assert ("powertrain.dev", "nodetelemetries", "create") in grants  # ...also before a node's agent reported
    assert ("kopf.dev", "clusterkopfpeerings", "create") in grants  # the operator creates its peering object
    assert not {v for g, r, v in grants if r in ("nodes", "clustertrainingpolicies")} - {"get", "list", "watch"}


def test_agent_writes_only_node_telemetry(helm_bin: Path) -> None:
    grants = _grants(_rules(render(helm_bin), "agent"))
    writes = {(g, r) for g, r, v in grants if v not in ("get", "list", "watch")}
    assert writes == {("powertrain.dev", "nodetelemetries"), ("powertrain.dev", "nodetelemetries/status")}
    assert ("powertrain.dev", "nodetelemetries", "delete") not in grants
    assert {(r, v) for g, r, v in grants if g == ""} <= {
        ("pods", "get"),
        ("pods", "list"),
        ("pods", "watch"),
        ("nodes", "get"),
    }


def _container(workload: Manifest) -> dict[str, Any]:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1
    c: dict[str, Any] = containers[0]
    return c


def test_operator_runs_unprivileged(helm_bin: Path) -> None:
    deployment = one(render(helm_bin), "Deployment", "operator")
    pod = pod_spec(deployment)
    c = _container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 10000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert not pod.get("hostPID")
    assert not pod.get("hostNetwork")
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"]["requests"]["cpu"]
    assert c["resources"]["requests"]["memory"]


def test_agent_with_actuator_gets_only_sys_admin(helm_bin: Path) -> None:
    ds = one(render(helm_bin), "DaemonSet", "agent")
    pod, c = pod_spec(ds), _container(ds)
    sc = c["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert "privileged" not in sc
    assert pod["securityContext"]["runAsUser"] == 0  # NVML's power-limit call needs root
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["hostPID"] is True  # default attribution: NVML's host PIDs → /proc/PID/cgroup
    assert pod["hostNetwork"] is False
    assert "--dry-run-power" not in c["args"]
    assert [m["mountPath"] for m in c["volumeMounts"]] == ["/tmp", "/var/lib/kubelet/pod-resources", "/host/cgroup"]
    assert all(m.get("readOnly") for m in c["volumeMounts"] if m["mountPath"] != "/tmp")
    assert {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v} == {
        "/var/lib/kubelet/pod-resources",
        "/sys/fs/cgroup",
    }
    assert "--pod-resources-socket=/var/lib/kubelet/pod-resources/kubelet.sock" in c["args"]
    assert "--cgroup-root=/host/cgroup" in c["args"]


def test_pod_resources_and_storage_io_mounts_are_opt_out(helm_bin: Path) -> None:
    ds = one(render(helm_bin, None, "agent.podResources=false", "agent.podStorageIO=false"), "DaemonSet", "agent")
    pod, c = pod_spec(ds), _container(ds)
    assert all("hostPath" not in v for v in pod["volumes"])
    assert "--pod-resources-socket=none" in c["args"]  # the agent never asks the kubelet: cgroup attribution


def test_read_only_agent_has_no_privileges_at_all(helm_bin: Path) -> None:
    ds = one(render(helm_bin, CHART / "ci" / "actuator-off-values.yaml"), "DaemonSet", "agent")
    pod, c = pod_spec(ds), _container(ds)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 10000
    assert c["securityContext"] == {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["hostPID"] is False
    assert pod["hostNetwork"] is False
    # The one host path: the kubelet's pod-resources socket, read-only, which attributes GPUs without hostPID.
    assert [v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v] == ["/var/lib/kubelet/pod-resources"]
    assert all(m.get("readOnly") for m in c["volumeMounts"] if m["mountPath"] != "/tmp")
    assert "--dry-run-power" in c["args"]  # it still computes and logs caps, never sets them


def test_procfs_attribution_uses_host_pid_without_root(helm_bin: Path) -> None:
    ds = one(render(helm_bin, CHART / "ci" / "procfs-values.yaml"), "DaemonSet", "agent")
    pod = pod_spec(ds)
    assert pod["hostPID"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "CKV_K8S_17" in " ".join(ds["metadata"]["annotations"].values())  # the why is on the object


def test_host_network_is_opt_in(helm_bin: Path) -> None:
    ds = one(render(helm_bin, None, "agent.hostNetwork=true"), "DaemonSet", "agent")
    assert pod_spec(ds)["hostNetwork"] is True
    assert pod_spec(ds)["dnsPolicy"] == "ClusterFirstWithHostNet"  # still resolves the API server's Service


def test_agent_runs_on_gpu_nodes_without_taking_a_gpu(helm_bin: Path) -> None:
    ds = one(render(helm_bin), "DaemonSet", "agent")
    pod, c = pod_spec(ds), _container(ds)
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["runtimeClassName"] == "nvidia"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    for section in ("requests", "limits"):
        assert "nvidia.com/gpu" not in c["resources"].get(section, {})
    assert "--node-name=$(NODE_NAME)" in c["args"]


def test_operator_command_line_is_accepted_by_the_cli(helm_bin: Path) -> None:
    for values in CI_VALUES:
        manifests = render(helm_bin, values)
        for deployment in by_kind(manifests, "Deployment"):
            parsed = build_parser().parse_args(_container(deployment)["args"])
            assert parsed.command == "operator"
            assert parsed.peering
            assert parsed.metrics_port
            assert parsed.liveness_port
            ports = {p["name"]: p["containerPort"] for p in _container(deployment)["ports"]}
            assert ports == {"metrics": parsed.metrics_port, "health": parsed.liveness_port}


def test_agent_command_line_is_accepted_by_the_cli(helm_bin: Path) -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["agent"]  # type: ignore[union-attr]
    if not any(a.option_strings for a in sub._actions if a.dest != "help"):
        pytest.skip("`powertrain agent` takes no options yet (the agent CLI is not built)")
    for values in CI_VALUES:
        for ds in by_kind(render(helm_bin, values), "DaemonSet"):
            args = [a.replace("$(NODE_NAME)", "gpu-node-1") for a in _container(ds)["args"]]
            parsed = parser.parse_args(args)
            assert parsed.command == "agent"


def test_two_replicas_are_spread_and_protected(helm_bin: Path) -> None:
    manifests = render(helm_bin)
    deployment = one(manifests, "Deployment", "operator")
    assert deployment["spec"]["replicas"] == 2
    anti = pod_spec(deployment)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    pdb = one(manifests, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert not by_kind(render(helm_bin, None, "operator.replicas=1"), "PodDisruptionBudget")


def _crd_docs(directory: Path) -> dict[str, Manifest]:
    docs = (yaml.safe_load(p.read_text()) for p in sorted(directory.glob("*.yaml")))
    return {d["metadata"]["name"]: d for d in docs}


def test_chart_crds_are_the_generated_ones(helm_bin: Path) -> None:
    # files/crds is a symlink to crds/: there is no second copy that could drift.
    assert (CHART / "files" / "crds").resolve() == (REPO / "crds").resolve()
    generated = _crd_docs(REPO / "crds")
    rendered = {m["metadata"]["name"]: m for m in by_kind(render(helm_bin), "CustomResourceDefinition")}
    ours = {name: crd for name, crd in rendered.items() if crd["spec"]["group"] == "powertrain.dev"}
    assert set(ours) == set(generated)
    for name, crd in ours.items():
        annotations = dict(crd["metadata"]["annotations"])
        assert annotations.pop("helm.sh/resource-policy") == "keep"  # uninstall never deletes users' jobs
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        stripped = {**crd, "metadata": {**crd["metadata"], "annotations": annotations}}
        del stripped["metadata"]["labels"]
        assert stripped == generated[name], f"{name} differs from crds/"
    kopf = {name for name, crd in rendered.items() if crd["spec"]["group"] == "kopf.dev"}
    assert kopf == {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}


def test_crd_switches(helm_bin: Path) -> None:
    assert not by_kind(render(helm_bin, None, "crds.install=false"), "CustomResourceDefinition")
    for crd in by_kind(render(helm_bin, None, "crds.keep=false"), "CustomResourceDefinition"):
        assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})


def test_packaged_chart_carries_the_generated_crds(helm_bin: Path, tmp_path: Path) -> None:
    result = run_helm(helm_bin, "package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("powertrain-*.tgz")
    with tarfile.open(archive) as tgz:
        names = tgz.getnames()
        for crd in sorted((REPO / "crds").glob("*.yaml")):
            member = tgz.extractfile(f"powertrain/files/crds/{crd.name}")
            assert member is not None
            assert member.read() == crd.read_bytes()
    assert not [n for n in names if n.startswith("powertrain/ci/") or n.endswith(".png")]
    assert "powertrain/values.schema.json" in names


def test_default_policy_is_a_valid_post_install_hook(helm_bin: Path) -> None:
    policy = one(render(helm_bin), "ClusterTrainingPolicy")
    assert policy["metadata"]["name"] == "default"
    assert policy["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    parsed = parse(ClusterTrainingPolicy, policy)
    assert [q.name for q in parsed.spec.queues] == ["default"]
    assert not by_kind(render(helm_bin, None, "policy.create=false"), "ClusterTrainingPolicy")


def test_monitoring_objects_select_what_the_chart_serves(helm_bin: Path) -> None:
    manifests = render(helm_bin, CHART / "ci" / "monitoring-values.yaml")
    services = by_kind(manifests, "Service")
    for monitor in by_kind(manifests, "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        assert len(matched) == 1, monitor["metadata"]["name"]
        port_names = {p["name"] for p in matched[0]["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= port_names
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    pod_monitor = one(manifests, "PodMonitor")
    ds = one(manifests, "DaemonSet", "agent")
    assert (
        pod_monitor["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    )
    assert not by_kind(render(helm_bin), "ServiceMonitor")
    assert not by_kind(render(helm_bin), "PodMonitor")


def test_network_policies_admit_only_the_metrics_port(helm_bin: Path) -> None:
    manifests = render(helm_bin)
    for policy in by_kind(manifests, "NetworkPolicy"):
        workload = one(manifests, "Deployment" if component(policy) == "operator" else "DaemonSet", component(policy))
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        served = {p["name"] for p in _container(workload)["ports"]}
        allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        # The operator's health port is probed by the kubelet, from the node, which NetworkPolicy always admits.
        assert allowed == {"metrics"} <= served


def test_notes_tell_the_user_what_to_do_next(helm_bin: Path) -> None:
    result = run_helm(helm_bin, "install", "pt", str(CHART), "--dry-run=client", "--namespace", NAMESPACE)
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "kubectl get tj" in notes
    assert re.search(r"pod-security\.kubernetes\.io/enforce=privileged", notes)
    read_only = CHART / "ci" / "actuator-off-values.yaml"
    off = run_helm(helm_bin, "install", "pt", str(CHART), "--dry-run=client", "--values", str(read_only))
    assert "Power capping is OFF" in off.stdout
    assert "privileged" not in off.stdout.split("NOTES:", 1)[1]  # nothing to loosen for a read-only agent
