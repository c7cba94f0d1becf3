"""CustomResourceDefinitions and custom resources, with Powertrain's own CRDs from crds/.

Follows the Kubernetes docs "Extend the Kubernetes API with CustomResourceDefinitions": "Specifying a structural
schema", "Field pruning", "Defaulting", "Validation rules" (x-kubernetes-validations, CEL, transition rules with
oldSelf), "Subresources" (status: generation moves with spec only; scale), "Additional printer columns";
and "API Concepts" → "Receiving resources as Tables".
"""

from __future__ import annotations

import json

import pytest
from apiserver_helpers import crd, http
from kubernetes import client as k8s

GROUP, VERSION = "powertrain.dev", "v1alpha1"


def _tj(name: str, **spec: object) -> dict[str, object]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"name": "t", "image": "img:1"}]}}, **spec},
    }


def _co(api: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api)


def test_defaults_applied_and_unknown_fields_pruned(api: k8s.ApiClient, ns: str, crds: None) -> None:
    created = _co(api).create_namespaced_custom_object(
        GROUP, VERSION, ns, "trainingjobs", _tj("a", gpuPerReplica=4, replicas=2)
    )
    spec = created["spec"]
    assert spec["replicas"] == 2
    # Not defaulted by the server: the operator takes the template's nvidia.com/gpu (else 1) when it is absent.
    assert "gpusPerReplica" not in spec
    assert "gpuPerReplica" not in spec  # the misspelt field was pruned
    assert spec["topology"] == {"level": "rack", "mode": "Preferred"}


def test_strict_field_validation_rejects_unknown_fields(api: k8s.ApiClient, ns: str, crds: None) -> None:
    with pytest.raises(k8s.ApiException) as err:
        _co(api).create_namespaced_custom_object(
            GROUP, VERSION, ns, "trainingjobs", _tj("b", gpuPerReplica=4), field_validation="Strict"
        )
    assert err.value.status == 400
    assert 'unknown field "spec.gpuPerReplica"' in json.loads(err.value.body)["message"]


def test_schema_violations_are_invalid_with_field_causes(api: k8s.ApiClient, ns: str, crds: None) -> None:
    with pytest.raises(k8s.ApiException) as err:
        _co(api).create_namespaced_custom_object(
            GROUP, VERSION, ns, "trainingjobs", _tj("c", replicas=0, topology={"level": "galaxy"})
        )
    body = json.loads(err.value.body)
    assert err.value.status == 422
    assert body["reason"] == "Invalid"
    fields = {c["field"]: c["message"] for c in body["details"]["causes"]}
    assert "greater than or equal to 1" in fields["spec.replicas"]
    assert '"galaxy"' in fields["spec.topology.level"]
    assert '"rack"' in fields["spec.topology.level"]


def test_cel_rule_rejects_with_its_message(api: k8s.ApiClient, ns: str, crds: None) -> None:
    with pytest.raises(k8s.ApiException) as err:
        _co(api).create_namespaced_custom_object(
            GROUP, VERSION, ns, "trainingjobs", _tj("d", replicas=9, elastic={"minReplicas": 1, "maxReplicas": 4})
        )
    body = json.loads(err.value.body)
    assert err.value.status == 422
    assert body["details"]["causes"][0]["field"] == "spec.replicas"
    assert "replicas must lie within elastic.minReplicas and elastic.maxReplicas" in body["message"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"runPolicy": {"activeDeadlineSeconds": 300_000_000_000}}, "spec.runPolicy.activeDeadlineSeconds"),
        (
            {"template": {"spec": {"nodeName": "n1", "containers": [{"name": "t", "image": "i"}]}}},
            "nodeName must not be set: the operator places the whole gang",
        ),
        (
            {"template": {"spec": {"schedulerName": "volcano", "containers": [{"name": "t", "image": "i"}]}}},
            "schedulerName must be unset or 'powertrain'",
        ),
    ],
    ids=["huge-deadline", "nodeName", "schedulerName"],
)
def test_the_api_server_refuses_absurd_numbers_and_placement_bypasses(
    api: k8s.ApiClient, ns: str, crds: None, spec: dict[str, object], expected: str
) -> None:
    with pytest.raises(k8s.ApiException) as err:
        _co(api).create_namespaced_custom_object(GROUP, VERSION, ns, "trainingjobs", _tj("f", **spec))
    assert err.value.status == 422
    assert expected in json.loads(err.value.body)["message"]


