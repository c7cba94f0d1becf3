"""Object basics with the real `kubernetes` client.

Follows the Kubernetes API docs: "API Concepts" → "Resource versions" (one cluster-wide, monotonic counter;
409 Conflict on a stale one), "Object Management" → generation/uid/creationTimestamp (ObjectMeta reference),
"Responses" → Status objects with codes and reasons (NotFound, AlreadyExists, Conflict, Invalid with causes,
BadRequest), "Namespaces" (objects need an existing, non-terminating namespace).
"""

from __future__ import annotations

import json

import pytest
from apiserver_helpers import http
from kubernetes import client as k8s


def _pod(name: str, **spec: object) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": {"app": "demo"}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}], **spec},
    }


def _err(exc: pytest.ExceptionInfo[k8s.ApiException]) -> dict[str, object]:
    body: dict[str, object] = json.loads(exc.value.body)
    return body


def test_create_sets_server_fields_and_resource_versions_grow(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    a = core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}, "data": {"k": "v"}})
    b = core.create_namespaced_config_map(ns, {"metadata": {"name": "b"}, "data": {"k": "v"}})
    assert a.metadata.uid
    assert a.metadata.uid != b.metadata.uid
    assert a.metadata.creation_timestamp is not None
    assert int(b.metadata.resource_version) > int(a.metadata.resource_version)
    listed = core.list_namespaced_config_map(ns)
    assert [c.metadata.name for c in listed.items] == ["a", "b"]
    assert int(listed.metadata.resource_version) >= int(b.metadata.resource_version)


def test_stale_resource_version_is_409_conflict(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}, "data": {"n": "1"}})
    stale = cm.metadata.resource_version
    cm.data = {"n": "2"}
    updated = core.replace_namespaced_config_map("c", ns, cm)
    assert updated.data == {"n": "2"}
    cm.metadata.resource_version = stale
    cm.data = {"n": "3"}
    with pytest.raises(k8s.ApiException) as err:
        core.replace_namespaced_config_map("c", ns, cm)
    assert err.value.status == 409
    assert _err(err)["reason"] == "Conflict"
    assert core.read_namespaced_config_map("c", ns).data == {"n": "2"}


