"""Discovery, authentication and OpenAPI, with the real `kubernetes` client and kubectl.

Follows the Kubernetes API docs: "API Overview" → "Discovery API" (unaggregated /api, /apis, group-version
resource lists) and "OpenAPI interface definition"; "Authenticating" → bearer tokens (401 without one).
"""

from __future__ import annotations

from apiserver_helpers import TOKEN, http, unverified_get
from kubernetes import client as k8s


def test_version_and_groups(api: k8s.ApiClient, crds: None) -> None:
    assert k8s.VersionApi(api).get_code().major == "1"
    assert k8s.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = {g.name: g for g in k8s.ApisApi(api).get_api_versions().groups}
    assert {"apiextensions.k8s.io", "coordination.k8s.io", "events.k8s.io", "powertrain.dev"} <= set(groups)
    assert groups["powertrain.dev"].preferred_version.group_version == "powertrain.dev/v1alpha1"


def test_resource_lists_carry_verbs_short_names_categories_and_subresources(api: k8s.ApiClient, crds: None) -> None:
    core = {r.name: r for r in k8s.CoreV1Api(api).get_api_resources().resources}
    assert core["pods"].namespaced
    assert "watch" in core["pods"].verbs
    assert core["pods"].short_names == ["po"]
    assert not core["nodes"].namespaced
    assert core["pods/binding"].verbs == ["create"]
    assert core["pods/eviction"].kind == "Eviction"
    assert core["nodes/status"].verbs == ["get", "patch", "update"]
    custom = {r.name: r for r in k8s.CustomObjectsApi(api).get_api_resources("powertrain.dev", "v1alpha1").resources}
    assert custom["trainingjobs"].short_names == ["tj"]
    assert custom["trainingjobs"].categories == ["powertrain"]
    assert "trainingjobs/status" in custom
    assert custom["trainingjobs/scale"].group == "autoscaling"


def test_requests_without_the_token_get_401_status(sandbox) -> None:  # type: ignore[no-untyped-def]
    status, body = unverified_get(sandbox.server.url + "/api/v1/namespaces")
    assert status == 401
    assert body["kind"] == "Status"
    assert body["reason"] == "Unauthorized"
    assert body["code"] == 401
    status, _ = unverified_get(sandbox.server.url + "/api/v1/namespaces", token="wrong")
    assert status == 401
    status, _ = unverified_get(sandbox.server.url + "/healthz", raw=True)
    assert status == 200


def test_unknown_resource_is_404_status(sandbox) -> None:  # type: ignore[no-untyped-def]
    status, body = http(sandbox.server.url + "/api/v1/frobnicators")
    assert status == 404
    assert body["kind"] == "Status"
    assert body["reason"] == "NotFound"
    status, body = http(sandbox.server.url + "/api/v1/namespaces/default", method="POST", body={})
    assert status == 405
    assert body["reason"] == "MethodNotAllowed"


def test_openapi_v3_lists_group_versions_with_schemas(sandbox, crds: None) -> None:  # type: ignore[no-untyped-def]
    status, root = unverified_get(sandbox.server.url + "/openapi/v3", token=TOKEN)
    assert status == 200
    url = root["paths"]["apis/powertrain.dev/v1alpha1"]["serverRelativeURL"]
    status, doc = unverified_get(sandbox.server.url + url, token=TOKEN)
    schema = doc["components"]["schemas"]["dev.powertrain.v1alpha1.TrainingJob"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "powertrain.dev", "version": "v1alpha1", "kind": "TrainingJob"}
    ]
    assert "replicas" in schema["properties"]["spec"]["properties"]


def test_kubectl_api_resources_and_explain(kubectl, crds: None) -> None:  # type: ignore[no-untyped-def]
    out = kubectl("api-resources", "--api-group=powertrain.dev", "-o", "wide").stdout
    assert "trainingjobs" in out
    assert "tj" in out
    assert "TrainingJob" in out
    explained = kubectl("explain", "trainingjob.spec.topology").stdout
    assert "level" in explained
    assert "mode" in explained