def test_transition_rules_see_old_self(api: k8s.ApiClient, crds: None) -> None:
    ext = k8s.ApiextensionsV1Api(api)
    size = {
        "type": "integer",
        "x-kubernetes-validations": [{"rule": "self >= oldSelf", "message": "size may only grow"}],
    }
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": size}}}}
    ext.create_custom_resource_definition(
        crd("test.dev", "widgets", "Widget", scope="Cluster", singular="widget", schema=schema)
    )
    co = _co(api)
    co.create_cluster_custom_object("test.dev", "v1", "widgets", {"metadata": {"name": "w"}, "spec": {"size": 2}})
    co.patch_cluster_custom_object("test.dev", "v1", "widgets", "w", {"spec": {"size": 3}})
    with pytest.raises(k8s.ApiException) as err:
        co.patch_cluster_custom_object("test.dev", "v1", "widgets", "w", {"spec": {"size": 1}})
    assert "size may only grow" in json.loads(err.value.body)["message"]
    ext.delete_custom_resource_definition("widgets.test.dev")
    with pytest.raises(k8s.ApiException) as gone:
        co.get_cluster_custom_object("test.dev", "v1", "widgets", "w")
    assert gone.value.status == 404


def test_non_structural_crd_is_rejected(api: k8s.ApiClient) -> None:
    with pytest.raises(k8s.ApiException) as err:
        k8s.ApiextensionsV1Api(api).create_custom_resource_definition(
            crd(
                "test.dev",
                "gadgets",
                "Gadget",
                schema={"type": "object", "properties": {"spec": {"properties": {"x": {"type": "string"}}}}},
            )
        )
    assert err.value.status == 422
    cause = json.loads(err.value.body)["details"]["causes"][0]
    assert cause["field"] == "spec.versions[0].schema.openAPIV3Schema.properties[spec].type"
    assert cause["message"] == "Required value: must not be empty"


def test_status_subresource_and_generation(api: k8s.ApiClient, ns: str, crds: None) -> None:
    co = _co(api)
    co.create_namespaced_custom_object(GROUP, VERSION, ns, "trainingjobs", _tj("e"))
    # Status written through the main resource is ignored; through /status it sticks, without a new generation.
    ignored = co.patch_namespaced_custom_object(
        GROUP, VERSION, ns, "trainingjobs", "e", {"status": {"phase": "Running"}}
    )
    assert "status" not in ignored
    assert ignored["metadata"]["generation"] == 1
    st = co.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, "trainingjobs", "e", {"status": {"phase": "Running", "observedGeneration": 1}}
    )
    assert st["status"]["phase"] == "Running"
    assert st["metadata"]["generation"] == 1
    spec = co.patch_namespaced_custom_object(GROUP, VERSION, ns, "trainingjobs", "e", {"spec": {"priority": 7}})
    assert spec["metadata"]["generation"] == 2
    assert spec["status"]["phase"] == "Running"


def test_scale_subresource(api: k8s.ApiClient, ns: str, crds: None) -> None:
    co = _co(api)
    co.create_namespaced_custom_object(GROUP, VERSION, ns, "trainingjobs", _tj("f", replicas=2))
    scale = co.get_namespaced_custom_object_scale(GROUP, VERSION, ns, "trainingjobs", "f")
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 2
    co.patch_namespaced_custom_object_scale(GROUP, VERSION, ns, "trainingjobs", "f", {"spec": {"replicas": 5}})
    tj = co.get_namespaced_custom_object(GROUP, VERSION, ns, "trainingjobs", "f")
    assert tj["spec"]["replicas"] == 5
    assert tj["metadata"]["generation"] == 2


