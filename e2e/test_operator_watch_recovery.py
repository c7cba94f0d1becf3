"""The real `powertrain operator` when its watches fail: a 409 answered on a watch, a CRD deleted under it,
no CRDs installed at start, `--peering` without kopf's peering CRD. It keeps going (or says why it cannot,
exiting non-zero); it never exits 0 with work left, and never loops on tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from powertrain.controllers.testing import OperatorProcess, training_job, wait_for
from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.testing import FAST_KUBELET, Kubectl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[1]
CRDS = REPO / "crds"
TELEMETRY_CRD = "nodetelemetries.powertrain.dev"


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(nodes=2, gpus_per_node=8, kubelet=FAST_KUBELET)


def ready(kubectl: Kubectl, name: str) -> bool:
    status = kubectl.json("get", "tj", name).get("status") or {}
    return bool(status.get("readyReplicas") == 1)


def scheduled(kubectl: Kubectl, name: str) -> None:
    kubectl.apply(training_job(name, replicas=1, gpus=4, run_seconds=600))
    wait_for(f"{name} running", lambda: ready(kubectl, name), timeout=60)


def no_traceback(op: OperatorProcess) -> None:
    text = op.log_text()
    assert "Traceback" not in text, text[-3000:]
    assert "scheduling pass failed" not in text, text[-3000:]


def test_a_409_on_watches_restarts_them_and_scheduling_goes_on(
    sandbox: Sandbox, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    scheduled(kubectl, "before")
    answer = sandbox.api("POST", "/sandbox/v1/faults/watch-conflicts", {"count": 3})
    assert answer["dropped"] >= 1
    wait_for("the restart line", lambda: "kopf's watches stopped (the API server answered 409" in operator.log_text())
    assert operator.alive, operator.log_text()[-3000:]
    scheduled(kubectl, "after")
    assert operator.alive
    no_traceback(operator)
    operator.stop()
    assert operator.proc is not None
    assert operator.proc.returncode == 0  # a stop asked for is still a clean exit


def test_a_deleted_crd_is_named_once_and_scheduling_resumes_when_it_is_back(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    scheduled(kubectl, "before")
    kubectl("delete", "crd", TELEMETRY_CRD)
    line = f"the operator needs CRDs the API server does not serve: {TELEMETRY_CRD}; waiting for them"
    wait_for("the missing-CRD line", lambda: line in operator.log_text())
    assert "kubectl apply -f crds/" in operator.log_text()
    assert operator.alive, operator.log_text()[-3000:]
    kubectl("apply", "-f", str(CRDS / "powertrain.dev_nodetelemetries.yaml"))
    wait_for("the watches back", lambda: f"the CRDs {TELEMETRY_CRD} are served now" in operator.log_text())
    scheduled(kubectl, "after")
    assert operator.log_text().count(line) == 1  # one line, not one per retry
    no_traceback(operator)


@pytest.mark.parametrize(
    "sandbox_config", [SandboxConfig(nodes=2, gpus_per_node=8, kubelet=FAST_KUBELET, apply_crds=False)]
)
def test_started_without_crds_it_names_them_and_starts_once_they_are_installed(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    names = "trainingjobs.powertrain.dev, nodetelemetries.powertrain.dev, clustertrainingpolicies.powertrain.dev"
    wait_for("the missing-CRDs line", lambda: f"does not serve: {names}; waiting" in operator.log_text())
    assert "kubectl apply -f crds/" in operator.log_text()
    assert operator.alive
    kubectl("apply", "-f", str(CRDS))
    scheduled(kubectl, "first")
    no_traceback(operator)


def test_peering_without_its_crd_exits_non_zero_naming_it(sandbox: Sandbox, tmp_path: Path) -> None:
    with OperatorProcess(sandbox.kubeconfig_path, tmp_path / "operator.log", peering="replicas") as op:
        wait_for("the operator to exit", lambda: not op.alive, timeout=60)
        assert op.proc is not None
        assert op.proc.returncode == 1, op.log_text()[-3000:]
        text = op.log_text()
    assert "--peering replicas needs kopf's peering CRD clusterkopfpeerings.kopf.dev" in text
    assert "--standalone" in text
    assert "Traceback" not in text
