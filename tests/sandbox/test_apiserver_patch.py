"""PATCH: JSON merge patch, JSON patch and strategic merge patch, through the real `kubernetes` client and kubectl.

Follows the Kubernetes docs: "Update API Objects in Place Using kubectl patch" (strategic merge: lists merged by
their patchMergeKey — containers/env by name, ports by containerPort, volumeMounts by mountPath, conditions by
type — tolerations replaced, finalizers as a set, `$patch: delete|replace` directives) and "API Concepts" →
"Patch" content types (RFC 7386 merge patch, RFC 6902 JSON patch).
"""

from __future__ import annotations

import json

import pytest
from apiserver_helpers import http
from kubernetes import client as k8s

from powertrain.sandbox.patch import apply_patch, builtin_list_key, merge_patch, strategic_merge_patch


def _pod(api: k8s.ApiClient, ns: str) -> None:
    k8s.CoreV1Api(api).create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "p", "finalizers": ["a.example/x"]},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "img:1",
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "ports": [{"containerPort": 80}],
                        "volumeMounts": [{"name": "v", "mountPath": "/data"}],
                    },
                    {"name": "side", "image": "side:1"},
                ],
                "tolerations": [{"key": "gpu", "operator": "Exists"}],
            },
        },
    )


def _smp(api: k8s.ApiClient, ns: str, body: object, subresource: str = "") -> dict:  # type: ignore[type-arg]
    """A strategic merge patch (the client's default for object bodies on built-in kinds), as plain JSON."""
    core = k8s.CoreV1Api(api)
    patch = core.patch_namespaced_pod_status if subresource == "status" else core.patch_namespaced_pod
    resp = patch("p", ns, body, _content_type="application/strategic-merge-patch+json", _preload_content=False)
    return json.loads(resp.data)  # type: ignore[no-any-return]


def test_strategic_merge_merges_lists_by_key(api: k8s.ApiClient, ns: str) -> None:
    _pod(api, ns)
    out = _smp(
        api,
        ns,
        {
            "metadata": {"finalizers": ["b.example/y"]},
            "spec": {
                "containers": [{"name": "side", "image": "side:2"}],
                "tolerations": [{"key": "other", "operator": "Exists"}],
            },
        },
    )
    main, side = out["spec"]["containers"]
    assert (main["name"], main["image"], side["name"], side["image"]) == ("main", "img:1", "side", "side:2")
    assert main["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert out["spec"]["tolerations"] == [{"key": "other", "operator": "Exists"}]  # replaced, not merged
    assert out["metadata"]["finalizers"] == ["a.example/x", "b.example/y"]  # a set


def test_strategic_merge_env_ports_and_mounts_by_key() -> None:
    pod = {
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "volumeMounts": [{"name": "v", "mountPath": "/data"}],
                },
                {"name": "side"},
            ]
        }
    }
    out = strategic_merge_patch(
        pod,
        {
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
                        "volumeMounts": [{"name": "w", "mountPath": "/data"}],
                    }
                ]
            }
        },
    )
    main, side = out["spec"]["containers"]
    assert main["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "C", "value": "3"}]
    assert main["volumeMounts"] == [{"name": "w", "mountPath": "/data"}]
    assert side == {"name": "side"}
    deleted = strategic_merge_patch(pod, {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}})
    assert [c["name"] for c in deleted["spec"]["containers"]] == ["main"]


def test_strategic_merge_directives(api: k8s.ApiClient, ns: str) -> None:
    _pod(api, ns)
    out = _smp(api, ns, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example/x"]}})
    assert not out["metadata"].get("finalizers")
    core = k8s.CoreV1Api(api)
    core.create_node(
        {
            "metadata": {"name": f"{ns}-n"},
            "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoSchedule"}]},
        }
    )
    node = core.patch_node(
        f"{ns}-n", {"spec": {"taints": [{"key": "a", "$patch": "delete"}, {"key": "c", "effect": "NoExecute"}]}}
    )
    assert [t.key for t in node.spec.taints] == ["b", "c"]
    node = core.patch_node(f"{ns}-n", {"spec": {"$patch": "replace", "unschedulable": True}})
    assert node.spec.taints is None
    assert node.spec.unschedulable is True


