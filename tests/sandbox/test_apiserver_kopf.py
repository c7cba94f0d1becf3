"""kopf runs unmodified against the sandbox: watching a CRD, status patches, finalizers, events and peering.

Follows kopf's documentation ("Peering", "Finalizers", "Handlers") and, on the API side, the same sections as the
rest of the suite: watch resume, merge patches to the status subresource, finalizers and deletion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apiserver_helpers import PRESERVE_UNKNOWN, crd
from kopf.testing import KopfRunner
from kubernetes import client as k8s

from powertrain.sandbox.peering import KOPF_PEERING_CRDS
from powertrain.sandbox.testing import wait_for

OPERATOR = Path(__file__).with_name("kopf_example_operator.py")
GIZMOS = crd(
    "test.dev",
    "gizmos",
    "Gizmo",
    singular="gizmo",
    status_subresource=True,
    schema={
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
            "status": PRESERVE_UNKNOWN,
        },
    },
)


def test_kopf_operator_with_status_finalizers_and_peering(
    api: k8s.ApiClient, ns: str, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ext = k8s.ApiextensionsV1Api(api)
    for definition in [*KOPF_PEERING_CRDS, GIZMOS]:
        ext.create_custom_resource_definition(definition)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    co = k8s.CustomObjectsApi(api)
    # As on a real cluster, a named peering must exist before kopf operators join it.
    co.create_cluster_custom_object(
        "kopf.dev",
        "v1",
        "clusterkopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "sandbox-test"}},
    )

    def gizmo() -> dict[str, Any] | None:
        try:
            return co.get_namespaced_custom_object("test.dev", "v1", ns, "gizmos", "g1")  # type: ignore[no-any-return]
        except k8s.ApiException as exc:
            assert exc.status == 404
            return None

    args = ["run", "--all-namespaces", "--peering=sandbox-test", "--verbose", str(OPERATOR)]
    with KopfRunner(args, timeout=60) as runner:
        co.create_namespaced_custom_object(
            "test.dev",
            "v1",
            ns,
            "gizmos",
            {"apiVersion": "test.dev/v1", "kind": "Gizmo", "metadata": {"name": "g1"}, "spec": {"size": 21}},
        )
        obj = wait_for(
            lambda: (g := gizmo()) and g.get("status", {}).get("phase") and g, what="the create handler's status"
        )
        assert obj["status"]["size"] == 42
        assert obj["status"]["created"] == {"greeting": "hello g1"}
        assert "kopf.zalando.org/KopfFinalizerMarker" in obj["metadata"]["finalizers"]
        peering = co.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", "sandbox-test")
        assert peering["status"]  # kopf keeps its own heartbeat there
        core = k8s.CoreV1Api(api)
        wait_for(
            lambda: any(
                e.reason == "Provisioned" and e.involved_object.kind == "Gizmo"
                for e in core.list_namespaced_event(ns, field_selector="involvedObject.name=g1").items
            ),
            what="the handler's event",
        )
        co.delete_namespaced_custom_object("test.dev", "v1", ns, "gizmos", "g1")
        wait_for(lambda: gizmo() is None, what="kopf to remove its finalizer")
        k8s.CoreV1Api(api).read_namespaced_config_map("deleted-g1", ns)
    assert runner.exception is None
    assert runner.exit_code == 0
    assert "Traceback" not in runner.output
    for definition in [GIZMOS, *KOPF_PEERING_CRDS]:
        ext.delete_custom_resource_definition(definition["metadata"]["name"])
