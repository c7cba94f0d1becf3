"""The simulated kubelet: admission (OutOf<resource>), Running status, run-seconds/exit-code, deletion, node loss."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.kubelet import EXIT_CODE_ANNOTATION, RUN_SECONDS_ANNOTATION, KubeletConfig, toleration_seconds
from powertrain.sandbox.restclient import RestError, api_path
from powertrain.sandbox.testing import wait_for

KUBELET = KubeletConfig(start_delay=0.05, max_grace_seconds=0.3, not_ready_eviction_seconds=0.5)


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    # No scheduler: every pod here is bound by name, so only the kubelet acts on it.
    with Sandbox(SandboxConfig(nodes=2, gpus_per_node=8, kubelet=KUBELET, run_scheduler=False)) as sandbox:
        yield sandbox


def pod(
    name: str,
    node: str | None = "node-000",
    *,
    gpus: int = 0,
    cpu: str | None = None,
    annotations: dict[str, str] | None = None,
    restart: str = "Never",
    tolerations: list[dict[str, Any]] | None = None,
    grace: int | None = None,
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
    if cpu:
        resources["requests"] = {"cpu": cpu}
    spec: dict[str, Any] = {
        "restartPolicy": restart,
        "containers": [{"name": "main", "image": "busybox", "resources": resources}],
    }
    if node:
        spec["nodeName"] = node
    if tolerations:
        spec["tolerations"] = tolerations
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations or {}},
        "spec": spec,
    }


def create(sb: Sandbox, manifest: dict[str, Any]) -> None:
    sb.api("POST", api_path("pods", "default"), manifest)


def get(sb: Sandbox, name: str) -> dict[str, Any] | None:
    try:
        return sb.api("GET", api_path("pods", "default", name))
    except RestError as exc:
        if exc.code == 404:
            return None
        raise


def wait_phase(sb: Sandbox, name: str, phase: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        p = get(sb, name)
        return p if p and p.get("status", {}).get("phase") == phase else None

    return wait_for(check, what=f"pod {name} to be {phase}")


def condition(p: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in p["status"]["conditions"] if c["type"] == kind)


def test_bound_pod_that_fits_runs_with_full_status(sb: Sandbox) -> None:
    create(sb, pod("trainer", gpus=8))
    running = wait_phase(sb, "trainer", "Running")
    status = running["status"]
    assert status["podIP"].startswith("10.")
    node = sb.api("GET", api_path("nodes", name="node-000"))
    assert status["hostIP"] == node["status"]["addresses"][0]["address"]
    assert status["startTime"]
    (container,) = status["containerStatuses"]
    assert container["name"] == "main"
    assert container["ready"] is True
    assert "running" in container["state"]
    assert set(container["state"]) == {"running"}
    for kind in ("Initialized", "ContainersReady", "Ready", "PodScheduled"):
        assert condition(running, kind)["status"] == "True", kind


def test_pod_beyond_free_gpus_fails_like_a_kubelet(sb: Sandbox) -> None:
    create(sb, pod("first", gpus=6))
    wait_phase(sb, "first", "Running")
    create(sb, pod("second", gpus=4))
    failed = wait_phase(sb, "second", "Failed")
    assert failed["status"]["reason"] == "OutOfnvidia.com/gpu"
    assert "requested: 4, used: 6, capacity: 8" in failed["status"]["message"]
    # The other node is untouched by the first node's load.
    create(sb, pod("elsewhere", "node-001", gpus=4))
    wait_phase(sb, "elsewhere", "Running")


def test_pod_beyond_cpu_fails_out_of_cpu(sb: Sandbox) -> None:
    create(sb, pod("hungry", cpu="129"))
    assert wait_phase(sb, "hungry", "Failed")["status"]["reason"] == "OutOfcpu"


def test_run_seconds_then_exit_code_decides_the_phase(sb: Sandbox) -> None:
    create(sb, pod("ok", annotations={RUN_SECONDS_ANNOTATION: "0.2"}, gpus=8))
    create(sb, pod("bad", annotations={RUN_SECONDS_ANNOTATION: "0.2", EXIT_CODE_ANNOTATION: "3"}))
    ok = wait_phase(sb, "ok", "Succeeded")
    bad = wait_phase(sb, "bad", "Failed")
    assert ok["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert bad["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert condition(ok, "Ready")["status"] == "False"
    # A finished pod holds no GPUs: a full-node pod fits again.
    create(sb, pod("next", gpus=8))
    wait_phase(sb, "next", "Running")


def test_on_failure_restarts_the_container_in_place(sb: Sandbox) -> None:
    create(
        sb, pod("flaky", restart="OnFailure", annotations={RUN_SECONDS_ANNOTATION: "0.1", EXIT_CODE_ANNOTATION: "1"})
    )

    def restarted() -> dict[str, Any] | None:
        p = get(sb, "flaky")
        statuses = (p or {}).get("status", {}).get("containerStatuses") or []
        return p if statuses and statuses[0]["restartCount"] >= 2 else None

    p = wait_for(restarted, what="two restarts")
    assert p["status"]["phase"] in ("Running", "Pending")
    assert p["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1


def test_graceful_deletion_terminates_then_removes_the_pod(sb: Sandbox) -> None:
    create(sb, pod("worker", gpus=8, grace=30))
    wait_phase(sb, "worker", "Running")
    terminating = sb.api("DELETE", api_path("pods", "default", "worker"))
    assert terminating["metadata"]["deletionTimestamp"]
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 30
    wait_for(lambda: get(sb, "worker") is None, what="the pod to be removed")
    # Its GPUs are free again.
    create(sb, pod("after", gpus=8))
    wait_phase(sb, "after", "Running")


def test_not_ready_node_marks_pods_unready_then_evicts_those_without_toleration(sb: Sandbox) -> None:
    forever = [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}]
    create(sb, pod("plain", gpus=4))
    create(sb, pod("tolerant", gpus=4, tolerations=forever))
    wait_phase(sb, "plain", "Running")
    wait_phase(sb, "tolerant", "Running")
    sb.set_node_ready("node-000", "False")
    node = sb.api("GET", api_path("nodes", name="node-000"))
    assert {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}.items() <= node["spec"]["taints"][-1].items()
    lost = wait_phase(sb, "plain", "Failed")
    assert lost["status"]["reason"] == "NodeLost"
    assert condition(lost, "DisruptionTarget")["reason"] == "DeletionByTaintManager"
    tolerant = wait_for(
        lambda: (p := get(sb, "tolerant")) and condition(p, "Ready")["status"] == "False" and p,
        what="the tolerant pod to turn unready",
    )
    assert tolerant["status"]["phase"] == "Running"
    sb.set_node_ready("node-000", "True")
    wait_for(
        lambda: condition(get(sb, "tolerant") or {}, "Ready")["status"] == "True",
        what="the tolerant pod to be Ready again",
    )
    assert "taints" not in sb.api("GET", api_path("nodes", name="node-000"))["spec"]


def test_pods_on_a_removed_node_are_garbage_collected(sb: Sandbox) -> None:
    create(sb, pod("orphan", "node-001"))
    wait_phase(sb, "orphan", "Running")
    sb.remove_node("node-001")
    wait_for(lambda: get(sb, "orphan") is None, what="pod GC of the removed node's pod")


def test_init_container_peak_is_held_and_every_container_reports(sb: Sandbox) -> None:
    manifest = pod("multi", gpus=2)
    manifest["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    init = {"name": "setup", "image": "busybox", "resources": {"limits": {"nvidia.com/gpu": "8"}}}
    manifest["spec"]["initContainers"] = [init]
    create(sb, manifest)
    status = wait_phase(sb, "multi", "Running")["status"]
    assert [c["name"] for c in status["containerStatuses"]] == ["main", "sidecar"]
    assert status["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    # As in Kubernetes, the pod holds the larger of its init peak (8) and its containers' sum (2) all its life.
    create(sb, pod("one-more", gpus=1))
    assert "used: 8, capacity: 8" in wait_phase(sb, "one-more", "Failed")["status"]["message"]


@pytest.mark.parametrize(
    ("tolerations", "expected"),
    [
        ([], 30.0),
        ([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}], None),
        ([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 5}], 5.0),
        ([{"operator": "Exists"}], None),  # tolerates every taint
        ([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}], 30.0),
        ([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}], 30.0),
    ],
)
def test_eviction_delay_follows_the_not_ready_toleration(
    tolerations: list[dict[str, Any]], expected: float | None
) -> None:
    assert toleration_seconds({"spec": {"tolerations": tolerations}}, "node.kubernetes.io/not-ready", 30.0) == expected
