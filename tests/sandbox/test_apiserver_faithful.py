"""Where a lenient sandbox would let tests pass that fail on a cluster: it answers as kube-apiserver does.

Follows the Kubernetes docs: "Extend the Kubernetes API with CustomResourceDefinitions" → "Subresources" →
"Status subresource" (status on create is dropped); "Pod Lifecycle" (a pod starts Pending: its status is the
kubelet's to write); "API Concepts" → "Field validation" (built-in kinds decode into typed structs: 400 for a
wrong JSON type, unknown fields refused under Strict) and "Responses" (422 Invalid with causes, 413
RequestEntityTooLarge above the 3 MiB `--max-request-body-bytes`); "Containers" → container ports and names,
"Resource Management for Pods and Containers" → quantities, requests and limits, extended resources; "Labels
and Selectors" / "Annotations" → "Syntax and character set" (63-character names and values, 256 KiB of
annotations in total); "kubectl" → "resource types" (an unknown resource or kind).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from apiserver_helpers import crd, http

GROUP = "faithful.example.com"


def _pods(sandbox: Any, ns: str = "default") -> str:
    return f"{sandbox.server.url}/api/v1/namespaces/{ns}/pods"


def _pod(name: str, container: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    main = {"name": "main", "image": "busybox:1.36"} | (container or {})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [main], **spec}}


@pytest.fixture(scope="module")
def gadgets(sandbox: Any) -> str:
    """A namespaced custom resource with a status subresource and one without, both keeping unknown fields."""
    url = f"{sandbox.server.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for plural, kind, status in (("gadgets", "Gadget", True), ("widgets", "Widget", False)):
        code, body = http(url, method="POST", body=crd(GROUP, plural, kind, status_subresource=status))
        assert code == 201, body
    return f"{sandbox.server.url}/apis/{GROUP}/v1/namespaces/default"


# Status on create.


def test_status_sent_on_create_is_dropped_with_a_status_subresource(sandbox: Any, gadgets: str) -> None:
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"n": 1}}
    code, created = http(f"{gadgets}/gadgets", method="POST", body=body | {"status": {"phase": "Done"}})
    assert code == 201
    assert "status" not in created
    assert "status" not in http(f"{gadgets}/gadgets/g")[1]
    # Updating the main resource cannot write status either; only /status can.
    current = http(f"{gadgets}/gadgets/g")[1]
    code, updated = http(f"{gadgets}/gadgets/g", method="PUT", body=current | {"status": {"phase": "Done"}})
    assert code == 200
    assert "status" not in updated
    code, updated = http(f"{gadgets}/gadgets/g/status", method="PUT", body=updated | {"status": {"phase": "Done"}})
    assert (code, updated["status"]) == (200, {"phase": "Done"})
    # Without the subresource, status is an ordinary field and is kept.
    widget = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": {"phase": "Done"}}
    assert http(f"{gadgets}/widgets", method="POST", body=widget)[1]["status"] == {"phase": "Done"}


def test_a_pod_created_with_a_status_starts_pending(sandbox: Any) -> None:
    body = _pod("claims-running") | {"status": {"phase": "Running", "podIP": "10.0.0.9", "hostIP": "10.1.0.1"}}
    code, created = http(_pods(sandbox), method="POST", body=body)
    assert code == 201
    assert created["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


# Pod specs: decoding (400) and validation (422).


@pytest.mark.parametrize(
    ("pod", "message"),
    [
        (
            _pod("p", {"ports": [{"containerPort": "80"}]}),
            'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field '
            "ContainerPort.spec.containers.ports.containerPort of type int32",
        ),
        (
            _pod("p", {"env": {"A": "1"}}),
            'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal object into Go struct field '
            "Container.spec.containers.env of type []v1.EnvVar",
        ),
        (
            _pod("p", {"ports": [80]}),
            "json: cannot unmarshal number into Go struct field Container.spec.containers.ports of type "
            "v1.ContainerPort",
        ),
        (
            _pod("p", terminationGracePeriodSeconds="30"),
            "json: cannot unmarshal string into Go struct field PodSpec.spec.terminationGracePeriodSeconds of type "
            "int64",
        ),
        (
            _pod("p", {"ports": [{"containerPort": 3_000_000_000}]}),
            "json: cannot unmarshal number 3000000000 into Go struct field "
            "ContainerPort.spec.containers.ports.containerPort of type int32",
        ),
        (
            _pod("p", {"resources": {"limits": {"cpu": "lots"}}}),
            'Pod in version "v1" cannot be handled as a Pod: quantities must match the regular expression '
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ),
        (
            _pod("p", {"resources": {"limits": {"memory": "1Mk"}}}),
            "cannot be handled as a Pod: unable to parse quantity's suffix",
        ),
    ],
)
def test_wrong_types_in_a_pod_fail_decoding_with_400(sandbox: Any, pod: dict[str, Any], message: str) -> None:
    code, body = http(_pods(sandbox), method="POST", body=pod)
    assert (code, body["reason"]) == (400, "BadRequest")
    assert message in body["message"]
    assert http(f"{_pods(sandbox)}/p")[0] == 404


@pytest.mark.parametrize(
    ("pod", "field", "message"),
    [
        (
            _pod("p", {"ports": [{"containerPort": 70000}]}),
            "spec.containers[0].ports[0].containerPort",
            'Pod "p" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 '
            "and 65535, inclusive",
        ),
        (_pod("p", {"ports": [{}]}), "spec.containers[0].ports[0].containerPort", "Required value"),
        (
            _pod("p", {"ports": [{"containerPort": 80, "hostPort": 0, "protocol": "HTTP"}]}),
            "spec.containers[0].ports[0].protocol",
            'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
        ),
        (
            _pod("p", terminationGracePeriodSeconds=-1),
            "spec.terminationGracePeriodSeconds",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            _pod("p", activeDeadlineSeconds=0),
            "spec.activeDeadlineSeconds",
            "Invalid value: 0: must be between 1 and 2147483647, inclusive",
        ),
        (
            _pod("p", restartPolicy="Sometimes"),
            "spec.restartPolicy",
            'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
        ),
        (
            _pod("p", {"name": "Main_1"}),
            "spec.containers[0].name",
            'Invalid value: "Main_1": a lowercase RFC 1123 label must consist of lower case alphanumeric characters',
        ),
        (_pod("p", {"image": ""}), "spec.containers[0].image", "Required value"),
        (_pod("p", {"imagePullPolicy": "Sometimes"}), "spec.containers[0].imagePullPolicy", "Unsupported value"),
        (_pod("p", {"env": [{"value": "1"}]}), "spec.containers[0].env[0].name", "Required value"),
        (
            _pod("p", {"env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}),
            "spec.containers[0].env[0].valueFrom",
            "may not be specified when `value` is not empty",
        ),
        (
            _pod("p", {"resources": {"requests": {"cpu": "-1"}}}),
            "spec.containers[0].resources.requests[cpu]",
            'Invalid value: "-1": must be greater than or equal to 0',
        ),
        (
            _pod("p", {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}),
            "spec.containers[0].resources.requests",
            'Invalid value: "2": must be less than or equal to cpu limit of 1',
        ),
        (
            _pod("p", {"resources": {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "2"}}}),
            "spec.containers[0].resources.requests",
            'Invalid value: "1": must be equal to nvidia.com/gpu limit of 2',
        ),
        (
            _pod("p", {"resources": {"requests": {"nvidia.com/gpu": "1"}}}),
            "spec.containers[0].resources.limits",
            "Required value: Limit must be set for non overcommitable resources",
        ),
        (
            _pod("p", {"resources": {"limits": {"nvidia.com/gpu": "500m"}}}),
            "spec.containers[0].resources.limits[nvidia.com/gpu]",
            "must be an integer",
        ),
    ],
)
def test_invalid_pod_specs_get_422_with_the_field(sandbox: Any, pod: dict[str, Any], field: str, message: str) -> None:
    code, body = http(_pods(sandbox), method="POST", body=pod)
    assert (code, body["reason"]) == (422, "Invalid"), body
    assert field in [c["field"] for c in body["details"]["causes"]]
    assert message in body["message"]
    assert http(f"{_pods(sandbox)}/p")[0] == 404


def test_duplicate_container_names_across_init_and_app_containers(sandbox: Any) -> None:
    pod = _pod("p", initContainers=[{"name": "main", "image": "busybox:1.36"}])
    code, body = http(_pods(sandbox), method="POST", body=pod)
    assert code == 422
    assert 'spec.containers[0].name: Duplicate value: "main"' in body["message"]


def test_several_errors_are_listed_as_the_api_server_aggregates_them(sandbox: Any) -> None:
    code, body = http(_pods(sandbox), method="POST", body=_pod("p", {"image": ""}, restartPolicy="Sometimes"))
    assert code == 422
    assert body["message"] == (
        'Pod "p" is invalid: [spec.containers[0].image: Required value, spec.restartPolicy: Unsupported value: '
        '"Sometimes": supported values: "Always", "OnFailure", "Never"]'
    )


def test_a_valid_pod_with_every_checked_field_is_accepted(sandbox: Any) -> None:
    container = {
        "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 29500, "protocol": "UDP"}],
        "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "resources": {"limits": {"cpu": 2, "memory": "1Gi", "nvidia.com/gpu": 8}, "requests": {"cpu": "500m"}},
    }
    pod = _pod("ok", container, terminationGracePeriodSeconds=0, activeDeadlineSeconds=60, restartPolicy="Never")
    code, created = http(_pods(sandbox), method="POST", body=pod)
    assert code == 201, created
    assert created["spec"]["containers"][0]["ports"][0]["protocol"] == "TCP"  # defaulted, as the server does


def test_unknown_fields_in_built_in_kinds_are_dropped_or_refused_when_strict(sandbox: Any) -> None:
    pod = _pod("typo", {"imagePullPolcy": "Always"})
    code, body = http(_pods(sandbox) + "?fieldValidation=Strict", method="POST", body=pod)
    assert code == 400
    assert body["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field '
        '"spec.containers[0].imagePullPolcy"'
    )
    code, created = http(_pods(sandbox), method="POST", body=pod)
    assert code == 201
    assert "imagePullPolcy" not in created["spec"]["containers"][0]


# Sizes.


def test_a_request_body_over_3_mib_is_413(sandbox: Any) -> None:
    url = f"{sandbox.server.url}/api/v1/namespaces/default/configmaps"
    body = {"metadata": {"name": "big"}, "data": {"x": "a" * (3 * 1024 * 1024)}}
    code, status = http(url, method="POST", body=body)
    assert (code, status["reason"]) == (413, "RequestEntityTooLarge")
    assert status["message"] == "Request entity too large: limit is 3145728"
    assert http(f"{url}/big")[0] == 404
    small = {"metadata": {"name": "big"}, "data": {"x": "a" * (1024 * 1024)}}
    assert http(url, method="POST", body=small)[0] == 201


def test_annotations_over_256_kib_in_total_are_422(sandbox: Any) -> None:
    url = f"{sandbox.server.url}/api/v1/namespaces/default/configmaps"
    half = "a" * (128 * 1024)
    code, body = http(url, method="POST", body={"metadata": {"name": "ann", "annotations": {"a": half, "b": half}}})
    assert code == 422
    assert (
        body["message"] == 'ConfigMap "ann" is invalid: metadata.annotations: Too long: must have at most 262144 bytes'
    )
    assert body["details"]["causes"][0]["reason"] == "FieldValueTooLong"
    fits = {"a": half, "b": half[:-2]}  # keys count: 1 + 1 + 2 * 128 KiB - 2 bytes is exactly the limit
    assert http(url, method="POST", body={"metadata": {"name": "ann", "annotations": fits}})[0] == 201


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"app": "v" * 64}, f'metadata.labels: Invalid value: "{"v" * 64}": must be no more than 63 characters'),
        ({"k" * 64: "v"}, "name part must be no more than 63 characters"),
        ({"app": "has space"}, "a valid label must be an empty string or consist of alphanumeric characters"),
        ({"Bad.Prefix/app": "v"}, "prefix part a lowercase RFC 1123 subdomain must consist of"),
        ({"a/b/c": "v"}, "a qualified name must consist of alphanumeric characters"),
    ],
)
def test_invalid_labels_are_422(sandbox: Any, labels: dict[str, str], message: str) -> None:
    url = f"{sandbox.server.url}/api/v1/namespaces/default/configmaps"
    code, body = http(url, method="POST", body={"metadata": {"name": "lab", "labels": labels}})
    assert code == 422
    assert message in body["message"]
    assert body["details"]["causes"][0]["field"] == "metadata.labels"


# Deep nesting.


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("content_type", ["application/json", "application/yaml"])
def test_a_body_nested_10000_deep_is_400_and_the_server_keeps_serving(sandbox: Any, content_type: str) -> None:
    url = f"{sandbox.server.url}/api/v1/namespaces/default/configmaps"
    deep = b"[" * 10_000 + b"]" * 10_000
    body = b'{"metadata": {"name": "deep"}, "data": ' + deep + b"}"
    code, status = http(url, method="POST", body=body, content_type=content_type)
    assert (code, status["reason"]) == (400, "BadRequest")
    assert "exceeded max depth" in status["message"]
    assert http(url)[0] == 200


def test_deep_custom_resources_are_refused_or_round_trip_never_500(sandbox: Any, gadgets: str) -> None:
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "deep"}, "spec": _nested(250)}
    code, created = http(f"{gadgets}/widgets", method="POST", body=body)
    assert code == 201, created
    patch = {"spec": _nested(250)}
    code, _ = http(f"{gadgets}/widgets/deep", method="PATCH", body=patch, content_type="application/merge-patch+json")
    assert code == 200
    assert http(f"{gadgets}/widgets/deep")[0] == 200
    assert http(f"{gadgets}/widgets")[0] == 200
    too_deep = b'{"a":' * 2_000 + b'"leaf"' + b"}" * 2_000  # built by hand: json.dumps cannot go this deep
    head = json.dumps(body | {"spec": None}).encode()
    code, status = http(f"{gadgets}/widgets", method="POST", body=head.replace(b"null", too_deep))
    assert code == 400
    assert "exceeded max depth" in status["message"]


# Unknown resources and kinds.


def test_an_unknown_resource_is_the_routers_404(sandbox: Any) -> None:
    code, body = http(f"{sandbox.server.url}/api/v1/namespaces/default/foos")
    assert code == 404
    assert body["reason"] == "NotFound"
    assert body["message"] == "the server could not find the requested resource"


def test_kubectl_on_an_unknown_resource_and_kind(kubectl: Any, gadgets: str) -> None:
    got = kubectl("get", "foos", check=False)
    assert got.returncode != 0
    assert 'error: the server doesn\'t have a resource type "foos"' in got.stderr
    manifest = {"apiVersion": f"{GROUP}/v1", "kind": "Sprocket", "metadata": {"name": "s"}}
    applied = kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False)
    assert applied.returncode != 0
    assert f'no matches for kind "Sprocket" in version "{GROUP}/v1"' in applied.stderr


def test_kubectl_apply_reports_an_invalid_pod_as_a_cluster_would(kubectl: Any) -> None:
    manifest = _pod("kp", {"ports": [{"containerPort": 70000}]})
    applied = kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False)
    assert applied.returncode != 0
    assert (
        'The Pod "kp" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between '
        "1 and 65535, inclusive" in applied.stderr
    )
    typed = _pod("kp", {"ports": [{"containerPort": "http"}]})
    applied = kubectl("apply", "-f", "-", input=json.dumps(typed), check=False)
    assert applied.returncode != 0
    assert "cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports.containerPort" in (
        applied.stderr
    )


def test_yaml_aliases_that_expand_exponentially_or_loop_are_400_at_once(sandbox: Any) -> None:
    """CVE-2019-11253 ("billion laughs"): the real YAML decoder refuses excessive aliasing."""
    url = f"{sandbox.server.url}/api/v1/namespaces/default/configmaps"
    lines = ["metadata: {name: laughs}", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    code, status = http(url, method="POST", body="\n".join(lines).encode(), content_type="application/yaml")
    assert (code, status["reason"]) == (400, "BadRequest")
    assert "excessive aliasing" in status["message"]
    loop = b"metadata: {name: loop}\ndata: &d {x: *d}"
    code, status = http(url, method="POST", body=loop, content_type="application/yaml")
    assert code == 400
    shared = b"metadata: {name: shared, labels: &l {app: x}, annotations: *l}"
    code, created = http(url, method="POST", body=shared, content_type="application/yaml")
    assert code == 201
    assert created["metadata"]["annotations"] == {"app": "x"}


def test_kubectl_apply_of_a_typo_in_a_pod_fails_as_on_a_cluster(kubectl: Any) -> None:
    """kubectl sends fieldValidation=Strict by default: a misspelt field is an error, `--validate=warn` a warning."""
    manifest = json.dumps(_pod("typo-k", {"imagePullPolcy": "Always"}))
    applied = kubectl("apply", "-f", "-", input=manifest, check=False)
    assert applied.returncode != 0
    assert 'strict decoding error: unknown field "spec.containers[0].imagePullPolcy"' in applied.stderr
    warned = kubectl("apply", "--validate=warn", "-f", "-", input=manifest)
    assert "unknown field" in warned.stderr
    stored = json.loads(kubectl("get", "pod", "typo-k", "-o", "json").stdout)
    assert "imagePullPolcy" not in stored["spec"]["containers"][0]
