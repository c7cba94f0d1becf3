"""Authentication and authorization as kube-apiserver enforces them, through the official Python client.

Kubernetes docs followed: "Using RBAC Authorization" (Role/ClusterRole rules, RoleBinding scope,
resourceNames, aggregated ClusterRoles, default discovery roles), "Authenticating" → "Service account tokens"
and "User impersonation", "Checking API access" (SelfSubjectAccessReview), "Configure Service Accounts for
Pods" → "Bound service account token volume" (tokens bound to a pod carry its node and die with it), and
"Validating Admission Policy" (CEL validations, Deny/Warn actions, the 403 wording).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from apiserver_helpers import http
from kubernetes import client as k8s

RBAC = "rbac.authorization.k8s.io"


def _decode(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


@pytest.fixture
def service_account(api: k8s.ApiClient, ns: str) -> Callable[..., tuple[str, str]]:
    """Create a ServiceAccount in `ns` and request a token for it: (username, token)."""

    def make(name: str = "robot", pod: dict[str, Any] | None = None) -> tuple[str, str]:
        core = k8s.CoreV1Api(api)
        try:
            core.create_namespaced_service_account(ns, {"metadata": {"name": name}})
        except k8s.ApiException as exc:
            assert exc.status == 409
        spec: dict[str, Any] = {"expirationSeconds": 3600}
        if pod is not None:
            spec["boundObjectRef"] = {"kind": "Pod", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
        answer = core.create_namespaced_service_account_token(name, ns, {"spec": spec})
        return f"system:serviceaccount:{ns}:{name}", str(answer.status.token)

    return make


def client_for(api: k8s.ApiClient, token: str) -> k8s.ApiClient:
    cfg = k8s.Configuration()
    cfg.host = api.configuration.host
    cfg.ssl_ca_cert = api.configuration.ssl_ca_cert
    cfg.api_key = {"authorization": f"Bearer {token}"}
    return k8s.ApiClient(cfg)


def forbidden(exc: k8s.ApiException) -> dict[str, Any]:
    assert exc.status == 403, exc.body
    body: dict[str, Any] = json.loads(exc.body)
    assert body["kind"] == "Status"
    assert body["reason"] == "Forbidden"
    return body


def test_a_service_account_without_bindings_is_refused_in_the_servers_words(
    api: k8s.ApiClient, ns: str, service_account: Callable[..., tuple[str, str]]
) -> None:
    user, token = service_account()
    robot = k8s.CoreV1Api(client_for(api, token))
    with pytest.raises(k8s.ApiException) as err:
        robot.list_namespaced_pod(ns)
    body = forbidden(err.value)
    assert body["message"] == (
        f'pods is forbidden: User "{user}" cannot list resource "pods" in API group "" in the namespace "{ns}"'
    )
    assert body["details"] == {"kind": "pods"}
    with pytest.raises(k8s.ApiException) as err:
        robot.read_namespace(ns)
    assert forbidden(err.value)["message"] == (
        f'namespaces "{ns}" is forbidden: User "{user}" cannot get resource "namespaces" in API group "" '
        "at the cluster scope"
    )
    # Discovery and /version are open to every authenticated user (system:discovery, system:public-info-viewer).
    assert k8s.VersionApi(client_for(api, token)).get_code().git_version.startswith("v1.")
    assert any(g.name == "apps" for g in k8s.ApisApi(client_for(api, token)).get_api_versions().groups)


def test_a_rolebinding_grants_its_role_in_its_namespace_only(
    api: k8s.ApiClient, ns: str, service_account: Callable[..., tuple[str, str]]
) -> None:
    user, token = service_account()
    rbac = k8s.RbacAuthorizationV1Api(api)
    rules = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["allowed"]},
    ]
    rbac.create_namespaced_role(ns, {"metadata": {"name": "reader"}, "rules": rules})
    subject = {"kind": "ServiceAccount", "name": "robot", "namespace": ns}
    ref = {"apiGroup": RBAC, "kind": "Role", "name": "reader"}
    rbac.create_namespaced_role_binding(ns, {"metadata": {"name": "reader"}, "roleRef": ref, "subjects": [subject]})
    core = k8s.CoreV1Api(api)
    for name in ("allowed", "other"):
        core.create_namespaced_config_map(ns, {"metadata": {"name": name}})

    robot = k8s.CoreV1Api(client_for(api, token))
    assert robot.list_namespaced_pod(ns).items == []
    assert robot.read_namespaced_config_map("allowed", ns).metadata.name == "allowed"
    with pytest.raises(k8s.ApiException) as err:
        robot.read_namespaced_config_map("other", ns)
    assert forbidden(err.value)["details"] == {"kind": "configmaps", "name": "other"}
    with pytest.raises(k8s.ApiException) as err:  # resourceNames never grant list
        robot.list_namespaced_config_map(ns)
    forbidden(err.value)
    with pytest.raises(k8s.ApiException) as err:  # a RoleBinding does not reach other namespaces
        robot.list_namespaced_pod("default")
    assert 'in the namespace "default"' in forbidden(err.value)["message"]
    with pytest.raises(k8s.ApiException) as err:
        robot.create_namespaced_pod(
            ns, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
        )
    assert forbidden(err.value)["message"].startswith(f'pods is forbidden: User "{user}" cannot create resource')


def test_self_subject_access_review_and_impersonation(
    api: k8s.ApiClient, ns: str, service_account: Callable[..., tuple[str, str]]
) -> None:
    user, token = service_account()
    rbac = k8s.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "view"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": ns}],
        },
    )

    def review(client: k8s.ApiClient, verb: str, resource: str) -> bool:
        spec = {"resourceAttributes": {"namespace": ns, "verb": verb, "resource": resource}}
        answer = k8s.AuthorizationV1Api(client).create_self_subject_access_review({"spec": spec})
        return bool(answer.status.allowed)

    robot = client_for(api, token)
    assert review(robot, "list", "pods") is True  # view aggregates system:aggregate-to-view
    assert review(robot, "delete", "pods") is False
    assert review(robot, "get", "secrets") is False
    assert review(api, "delete", "pods") is True  # the admin (system:masters)

    # The admin may impersonate; the request then runs with the impersonated user's rights.
    as_robot = k8s.ApiClient(api.configuration)
    as_robot.set_default_header("Impersonate-User", user)
    assert review(as_robot, "list", "pods") is True
    assert review(as_robot, "delete", "pods") is False
    # The service account may not impersonate anyone.
    sneaky = client_for(api, token)
    sneaky.set_default_header("Impersonate-User", "kubernetes-admin")
    with pytest.raises(k8s.ApiException) as err:
        k8s.CoreV1Api(sneaky).list_namespaced_pod(ns)
    assert forbidden(err.value)["message"] == (
        f'users "kubernetes-admin" is forbidden: User "{user}" cannot impersonate resource "users" in API group "" '
        "at the cluster scope"
    )


def test_aggregated_cluster_roles_pick_up_labelled_roles(
    api: k8s.ApiClient, ns: str, service_account: Callable[..., tuple[str, str]]
) -> None:
    _, token = service_account()
    rbac = k8s.RbacAuthorizationV1Api(api)
    name = f"agg-{uuid.uuid4().hex[:6]}"
    rbac.create_cluster_role(
        {
            "metadata": {"name": name},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"example.com/aggregate-to-robot": "true"}}]},
            "rules": [],
        }
    )
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": ns}],
        },
    )
    robot = k8s.CoreV1Api(client_for(api, token))
    with pytest.raises(k8s.ApiException) as err:
        robot.list_namespaced_service(ns)
    forbidden(err.value)
    rbac.create_cluster_role(
        {
            "metadata": {"name": f"{name}-services", "labels": {"example.com/aggregate-to-robot": "true"}},
            "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["list"]}],
        }
    )
    assert robot.list_namespaced_service(ns).items == []


def test_a_pod_bound_token_carries_the_node_and_dies_with_the_pod(
    sandbox: Any, api: k8s.ApiClient, ns: str, service_account: Callable[..., tuple[str, str]]
) -> None:
    core = k8s.CoreV1Api(api)
    core.create_node({"metadata": {"name": f"n-{ns}"}})
    pod = core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "p"},
            "spec": {"nodeName": f"n-{ns}", "containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    user, token = service_account("robot", api.sanitize_for_serialization(pod))
    claims = _decode(token)
    assert claims["sub"] == user
    assert claims["kubernetes.io"]["pod"]["name"] == "p"
    assert claims["kubernetes.io"]["node"]["name"] == f"n-{ns}"
    review = k8s.AuthenticationV1Api(client_for(api, token)).create_self_subject_review({})
    assert review.status.user_info.extra["authentication.kubernetes.io/node-name"] == [f"n-{ns}"]
    assert "system:serviceaccounts" in review.status.user_info.groups

    core.delete_namespaced_pod("p", ns, grace_period_seconds=0)
    code, body = http(f"{sandbox.server.url}/api/v1/namespaces/{ns}/pods", token=token)
    assert code == 401
    assert body["reason"] == "Unauthorized"
    # Token requests are validated as the server does.
    with pytest.raises(k8s.ApiException) as err:
        core.create_namespaced_service_account_token("robot", ns, {"spec": {"expirationSeconds": 60}})
    assert err.value.status == 422
    assert "may not specify a duration less than 10 minutes" in json.loads(err.value.body)["message"]


def test_validating_admission_policies_deny_and_warn(api: k8s.ApiClient, ns: str) -> None:
    adm = k8s.AdmissionregistrationV1Api(api)
    name = f"no-secrets-in-cm-{uuid.uuid4().hex[:6]}"
    adm.create_validating_admission_policy(
        {
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["configmaps"],
                        }
                    ],
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                },
                "variables": [{"name": "data", "expression": "has(object.data) ? object.data : {}"}],
                "validations": [
                    {
                        "expression": "!('password' in variables.data)",
                        "reason": "Forbidden",
                        "messageExpression": "'configmap ' + object.metadata.name + ' holds a password'",
                    },
                    {"expression": "object.metadata.name.size() < 20", "message": "name too long"},
                ],
            },
        }
    )
    adm.create_validating_admission_policy_binding(
        {"metadata": {"name": name}, "spec": {"policyName": name, "validationActions": ["Deny"]}}
    )
    core = k8s.CoreV1Api(api)
    with pytest.raises(k8s.ApiException) as err:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "creds"}, "data": {"password": "x"}})
    body = forbidden(err.value)
    assert body["message"] == (
        f"configmaps \"creds\" is forbidden: ValidatingAdmissionPolicy '{name}' with binding '{name}' "
        "denied request: configmap creds holds a password"
    )
    with pytest.raises(k8s.ApiException) as err:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "a-very-long-configmap-name"}})
    assert err.value.status == 422  # no reason given: Invalid
    core.create_namespaced_config_map(ns, {"metadata": {"name": "fine"}, "data": {"user": "x"}})
    core.create_namespaced_config_map("default", {"metadata": {"name": f"elsewhere-{ns}"}, "data": {"password": "x"}})
    # Warn instead of Deny: the write goes through (with a Warning header).
    adm.patch_validating_admission_policy_binding(name, {"spec": {"validationActions": ["Warn"]}})
    code, created = http(
        f"{api.configuration.host}/api/v1/namespaces/{ns}/configmaps",
        method="POST",
        body={"metadata": {"name": "warned"}, "data": {"password": "x"}},
        raw=True,
    )
    assert code == 201, created


def test_a_kubelet_pod_token_is_valid_beyond_its_hour(api: k8s.ApiClient, ns: str) -> None:
    """--service-account-extend-token-expiration: a pod token of exactly 3607 s is honoured for a year."""
    core = k8s.CoreV1Api(api)
    pod = core.create_namespaced_pod(
        ns, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    )
    ref = {"kind": "Pod", "name": "p", "uid": pod.metadata.uid}
    answer = core.create_namespaced_service_account_token(
        "default", ns, {"spec": {"expirationSeconds": 3607, "boundObjectRef": ref}}
    )
    claims = _decode(answer.status.token)
    assert claims["exp"] - claims["iat"] == 365 * 24 * 3600
    assert claims["kubernetes.io"]["warnafter"] - claims["iat"] == 3607
    other = core.create_namespaced_service_account_token(
        "default", ns, {"spec": {"expirationSeconds": 3600, "boundObjectRef": ref}}
    )
    assert _decode(other.status.token)["exp"] - _decode(other.status.token)["iat"] == 3600