def test_status_conditions_merge_by_type(api: k8s.ApiClient, ns: str) -> None:
    _pod(api, ns)
    _smp(
        api,
        ns,
        {"status": {"conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]}},
        "status",
    )
    out = _smp(api, ns, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, "status")
    assert {c["type"]: c["status"] for c in out["status"]["conditions"]} == {"PodScheduled": "True", "Ready": "True"}


def test_merge_patch_replaces_lists_and_json_patch_edits_paths(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    core.create_namespaced_config_map(
        ns, {"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"x": "1"}}
    )
    merged = core.patch_namespaced_config_map("c", ns, {"metadata": {"labels": {"a": None, "c": "3"}}})
    assert merged.metadata.labels == {"b": "2", "c": "3"}
    patched = core.patch_namespaced_config_map(
        "c", ns, [{"op": "add", "path": "/data/y", "value": "2"}, {"op": "remove", "path": "/data/x"}]
    )
    assert patched.data == {"y": "2"}
    with pytest.raises(k8s.ApiException) as err:
        core.patch_namespaced_config_map("c", ns, [{"op": "test", "path": "/data/y", "value": "nope"}])
    assert err.value.status == 422
    with pytest.raises(k8s.ApiException) as err:
        core.patch_namespaced_config_map("c", ns, {"metadata": {"resourceVersion": "1"}, "data": {"z": "1"}})
    assert err.value.status == 409


def test_kubectl_patch_types(kubectl, api: k8s.ApiClient, ns: str) -> None:  # type: ignore[no-untyped-def]
    _pod(api, ns)
    kubectl("-n", ns, "patch", "pod", "p", "-p", '{"spec":{"containers":[{"name":"side","image":"side:2"}]}}')
    kubectl(
        "-n", ns, "patch", "pod", "p", "--type=json", "-p", '[{"op":"add","path":"/metadata/labels","value":{"k":"v"}}]'
    )
    pod = k8s.CoreV1Api(api).read_namespaced_pod("p", ns)
    assert [c.image for c in pod.spec.containers] == ["img:1", "side:2"]
    assert pod.metadata.labels == {"k": "v"}


def test_service_ports_merge_by_port_and_container_ports_by_container_port() -> None:
    svc = {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}
    out = strategic_merge_patch(svc, {"spec": {"ports": [{"port": 443, "name": "tls"}]}})
    assert out["spec"]["ports"] == [{"port": 80, "name": "http"}, {"port": 443, "name": "tls"}]
    pod = {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 1}, {"containerPort": 2}]}]}}
    out = strategic_merge_patch(
        pod, {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 2, "name": "x"}]}]}}
    )
    assert out["spec"]["containers"][0]["ports"] == [{"containerPort": 1}, {"containerPort": 2, "name": "x"}]
    replaced = strategic_merge_patch(pod, {"spec": {"containers": [{"$patch": "replace"}, {"name": "b"}]}})
    assert replaced["spec"]["containers"] == [{"name": "b"}]


def test_merge_patch_is_rfc7386() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1, 2]}, {"a": {"b": None}, "l": [3]}) == {"a": {"c": 2}, "l": [3]}


def test_apply_removes_only_what_the_same_manager_dropped() -> None:
    previous = {
        "metadata": {"labels": {"a": "1", "b": "2"}},
        "spec": {
            "containers": [
                {"name": "c", "env": [{"name": "KEEP", "value": "1"}, {"name": "DROP", "value": "2"}]},
                {"name": "gone"},
            ]
        },
    }
    live = strategic_merge_patch(previous, {"metadata": {"labels": {"other": "x"}}})
    applied = {
        "metadata": {"labels": {"a": "1"}},
        "spec": {"containers": [{"name": "c", "env": [{"name": "KEEP", "value": "1"}]}]},
    }
    out = apply_patch(live, applied, builtin_list_key, previous)
    assert out["metadata"]["labels"] == {"a": "1", "other": "x"}
    assert out["spec"]["containers"] == [{"name": "c", "env": [{"name": "KEEP", "value": "1"}]}]
    # Without a previous configuration (first apply), nothing is removed.
    assert apply_patch(live, applied, builtin_list_key)["metadata"]["labels"] == {"a": "1", "b": "2", "other": "x"}


def test_apply_requires_a_field_manager(sandbox, api: k8s.ApiClient, ns: str) -> None:  # type: ignore[no-untyped-def]
    status, body = http(
        f"{sandbox.server.url}/api/v1/namespaces/{ns}/configmaps/x",
        method="PATCH",
        body=b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        content_type="application/apply-patch+yaml",
    )
    assert status == 400
    assert "fieldManager" in body["message"]
    status, body = http(
        f"{sandbox.server.url}/api/v1/namespaces/{ns}/configmaps/x?fieldManager=me",
        method="PATCH",
        body=b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {k: v}\n",
        content_type="application/apply-patch+yaml",
    )
    assert status == 201
    assert body["data"] == {"k": "v"}
