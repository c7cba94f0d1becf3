"""A NodeTelemetry goes when its Node goes: the agent makes its Node the owner, and the API server's garbage
collector (here the sandbox's, which collects through owner references like a real one) deletes it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from powertrain.api.telemetry import NodeTelemetryStatus
from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.testing import wait_for
from powertrain_agent.kube import PLURAL, KubeClient, load_client
from powertrain_agent.reporter import StatusWriter

GROUP, VERSION = "powertrain.dev", "v1alpha1"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(nodes=2, gpus_per_node=8, run_scheduler=False)) as sb:
        yield sb


def telemetry(kube: KubeClient, name: str) -> dict[str, Any] | None:
    return kube.get_node_telemetry(name)


def delete_node(kube: KubeClient, name: str) -> None:
    kube.http.request("DELETE", f"/api/v1/nodes/{name}")


def test_the_agent_creates_its_telemetry_owned_by_its_node_and_it_goes_with_the_node(cluster: Sandbox) -> None:
    kube = KubeClient(load_client(str(cluster.kubeconfig_path)))
    node = cluster.node_names[0]
    assert StatusWriter(kube, node).write(NodeTelemetryStatus(backend="sim")) == "created"
    obj = telemetry(kube, node)
    assert obj is not None
    uid = kube.http.request("GET", f"/api/v1/nodes/{node}")["metadata"]["uid"]
    assert obj["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}]
    delete_node(kube, node)
    wait_for(lambda: telemetry(kube, node) is None, what=f"NodeTelemetry/{node} to be collected with its Node")


def test_a_telemetry_object_made_without_an_owner_is_adopted(cluster: Sandbox) -> None:
    kube = KubeClient(load_client(str(cluster.kubeconfig_path)))
    node = cluster.node_names[1]
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "NodeTelemetry", "metadata": {"name": node}, "spec": {}}
    kube.http.request("POST", f"/apis/{GROUP}/{VERSION}/{PLURAL}", body)  # as an older agent did
    writer = StatusWriter(kube, node)
    assert writer.write(NodeTelemetryStatus(backend="sim")) == "ok"
    obj = telemetry(kube, node)
    assert obj is not None
    assert [r["kind"] for r in obj["metadata"]["ownerReferences"]] == ["Node"]
    assert obj.get("status", {}).get("backend") == "sim"  # the report itself was written
    delete_node(kube, node)
    wait_for(lambda: telemetry(kube, node) is None, what=f"NodeTelemetry/{node} to be collected with its Node")