def test_status_reasons_for_common_errors(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    with pytest.raises(k8s.ApiException) as err:
        core.read_namespaced_pod("missing", ns)
    assert err.value.status == 404
    assert _err(err)["reason"] == "NotFound"
    core.create_namespaced_pod(ns, _pod("p"))
    with pytest.raises(k8s.ApiException) as err:
        core.create_namespaced_pod(ns, _pod("p"))
    assert err.value.status == 409
    assert _err(err)["reason"] == "AlreadyExists"
    with pytest.raises(k8s.ApiException) as err:
        core.create_namespaced_pod(ns, _pod("Bad_Name"))
    body = _err(err)
    assert err.value.status == 422
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"  # type: ignore[index]
    with pytest.raises(k8s.ApiException) as err:
        core.list_namespaced_pod(ns, label_selector="app in (a")
    assert err.value.status == 400
    assert _err(err)["reason"] == "BadRequest"
    with pytest.raises(k8s.ApiException) as err:
        core.create_namespaced_pod("no-such-namespace", _pod("p"))
    assert err.value.status == 404
    assert "namespaces" in str(_err(err)["message"])


def test_pod_defaults_and_immutable_spec(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    pod = core.create_namespaced_pod(ns, _pod("d"))
    assert pod.spec.scheduler_name == "default-scheduler"
    assert pod.spec.restart_policy == "Always"
    assert pod.spec.service_account_name == "default"
    assert pod.status.phase == "Pending"
    assert pod.status.qos_class == "BestEffort"
    assert pod.spec.containers[0].image_pull_policy == "IfNotPresent"
    with pytest.raises(k8s.ApiException) as err:
        core.patch_namespaced_pod("d", ns, {"spec": {"restartPolicy": "Never"}})
    assert err.value.status == 422
    assert "Forbidden" in str(_err(err)["message"])
    # The image may change in place, as on a real cluster.
    changed = core.patch_namespaced_pod("d", ns, {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}})
    assert changed.spec.containers[0].image == "busybox:1.37"


def test_generation_moves_with_spec_not_status(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    svc = core.create_namespaced_service(ns, {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})
    assert svc.metadata.generation == 1
    assert svc.spec.cluster_ip
    assert svc.spec.ports[0].protocol == "TCP"
    assert svc.spec.ports[0].target_port == 80
    svc2 = core.patch_namespaced_service("s", ns, {"spec": {"ports": [{"port": 80, "name": "http"}]}})
    assert svc2.metadata.generation == 2
    assert svc2.spec.cluster_ip == svc.spec.cluster_ip  # the allocated IP survives updates
    svc3 = core.patch_namespaced_service_status("s", ns, {"status": {"loadBalancer": {}}})
    assert svc3.metadata.generation == 2


def test_nodes_status_and_field_selectors(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    core.create_node({"metadata": {"name": f"{ns}-node", "labels": {"pool": ns}}})
    node = core.patch_node_status(
        f"{ns}-node",
        {"status": {"conditions": [{"type": "Ready", "status": "True"}], "capacity": {"nvidia.com/gpu": "8"}}},
    )
    assert node.status.capacity == {"nvidia.com/gpu": "8"}
    core.create_namespaced_pod(ns, _pod("on-node", nodeName=f"{ns}-node"))
    core.create_namespaced_pod(ns, _pod("pending"))
    on_node = core.list_namespaced_pod(ns, field_selector=f"spec.nodeName={ns}-node")
    assert [p.metadata.name for p in on_node.items] == ["on-node"]
    unbound = core.list_namespaced_pod(ns, field_selector="spec.nodeName=")
    assert [p.metadata.name for p in unbound.items] == ["pending"]
    running = core.list_pod_for_all_namespaces(field_selector=f"status.phase=Running,metadata.namespace={ns}")
    assert running.items == []
    by_name = core.list_namespaced_pod(ns, field_selector="metadata.name=pending")
    assert [p.metadata.name for p in by_name.items] == ["pending"]
    with pytest.raises(k8s.ApiException) as err:
        core.list_namespaced_pod(ns, field_selector="spec.hostname=x")
    assert err.value.status == 400
    assert "spec.nodeName" in str(_err(err)["message"])
    assert [n.metadata.name for n in core.list_node(label_selector=f"pool={ns}").items] == [f"{ns}-node"]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=gpu", ["a", "b"]),
        ("tier==gpu,zone=z1", ["a"]),
        ("tier!=gpu", ["c", "d"]),
        ("zone in (z1,z2)", ["a", "b", "c"]),
        ("zone notin (z1)", ["b", "c", "d"]),
        ("zone", ["a", "b", "c"]),
        ("!zone", ["d"]),
    ],
)
def test_label_selectors(api: k8s.ApiClient, ns: str, selector: str, expected: list[str]) -> None:
    core = k8s.CoreV1Api(api)
    labels = {
        "a": {"tier": "gpu", "zone": "z1"},
        "b": {"tier": "gpu", "zone": "z2"},
        "c": {"tier": "cpu", "zone": "z2"},
        "d": {"tier": "cpu"},
    }
    for name, lbl in labels.items():
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": lbl}})
    found = core.list_namespaced_config_map(ns, label_selector=selector)
    assert [c.metadata.name for c in found.items] == expected


def test_list_chunking_with_limit_and_continue(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    for i in range(5):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"cm-{i}"}})
    page = core.list_namespaced_config_map(ns, limit=2)
    names = [c.metadata.name for c in page.items]
    while page.metadata._continue:
        page = core.list_namespaced_config_map(ns, limit=2, _continue=page.metadata._continue)
        names += [c.metadata.name for c in page.items]
    assert names == [f"cm-{i}" for i in range(5)]


