"""Deletion: finalizers, graceful pod termination, garbage collection, namespace cascade, binding and eviction.

Follows the Kubernetes docs: "Finalizers" (deletionTimestamp set, object kept until finalizers are gone, no new
finalizers afterwards), "Garbage Collection" → "Cascading deletion" (background, foreground with the
foregroundDeletion finalizer and blockOwnerDeletion, orphan), "Pod Lifecycle" → "Termination of Pods" (grace
period; force deletion with gracePeriodSeconds=0), "Namespaces" (a Terminating namespace deletes its contents),
and the pods/binding and pods/eviction subresources ("API-initiated eviction").
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client as k8s


def _cm(name: str, owners: list[dict[str, object]] | None = None, finalizers: list[str] | None = None) -> dict:  # type: ignore[type-arg]
    meta: dict[str, object] = {"name": name}
    if owners:
        meta["ownerReferences"] = owners
    if finalizers:
        meta["finalizers"] = finalizers
    return {"metadata": meta}


def _owner(obj: k8s.V1ConfigMap, block: bool = False) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": obj.metadata.name,
        "uid": obj.metadata.uid,
        "blockOwnerDeletion": block,
    }


def _exists(core: k8s.CoreV1Api, name: str, ns: str) -> bool:
    try:
        core.read_namespaced_config_map(name, ns)
    except k8s.ApiException as exc:
        assert exc.status == 404
        return False
    return True


def test_finalizers_hold_deletion_until_removed(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    core.create_namespaced_config_map(ns, _cm("f", finalizers=["example.com/hold"]))
    core.delete_namespaced_config_map("f", ns)
    held = core.read_namespaced_config_map("f", ns)
    assert held.metadata.deletion_timestamp is not None
    core.delete_namespaced_config_map("f", ns)  # a second delete is a no-op
    assert core.read_namespaced_config_map("f", ns).metadata.resource_version == held.metadata.resource_version
    with pytest.raises(k8s.ApiException) as err:
        core.patch_namespaced_config_map("f", ns, {"metadata": {"finalizers": ["example.com/hold", "new/one"]}})
    assert err.value.status == 422
    core.patch_namespaced_config_map("f", ns, [{"op": "remove", "path": "/metadata/finalizers"}])
    assert not _exists(core, "f", ns)


def test_background_gc_deletes_dependents_of_deleted_owners(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    owner = core.create_namespaced_config_map(ns, _cm("owner"))
    other = core.create_namespaced_config_map(ns, _cm("other"))
    core.create_namespaced_config_map(ns, _cm("child", [_owner(owner)]))
    core.create_namespaced_config_map(ns, _cm("shared", [_owner(owner), _owner(other)]))
    core.create_namespaced_config_map(ns, _cm("grandchild", [_owner(core.read_namespaced_config_map("child", ns))]))
    core.delete_namespaced_config_map("owner", ns)
    assert not _exists(core, "child", ns)
    assert not _exists(core, "grandchild", ns)
    shared = core.read_namespaced_config_map("shared", ns)  # another owner is alive: only the reference goes
    assert [r.name for r in shared.metadata.owner_references] == ["other"]


def test_foreground_waits_for_blocking_dependents(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    owner = core.create_namespaced_config_map(ns, _cm("owner"))
    core.create_namespaced_config_map(ns, _cm("child", [_owner(owner, block=True)], finalizers=["example.com/slow"]))
    core.delete_namespaced_config_map("owner", ns, propagation_policy="Foreground")
    waiting = core.read_namespaced_config_map("owner", ns)
    assert "foregroundDeletion" in waiting.metadata.finalizers
    assert waiting.metadata.deletion_timestamp is not None
    assert core.read_namespaced_config_map("child", ns).metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("child", ns, {"metadata": {"finalizers": None}})
    assert not _exists(core, "child", ns)
    assert not _exists(core, "owner", ns)


def test_orphan_keeps_dependents_without_the_reference(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    owner = core.create_namespaced_config_map(ns, _cm("owner"))
    core.create_namespaced_config_map(ns, _cm("child", [_owner(owner)]))
    core.delete_namespaced_config_map("owner", ns, propagation_policy="Orphan")
    assert not _exists(core, "owner", ns)
    assert core.read_namespaced_config_map("child", ns).metadata.owner_references is None


def _node_and_pod(core: k8s.CoreV1Api, ns: str, bind: bool = True) -> None:
    core.create_node({"metadata": {"name": f"{ns}-node"}})
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "img:1"}], "terminationGracePeriodSeconds": 20},
        },
    )
    if bind:
        core.create_namespaced_binding(
            ns, {"metadata": {"name": "p"}, "target": {"kind": "Node", "name": f"{ns}-node"}}, _preload_content=False
        )


def test_binding_sets_node_once(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    _node_and_pod(core, ns)
    pod = core.read_namespaced_pod("p", ns)
    assert pod.spec.node_name == f"{ns}-node"
    assert {c.type: c.status for c in pod.status.conditions}["PodScheduled"] == "True"
    with pytest.raises(k8s.ApiException) as err:
        core.create_namespaced_pod_binding(
            "p", ns, {"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "elsewhere"}}
        )
    assert err.value.status == 409
    assert json.loads(err.value.body)["reason"] == "Conflict"


def test_bound_pods_terminate_gracefully_until_force_deleted(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    _node_and_pod(core, ns)
    core.delete_namespaced_pod("p", ns)
    terminating = core.read_namespaced_pod("p", ns)
    assert terminating.metadata.deletion_grace_period_seconds == 20
    assert terminating.metadata.deletion_timestamp is not None
    core.delete_namespaced_pod("p", ns, grace_period_seconds=0)  # what the kubelet does once containers stop
    with pytest.raises(k8s.ApiException) as err:
        core.read_namespaced_pod("p", ns)
    assert err.value.status == 404


def test_unbound_pods_are_deleted_at_once_and_eviction_is_graceful(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    _node_and_pod(core, ns, bind=False)
    core.delete_namespaced_pod("p", ns)
    assert core.list_namespaced_pod(ns).items == []
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "q"},
            "spec": {"containers": [{"name": "c", "image": "img:1"}], "nodeName": f"{ns}-node"},
        },
    )
    core.create_namespaced_pod_eviction("q", ns, {"metadata": {"name": "q", "namespace": ns}})
    assert core.read_namespaced_pod("q", ns).metadata.deletion_timestamp is not None


def test_namespace_deletion_cascades(api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", _cm("plain"))
    core.create_namespaced_config_map("doomed", _cm("held", finalizers=["example.com/hold"]))
    core.delete_namespace("doomed")
    ns = core.read_namespace("doomed")
    assert ns.status.phase == "Terminating"
    assert [c.metadata.name for c in core.list_namespaced_config_map("doomed").items] == ["held"]
    with pytest.raises(k8s.ApiException) as err:
        core.create_namespaced_config_map("doomed", _cm("late"))
    assert err.value.status == 403
    core.patch_namespaced_config_map("held", "doomed", {"metadata": {"finalizers": None}})
    with pytest.raises(k8s.ApiException) as gone:
        core.read_namespace("doomed")
    assert gone.value.status == 404


def test_delete_preconditions(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    core.create_namespaced_config_map(ns, _cm("x"))
    with pytest.raises(k8s.ApiException) as err:
        core.delete_namespaced_config_map("x", ns, body={"preconditions": {"uid": "not-the-uid"}})
    assert err.value.status == 409
    assert _exists(core, "x", ns)
