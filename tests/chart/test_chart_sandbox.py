"""`helm install` of the repository's chart on the sandbox, as a platform team would install it on a cluster.

The sandbox serves apps/v1, RBAC and admission policies and enforces them for service-account tokens; its
Deployment, ReplicaSet and DaemonSet controllers create the pods, the default scheduler binds them, and the
simulated kubelet runs pods of Powertrain's own image as real processes with their projected, node-bound
service-account tokens (powertrain.sandbox.process_runner). So the operator and the agents here reach the API
server exactly as in a cluster: in-cluster config, their chart ServiceAccounts, the chart's ClusterRoles, and
the agents' ValidatingAdmissionPolicy evaluated on every NodeTelemetry write.

The tests run in order on one module-scoped release: install → a TrainingJob from examples/ → the chart's
security claims (RBAC denials, the admission policy) → a missing verb surfaces as a 403 → upgrade → uninstall.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_tools import ToolUnavailable, kubectl

from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.testing import FAST_KUBELET, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "powertrain"
NS = "powertrain-system"
RELEASE = "pt"
OPERATOR_SA = f"system:serviceaccount:{NS}:{RELEASE}-powertrain-operator"
AGENT_SA = f"system:serviceaccount:{NS}:{RELEASE}-powertrain-agent"
# A test cluster: simulated GPUs and fast reports; everything else is the chart's default.
VALUES = (
    "agent.backend=sim",
    "agent.intervalSeconds=0.5",
    "agent.extraArgs={--report-min-interval=1,--report-max-interval=2}",
)


class Cluster:
    def __init__(self, sb: Sandbox, helm_bin: Path, kubectl_bin: Path, home: Path) -> None:
        self.sb = sb
        self.helm_bin = helm_bin
        self.kubectl_bin = kubectl_bin
        self.env = {**os.environ, "KUBECONFIG": str(sb.kubeconfig_path), "HOME": str(home)}
        self.installed_at = 0.0

    def run(self, binary: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binary), *args], input=stdin, capture_output=True, text=True, env=self.env, timeout=180, check=False
        )

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(self.kubectl_bin, *args, stdin=stdin)

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.helm_bin, *args)

    def get(self, *args: str) -> Any:
        out = self.kubectl("get", *args, "-o", "json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def pods(self, component: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("pods", "-n", NS, "-l", f"app.kubernetes.io/component={component}")[
            "items"
        ]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def logs(self, pod: str) -> str:
        return self.kubectl("logs", "-n", NS, pod).stdout

    def job_phase(self, name: str) -> str | None:
        out = self.kubectl("get", "tj", name, "-n", "default", "-o", "jsonpath={.status.phase}")
        return out.stdout if out.stdout in ("Succeeded", "Failed") else None

    def token(self, service_account: str, pod: dict[str, Any] | None = None) -> str:
        """A token the way the kubelet gets one for a pod (bound to it, so it carries the pod's node)."""
        spec: dict[str, Any] = {"expirationSeconds": 3600}
        if pod is not None:
            spec["boundObjectRef"] = {"kind": "Pod", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
        path = f"/api/v1/namespaces/{NS}/serviceaccounts/{service_account}/token"
        return str(self.sb.api("POST", path, {"spec": spec})["status"]["token"])

    def as_token(self, token: str, method: str, path: str, body: Any = None, ctype: str = "application/json") -> Any:
        """One request with another credential than the admin's (urllib: no client-side caching or retries)."""
        import ssl

        ctx = ssl.create_default_context(cadata=self.sb.ca_pem.decode())
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.sb.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token}")
        req.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as rsp:
                return rsp.status, json.loads(rsp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


def log_messages(text: str) -> list[str]:
    """The operator logs one JSON object per line (the chart's default logFormat)."""
    out = []
    for line in text.splitlines():
        try:
            out.append(str(json.loads(line).get("message", "")))
        except (ValueError, AttributeError):
            out.append(line)
    return out


def leader_gauge(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as rsp:
        text = rsp.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("powertrain_leader "))


@pytest.fixture(scope="module")
def cluster(helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        kubectl_bin = kubectl()
    except ToolUnavailable as exc:
        pytest.skip(f"kubectl could not be downloaded: {exc}")
    config = SandboxConfig(nodes=2, gpus_per_node=8, kubelet=FAST_KUBELET, apply_crds=False)
    with Sandbox(config) as sb:
        yield Cluster(sb, helm_bin, kubectl_bin, tmp_path_factory.mktemp("helm-home"))


def install_args(*extra: str) -> list[str]:
    sets = [a for v in VALUES for a in ("--set", v)]
    return [RELEASE, str(CHART), "-n", NS, *sets, "--wait", "--timeout", "120s", *extra]


def test_helm_install_starts_the_operator_and_one_agent_per_gpu_node(cluster: Cluster) -> None:
    cluster.installed_at = time.monotonic()
    out = cluster.helm("install", *install_args("--create-namespace"))
    assert out.returncode == 0, out.stderr

    deployment = cluster.get("deployment", "-n", NS, f"{RELEASE}-powertrain-operator")
    assert deployment["status"]["availableReplicas"] == deployment["spec"]["replicas"] == 2
    operators = cluster.pods("operator")
    agents = cluster.pods("agent")
    assert len(operators) == 2
    assert sorted(p["spec"]["nodeName"] for p in agents) == cluster.sb.node_names  # every sandbox node has GPUs
    runner = cluster.sb.runner
    assert runner is not None
    for pod in operators + agents:
        assert runner.has(pod["metadata"]["uid"]), f"{pod['metadata']['name']} is not a real process"
        assert pod["spec"]["serviceAccountName"] in (OPERATOR_SA.rsplit(":", 1)[1], AGENT_SA.rsplit(":", 1)[1])

    # Every agent reports its own node's NodeTelemetry, with its node-bound token through the admission policy.
    def telemetry() -> list[str] | None:
        items = cluster.get("nodetelemetries")["items"]
        names = sorted(i["metadata"]["name"] for i in items if (i.get("status") or {}).get("gpus"))
        return names if names == cluster.sb.node_names else None

    wait_for(telemetry, timeout=60, what="NodeTelemetry from every agent")

    # The replicas agree on one leader through the chart's ClusterKopfPeering.
    ports = [runner.port(NS, p["metadata"]["name"], "metrics") for p in operators]
    assert all(ports)

    def one_leader() -> list[float] | None:
        try:
            gauges = sorted(leader_gauge(int(p or 0)) for p in ports)
        except OSError:
            return None
        return gauges if gauges == [0.0, 1.0] else None

    wait_for(one_leader, timeout=60, what="exactly one operator replica leading")
    (peering,) = cluster.get("clusterkopfpeering")["items"]
    assert len(peering.get("status") or {}) == 2


def test_a_training_job_from_examples_runs_to_succeeded(cluster: Cluster) -> None:
    out = cluster.kubectl("apply", "-f", str(REPO / "examples" / "resnet-finetune.yaml"))
    assert out.returncode == 0, out.stderr
    assert wait_for(lambda: cluster.job_phase("resnet-finetune"), timeout=120, what="resnet-finetune") == "Succeeded"
    print(f"helm install → first TrainingJob Succeeded in {time.monotonic() - cluster.installed_at:.1f} s")
    for pod in cluster.pods("operator") + cluster.pods("agent"):
        text = cluster.logs(pod["metadata"]["name"])
        assert "Forbidden" not in text, text[-3000:]


def test_the_operator_cannot_read_secrets(cluster: Cluster) -> None:
    token = cluster.token(OPERATOR_SA.rsplit(":", 1)[1])
    code, status = cluster.as_token(token, "GET", "/api/v1/namespaces/default/secrets")
    assert code == 403
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        f'secrets is forbidden: User "{OPERATOR_SA}" cannot list resource "secrets" in API group "" '
        'in the namespace "default"'
    )
    # The admin asks on the operator's behalf, as a platform team would audit the chart.
    can = cluster.kubectl("auth", "can-i", "get", "secrets", "-n", "default", f"--as={OPERATOR_SA}")
    assert can.stdout.strip() == "no"
    can = cluster.kubectl("auth", "can-i", "patch", "trainingjobs.powertrain.dev/status", "-A", f"--as={OPERATOR_SA}")
    assert can.stdout.strip() == "yes", can.stderr


def test_an_agent_cannot_write_another_nodes_telemetry(cluster: Cluster) -> None:
    agent = next(p for p in cluster.pods("agent") if p["spec"]["nodeName"] == cluster.sb.node_names[0])
    other = cluster.sb.node_names[1]
    token = cluster.token(AGENT_SA.rsplit(":", 1)[1], agent)
    path = f"/apis/powertrain.dev/v1alpha1/nodetelemetries/{other}/status"
    patch = {"status": {"backend": "forged"}}
    code, status = cluster.as_token(token, "PATCH", path, patch, "application/merge-patch+json")
    assert code == 403, status
    assert "an agent may write only its own node's NodeTelemetry" in status["message"]
    assert f"the token is bound to node {cluster.sb.node_names[0]}" in status["message"]
    # Its own node's status it may write; the spec (power caps) it may not.
    own = f"/apis/powertrain.dev/v1alpha1/nodetelemetries/{cluster.sb.node_names[0]}"
    code, _ = cluster.as_token(token, "PATCH", own + "/status", {"status": {}}, "application/merge-patch+json")
    assert code == 200
    code, status = cluster.as_token(
        token, "PATCH", own, {"spec": {"powerLimits": [{"gpu": 0, "watts": 300}]}}, "application/merge-patch+json"
    )
    assert code in (403, 422), status
    # A token without the node claim (not bound to a pod) is refused too.
    unbound = cluster.token(AGENT_SA.rsplit(":", 1)[1])
    code, status = cluster.as_token(unbound, "PATCH", own + "/status", {"status": {}}, "application/merge-patch+json")
    assert code == 403
    assert "carries no node claim" in status["message"]


def test_a_verb_missing_from_the_operators_cluster_role_fails_that_action_with_403(cluster: Cluster) -> None:
    role = f"{RELEASE}-powertrain-operator"
    original = cluster.get("clusterrole", role)
    rules = original["rules"]
    pods_rule = next(r for r in rules if r.get("resources") == ["pods/binding"])
    cut = [r for r in rules if r is not pods_rule]
    out = cluster.kubectl("patch", "clusterrole", role, "--type=merge", "-p", json.dumps({"rules": cut}))
    assert out.returncode == 0, out.stderr
    try:
        job = yaml.safe_load((REPO / "examples" / "resnet-finetune.yaml").read_text())
        job["metadata"]["name"] = "needs-binding"
        assert cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(job)).returncode == 0
        denial = (
            f'User "{OPERATOR_SA}" cannot create resource "pods/binding" in API group "" in the namespace "default"'
        )

        def logged() -> str | None:
            for pod in cluster.pods("operator"):
                for message in log_messages(cluster.logs(pod["metadata"]["name"])):
                    if "needs-binding" in message and denial in message:
                        return message
            return None

        message = wait_for(logged, timeout=60, what="the operator's 403 on pods/binding")
        assert "403 Forbidden" in message
        assert cluster.job_phase("needs-binding") is None
    finally:
        restored = cluster.kubectl("patch", "clusterrole", role, "--type=merge", "-p", json.dumps({"rules": rules}))
        assert restored.returncode == 0, restored.stderr
    assert wait_for(lambda: cluster.job_phase("needs-binding"), timeout=120, what="needs-binding") == "Succeeded"


def test_helm_upgrade_rolls_the_operator_without_losing_a_job(cluster: Cluster) -> None:
    # The example again, running long enough to span the upgrade.
    job = yaml.safe_load((REPO / "examples" / "resnet-finetune.yaml").read_text())
    job["metadata"]["name"] = "across-upgrade"
    job["spec"]["template"]["metadata"]["annotations"]["sandbox.powertrain.dev/run-seconds"] = "20"
    assert cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(job)).returncode == 0

    def running() -> bool | None:
        out = cluster.kubectl("get", "tj", "across-upgrade", "-n", "default", "-o", "jsonpath={.status.phase}")
        return out.stdout == "Running" or None

    wait_for(running, timeout=60, what="across-upgrade to run")
    before = {p["metadata"]["name"] for p in cluster.pods("operator")}
    out = cluster.helm("upgrade", *install_args("--set", "operator.logFormat=text"))
    assert out.returncode == 0, out.stderr

    def rolled() -> set[str] | None:
        rs = cluster.get("replicasets", "-n", NS, "-l", "app.kubernetes.io/component=operator")["items"]
        # The old ReplicaSet stays as history, scaled to zero; two new pods replace the old two.
        if sorted(r["spec"]["replicas"] for r in rs) != [0, 2]:
            return None
        after = {p["metadata"]["name"] for p in cluster.pods("operator")}
        return after if len(after) == 2 and not after & before else None

    wait_for(rolled, timeout=60, what="the operator Deployment to roll")
    assert wait_for(lambda: cluster.job_phase("across-upgrade"), timeout=120, what="across-upgrade") == "Succeeded"


def test_helm_uninstall_removes_the_release_and_keeps_crds_and_jobs(cluster: Cluster) -> None:
    out = cluster.helm("uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "60s")
    assert out.returncode == 0, out.stderr

    def gone() -> bool | None:
        items = cluster.get("pods", "-n", NS)["items"]
        return not items or None

    wait_for(gone, timeout=60, what="the release's pods to go")
    assert cluster.kubectl("get", "deployment,daemonset", "-n", NS, "-o", "name").stdout.strip() == ""
    assert cluster.kubectl("get", "clusterrole", f"{RELEASE}-powertrain-operator").returncode != 0
    crds = cluster.kubectl("get", "crd", "-o", "name").stdout
    assert "trainingjobs.powertrain.dev" in crds
    jobs = cluster.kubectl("get", "tj", "-n", "default", "-o", "name").stdout.split()
    assert "trainingjob.powertrain.dev/resnet-finetune" in jobs
    runner = cluster.sb.runner
    assert runner is not None
    assert not runner.pods