def test_leases_and_events_round_trip(api: k8s.ApiClient, ns: str) -> None:
    coord = k8s.CoordinationV1Api(api)
    lease = coord.create_namespaced_lease(ns, {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "me"}})
    assert lease.spec.holder_identity == "me"
    core = k8s.CoreV1Api(api)
    core.create_namespaced_event(
        ns,
        {
            "metadata": {"name": "e1"},
            "involvedObject": {"kind": "Pod", "name": "x", "namespace": ns},
            # The typed events.k8s.io client insists on eventTime, which older core events lack.
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reason": "Started",
            "message": "hello",
            "type": "Normal",
        },
    )
    found = core.list_namespaced_event(ns, field_selector="involvedObject.kind=Pod,involvedObject.name=x")
    assert [e.reason for e in found.items] == ["Started"]
    ev1 = k8s.EventsV1Api(api)
    ev1.create_namespaced_event(
        ns,
        {
            "metadata": {"name": "e2"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "powertrain.dev/operator",
            "reportingInstance": "op-0",
            "action": "Bind",
            "reason": "Bound",
            "type": "Normal",
            "regarding": {"kind": "Pod", "name": "x", "namespace": ns},
        },
    )
    assert sorted(e.reason for e in ev1.list_namespaced_event(ns).items) == ["Bound", "Started"]
    # One set of objects seen through both APIs, as in Kubernetes.
    started = ev1.read_namespaced_event("e1", ns)
    assert started.note == "hello"
    assert started.regarding.name == "x"
    bound = core.read_namespaced_event("e2", ns)
    assert bound.message is None
    assert bound.involved_object.kind == "Pod"
    assert bound.reporting_component == "powertrain.dev/operator"
    by_regarding = ev1.list_namespaced_event(ns, field_selector="regarding.name=x,reason=Bound")
    assert [e.metadata.name for e in by_regarding.items] == ["e2"]
    ev1.delete_namespaced_event("e1", ns)
    assert [e.metadata.name for e in core.list_namespaced_event(ns).items] == ["e2"]


def test_dry_run_changes_nothing(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    created = core.create_namespaced_config_map(ns, {"metadata": {"name": "dry"}}, dry_run="All")
    assert created.metadata.name == "dry"
    with pytest.raises(k8s.ApiException) as err:
        core.read_namespaced_config_map("dry", ns)
    assert err.value.status == 404


@pytest.mark.parametrize(
    ("metadata", "code", "text"),
    [
        # Built-in kinds decode into Go types: a wrong JSON type fails decoding (400), as on a real server.
        ({"name": "m", "labels": ["a"]}, 400, "Go struct field ObjectMeta.metadata.labels of type map[string]string"),
        ({"name": "m", "labels": {"a": 1}}, 400, "Go struct field ObjectMeta.metadata.labels of type string"),
        ({"name": "m", "annotations": "x"}, 400, "unmarshal string into Go struct field ObjectMeta.metadata.annot"),
        ({"name": "m", "finalizers": "x"}, 400, "Go struct field ObjectMeta.metadata.finalizers of type []string"),
        ({"name": "m", "ownerReferences": [{"name": "o"}]}, 422, "metadata.ownerReferences"),
    ],
)
def test_malformed_metadata_is_refused_and_stores_nothing(sandbox, metadata: dict, code: int, text: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    status, body = http(
        f"{sandbox.server.url}/api/v1/namespaces/default/configmaps", method="POST", body={"metadata": metadata}
    )
    assert status == code
    assert text in body["message"]
    status, _ = http(f"{sandbox.server.url}/api/v1/namespaces/default/configmaps/m")
    assert status == 404


def test_garbage_bodies_get_400(sandbox) -> None:  # type: ignore[no-untyped-def]
    url = f"{sandbox.server.url}/api/v1/namespaces/default/configmaps"
    status, body = http(url, method="POST", body=b"{not json")
    assert status == 400
    assert body["reason"] == "BadRequest"
    status, body = http(url, method="POST", body=[1, 2])
    assert status == 400
    status, body = http(url + "?limit=lots")
    assert status == 400


def test_delete_collection_by_label(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": {"team": team}}})
    core.delete_collection_namespaced_config_map(ns, label_selector="team=x")
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == ["c"]
