"""The sandbox's default scheduler: binds default-scheduler pods by fit, selectors, taints and cordons only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.kubelet import KubeletConfig
from powertrain.sandbox.nodes import NodeSpec
from powertrain.sandbox.restclient import api_path
from powertrain.sandbox.testing import wait_for

TAINT = {"key": "dedicated", "value": "inference", "effect": "NoSchedule"}
NODES = [
    NodeSpec(name="gpu-a", gpus=8, labels={"pool": "train"}),
    NodeSpec(name="gpu-b", gpus=8, labels={"pool": "train"}),
    NodeSpec(name="gpu-c", gpus=8, labels={"pool": "eval"}),
    NodeSpec(name="infer", gpus=8, taints=(TAINT,)),
]


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    config = SandboxConfig(node_specs=NODES, kubelet=KubeletConfig(start_delay=0.02, max_grace_seconds=0.2))
    with Sandbox(config) as sandbox:
        yield sandbox


def pod(name: str, *, gpus: int = 0, scheduler: str | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox"}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    body: dict[str, Any] = {"containers": [container], **spec}
    if scheduler:
        body["schedulerName"] = scheduler
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": body}


def create(sb: Sandbox, manifest: dict[str, Any]) -> None:
    sb.api("POST", api_path("pods", "default"), manifest)


def get(sb: Sandbox, name: str) -> dict[str, Any]:
    return sb.api("GET", api_path("pods", "default", name))


def node_of(sb: Sandbox, name: str) -> str:
    return str(wait_for(lambda: get(sb, name)["spec"].get("nodeName"), what=f"{name} to be bound"))


def unschedulable_message(sb: Sandbox, name: str) -> str:
    def check() -> str | None:
        for cond in get(sb, name).get("status", {}).get("conditions") or []:
            if cond["type"] == "PodScheduled" and cond["status"] == "False":
                assert cond["reason"] == "Unschedulable"
                return str(cond["message"])
        return None

    return wait_for(check, what=f"{name} to be marked Unschedulable")


def test_default_pod_is_bound_and_runs_with_a_scheduled_event(sb: Sandbox) -> None:
    create(sb, pod("web"))
    node = node_of(sb, "web")
    assert node in {"gpu-a", "gpu-b", "gpu-c"}  # never the tainted node
    wait_for(lambda: get(sb, "web")["status"].get("phase") == "Running", what="web Running")
    events = sb.api("GET", api_path("events", "default"))["items"]
    assert any(e["reason"] == "Scheduled" and e["involvedObject"]["name"] == "web" for e in events)


def test_node_selector_and_required_affinity_are_respected(sb: Sandbox) -> None:
    create(sb, pod("eval", nodeSelector={"pool": "eval"}))
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["gpu-b"]}]}
                ]
            }
        }
    }
    create(sb, pod("pinned", affinity=affinity))
    create(sb, pod("nowhere", nodeSelector={"pool": "missing"}))
    assert node_of(sb, "eval") == "gpu-c"
    assert node_of(sb, "pinned") == "gpu-b"
    message = unschedulable_message(sb, "nowhere")
    assert message.startswith("0/4 nodes are available: ")
    assert "node(s) didn't match Pod's node affinity/selector" in message
    assert "nodeName" not in get(sb, "nowhere")["spec"]


def test_taints_keep_pods_off_unless_tolerated(sb: Sandbox) -> None:
    toleration = [{"key": "dedicated", "operator": "Equal", "value": "inference", "effect": "NoSchedule"}]
    create(sb, pod("server", tolerations=toleration, nodeSelector={"kubernetes.io/hostname": "infer"}))
    create(sb, pod("intruder", nodeSelector={"kubernetes.io/hostname": "infer"}))
    assert node_of(sb, "server") == "infer"
    assert "1 node(s) had untolerated taint {dedicated: inference}" in unschedulable_message(sb, "intruder")


def test_gpu_fit_then_retry_when_gpus_are_released(sb: Sandbox) -> None:
    for i in range(3):
        create(sb, pod(f"full-{i}", gpus=8))
    nodes = {node_of(sb, f"full-{i}") for i in range(3)}
    assert nodes == {"gpu-a", "gpu-b", "gpu-c"}
    create(sb, pod("waiting", gpus=8))
    message = unschedulable_message(sb, "waiting")
    assert "3 Insufficient nvidia.com/gpu" in message
    freed = node_of(sb, "full-1")
    sb.api("DELETE", api_path("pods", "default", "full-1"))
    assert node_of(sb, "waiting") == freed


def test_cordoned_and_not_ready_nodes_get_nothing_until_back(sb: Sandbox) -> None:
    sb.cordon("gpu-a")
    sb.cordon("gpu-b")
    sb.set_node_ready("gpu-c", "False")
    create(sb, pod("patient"))
    message = unschedulable_message(sb, "patient")
    assert "2 node(s) were unschedulable" in message
    assert "1 node(s) were not ready" in message
    assert "nodeName" not in get(sb, "patient")["spec"]
    sb.uncordon("gpu-b")
    assert node_of(sb, "patient") == "gpu-b"


def test_pods_for_another_scheduler_are_left_pending_and_untouched(sb: Sandbox) -> None:
    create(sb, pod("gang-0", gpus=8, scheduler="powertrain"))
    create(sb, pod("marker"))  # a default pod created after it: once it is bound, the scheduler has had its turn
    node_of(sb, "marker")
    gang = get(sb, "gang-0")
    assert "nodeName" not in gang["spec"]
    assert not any(c["type"] == "PodScheduled" for c in gang.get("status", {}).get("conditions") or [])
    # Bound by its own scheduler, the kubelet runs it like any other pod.
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "gang-0"}, "target": {"name": "gpu-a"}}
    sb.api("POST", api_path("pods", "default", "gang-0", "binding"), binding)
    wait_for(lambda: get(sb, "gang-0")["status"].get("phase") == "Running", what="gang-0 Running")


def test_pods_bound_by_other_schedulers_count_against_capacity(sb: Sandbox) -> None:
    for name in ("gpu-a", "gpu-b", "gpu-c"):
        create(sb, pod(f"held-{name}", gpus=8, scheduler="powertrain", nodeName=name))
    create(sb, pod("late", gpus=1))
    assert "3 Insufficient nvidia.com/gpu" in unschedulable_message(sb, "late")


def test_higher_priority_pod_gets_the_freed_gpus_first(sb: Sandbox) -> None:
    for name in ("gpu-a", "gpu-b", "gpu-c"):
        create(sb, pod(f"filler-{name}", gpus=8, nodeName=name))
    create(sb, pod("low", gpus=8, priority=1))
    create(sb, pod("high", gpus=8, priority=100))
    unschedulable_message(sb, "low")
    unschedulable_message(sb, "high")
    sb.api("DELETE", api_path("pods", "default", "filler-gpu-b"))
    assert node_of(sb, "high") == "gpu-b"
    assert "nodeName" not in get(sb, "low")["spec"]