def test_table_uses_printer_columns(sandbox, api: k8s.ApiClient, ns: str, crds: None) -> None:  # type: ignore[no-untyped-def]
    co = _co(api)
    co.create_namespaced_custom_object(GROUP, VERSION, ns, "trainingjobs", _tj("g", replicas=3))
    co.patch_namespaced_custom_object_status(GROUP, VERSION, ns, "trainingjobs", "g", {"status": {"phase": "Running"}})
    _, table = http(
        f"{sandbox.server.url}/apis/{GROUP}/{VERSION}/namespaces/{ns}/trainingjobs",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
    )
    assert table["kind"] == "Table"
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[:3] == ["Name", "Phase", "Replicas"]
    assert table["rows"][0]["cells"][:3] == ["g", "Running", 3]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_kubectl_apply_defaults_prunes_and_rejects(kubectl, ns: str, crds: None) -> None:  # type: ignore[no-untyped-def]
    good = f"""
apiVersion: {GROUP}/{VERSION}
kind: TrainingJob
metadata: {{name: llm, namespace: {ns}}}
spec:
  replicas: 2
  gpusPerReplica: 8
  surprise: 1
  template: {{spec: {{containers: [{{name: t, image: "img:1"}}]}}}}
"""
    kubectl("apply", "--validate=false", "-f", "-", input=good)
    got = json.loads(kubectl("-n", ns, "get", "tj", "llm", "-o", "json").stdout)
    assert got["spec"]["gpusPerReplica"] == 8
    assert got["spec"]["power"] == {"mode": "Balanced"}
    assert "surprise" not in got["spec"]
    strict = kubectl("apply", "-f", "-", input=good.replace("llm", "llm2"), check=False)
    assert strict.returncode != 0
    assert 'unknown field "spec.surprise"' in strict.stderr
    bad = good.replace("name: llm", "name: bad").replace(
        "  surprise: 1\n", "  elastic: {minReplicas: 1, maxReplicas: 1}\n"
    )
    rejected = kubectl("apply", "-f", "-", input=bad, check=False)
    assert rejected.returncode != 0
    assert "replicas must lie within elastic.minReplicas and elastic.maxReplicas" in rejected.stderr
    table = kubectl("-n", ns, "get", "tj").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "PHASE", "REPLICAS"]
    assert table[1].split()[:2] == ["llm", "2"]


def test_generation_without_status_subresource_counts_every_change(api: k8s.ApiClient, crds: None) -> None:
    ext = k8s.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(crd("test.dev", "plain", "Plain", scope="Cluster"))
    co = _co(api)
    co.create_cluster_custom_object("test.dev", "v1", "plain", {"metadata": {"name": "p"}, "spec": {"a": 1}})
    out = co.patch_cluster_custom_object("test.dev", "v1", "plain", "p", {"status": {"ok": True}})
    assert out["status"] == {"ok": True}  # no status subresource: status is part of the object
    assert out["metadata"]["generation"] == 2
    out = co.patch_cluster_custom_object("test.dev", "v1", "plain", "p", {"metadata": {"labels": {"x": "y"}}})
    assert out["metadata"]["generation"] == 2
    ext.delete_custom_resource_definition("plain.test.dev")


def test_every_served_version_reads_the_same_objects(api: k8s.ApiClient, ns: str) -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {"n": {"type": "integer"}}}}}
    k8s.ApiextensionsV1Api(api).create_custom_resource_definition(
        crd("multi.dev", "things", "Thing", schema=schema, versions=("v1beta1", "v1"))
    )
    co = _co(api)
    co.create_namespaced_custom_object(
        "multi.dev", "v1beta1", ns, "things", {"metadata": {"name": "t"}, "spec": {"n": 1}}
    )
    assert co.get_namespaced_custom_object("multi.dev", "v1", ns, "things", "t")["apiVersion"] == "multi.dev/v1"
    old = co.get_namespaced_custom_object("multi.dev", "v1beta1", ns, "things", "t")
    assert old["apiVersion"] == "multi.dev/v1beta1"
    assert old["spec"] == {"n": 1}
    groups = {g.name: g for g in k8s.ApisApi(api).get_api_versions().groups}
    assert groups["multi.dev"].preferred_version.version == "v1"  # the storage version
    k8s.ApiextensionsV1Api(api).delete_custom_resource_definition("things.multi.dev")
