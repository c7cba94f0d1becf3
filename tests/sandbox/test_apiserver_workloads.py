"""apps/v1, batch/v1, policy/v1 and networking.k8s.io/v1 through the official Python client, answered as
kube-apiserver answers (no controllers run here: test_cluster_workloads.py covers them).

Kubernetes docs followed: "Deployments" → "Writing a Deployment Spec" (defaults, selector must match the
template, immutable selector in apps/v1), "Jobs" → "Writing a Job spec" (generated selector and labels, pod
template restartPolicy), "API Concepts" → "Resource versions" (409 on a stale write) and "Efficient detection of
changes" (watch), "Scale subresource".
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from apiserver_helpers import http
from kubernetes import client as k8s
from kubernetes import watch


def deployment(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}},
            **spec,
        },
    }


def status_of(exc: k8s.ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_deployment_crud_with_defaults_conflicts_and_errors(api: k8s.ApiClient, ns: str) -> None:
    apps = k8s.AppsV1Api(api)
    created = apps.create_namespaced_deployment(ns, deployment("web"))
    assert created.spec.replicas == 1
    assert created.spec.strategy.type == "RollingUpdate"
    assert created.spec.strategy.rolling_update.max_surge == "25%"
    assert created.spec.revision_history_limit == 10
    assert created.metadata.generation == 1

    with pytest.raises(k8s.ApiException) as err:
        apps.create_namespaced_deployment(ns, deployment("web"))
    assert err.value.status == 409
    assert status_of(err.value)["reason"] == "AlreadyExists"
    assert status_of(err.value)["message"] == 'deployments.apps "web" already exists'

    patched = apps.patch_namespaced_deployment("web", ns, {"spec": {"replicas": 3}})
    assert patched.spec.replicas == 3
    assert patched.metadata.generation == 2
    stale = created
    stale.spec.replicas = 5
    with pytest.raises(k8s.ApiException) as err:
        apps.replace_namespaced_deployment("web", ns, stale)
    assert err.value.status == 409
    assert status_of(err.value)["reason"] == "Conflict"

    scale = apps.read_namespaced_deployment_scale("web", ns)
    assert scale.spec.replicas == 3
    assert scale.status.selector == "app=web"
    apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment("web", ns).spec.replicas == 4

    with pytest.raises(k8s.ApiException) as err:
        apps.read_namespaced_deployment("nope", ns)
    assert err.value.status == 404
    assert status_of(err.value)["message"] == 'deployments.apps "nope" not found'

    apps.delete_namespaced_deployment("web", ns)
    assert apps.list_namespaced_deployment(ns).items == []


def test_invalid_workloads_get_422_with_the_field(api: k8s.ApiClient, ns: str) -> None:
    apps = k8s.AppsV1Api(api)
    with pytest.raises(k8s.ApiException) as err:
        apps.create_namespaced_deployment(ns, deployment("bad", labels={"app": "other"}))
    body = status_of(err.value)
    assert err.value.status == 422
    assert body["message"] == (
        'Deployment.apps "bad" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"other"}: `selector` does not match template `labels`'
    )
    apps.create_namespaced_deployment(ns, deployment("fixed"))
    with pytest.raises(k8s.ApiException) as err:
        apps.patch_namespaced_deployment("fixed", ns, {"spec": {"selector": {"matchLabels": {"tier": "x"}}}})
    assert err.value.status == 422
    assert "spec.selector" in status_of(err.value)["message"]
    # A wrong JSON type fails decoding, as for every built-in kind (sent raw: the client would refuse it).
    url = f"{api.configuration.host}/apis/apps/v1/namespaces/{ns}/deployments"
    code, body = http(url, method="POST", body=deployment("typed", replicas="two"))
    assert code == 400
    assert "cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32" in body["message"]

    job = {
        "metadata": {"name": "always"},
        "spec": {"template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "x"}]}}},
    }
    with pytest.raises(k8s.ApiException) as err:
        k8s.BatchV1Api(api).create_namespaced_job(ns, job)
    assert err.value.status == 422
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always"' in status_of(err.value)["message"]


def test_a_job_gets_a_generated_selector_and_labels(api: k8s.ApiClient, ns: str) -> None:
    job = {
        "metadata": {"name": "once"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}},
    }
    created = k8s.BatchV1Api(api).create_namespaced_job(ns, job)
    uid = created.metadata.uid
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    labels = created.spec.template.metadata.labels
    assert labels["batch.kubernetes.io/job-name"] == "once"
    assert labels["batch.kubernetes.io/controller-uid"] == uid
    assert (created.spec.completions, created.spec.parallelism, created.spec.backoff_limit) == (1, 1, 6)


def test_watching_deployments(api: k8s.ApiClient, ns: str) -> None:
    apps = k8s.AppsV1Api(api)
    events: list[tuple[str, str]] = []
    started = threading.Event()

    def run() -> None:
        w = watch.Watch()
        started.set()
        for e in w.stream(apps.list_namespaced_deployment, ns, timeout_seconds=5):
            events.append((e["type"], e["object"].metadata.name))
            if e["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=run)
    t.start()
    started.wait()
    apps.create_namespaced_deployment(ns, deployment("watched"))
    apps.patch_namespaced_deployment("watched", ns, {"spec": {"replicas": 2}})
    apps.delete_namespaced_deployment("watched", ns)
    t.join(10)
    assert [e for e in events if e[1] == "watched"] == [
        ("ADDED", "watched"),
        ("MODIFIED", "watched"),
        ("DELETED", "watched"),
    ]


def test_stored_policy_kinds_round_trip(api: k8s.ApiClient, ns: str) -> None:
    pdb = k8s.PolicyV1Api(api).create_namespaced_pod_disruption_budget(
        ns, {"metadata": {"name": "keep-one"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"a": "b"}}}}
    )
    assert pdb.spec.min_available == 1
    policy = {
        "metadata": {"name": "deny-all"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }
    created = k8s.NetworkingV1Api(api).create_namespaced_network_policy(ns, policy)
    assert created.spec.policy_types == ["Ingress", "Egress"]
    names = [p.metadata.name for p in k8s.NetworkingV1Api(api).list_namespaced_network_policy(ns).items]
    assert names == ["deny-all"]


def test_an_absent_group_answers_404_like_a_real_server(sandbox: Any, api: k8s.ApiClient) -> None:
    code, body = http(f"{sandbox.server.url}/apis/autoscaling/v2")
    assert code == 404
    assert body["message"] == "the server could not find the requested resource"
    code, body = http(f"{sandbox.server.url}/apis/storage.k8s.io/v1/namespaces/default/storageclasses")
    assert code == 404
