"""The pod template cannot go around the operator: nodeName, another scheduler, pod (anti-)affinity and GPUs
that disagree with gpusPerReplica are refused with one message, the same in the CRD and in local validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from powertrain.api import InvalidObject, TrainingJob, parse
from powertrain.api.common import _compiled, _guard, evaluate_rule
from powertrain.api.crdgen import CRDS, crd_manifest
from powertrain.api.trainingjob import PodSpec, TrainingJobSpec
from powertrain.core.snapshot import ClusterSnapshot
from powertrain.core.workload import render_pod

GPU = "nvidia.com/gpu"


def _job(gpus: int | None = None, **pod_spec: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "template": {"spec": {"containers": [{"name": "trainer", "image": "img"}], **copy.deepcopy(pod_spec)}}
    }
    if gpus is not None:
        spec["gpusPerReplica"] = gpus
    return {"apiVersion": "powertrain.dev/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "llm"}, "spec": spec}


def _trainer(resources: dict[str, Any], name: str = "trainer") -> dict[str, Any]:
    return {"name": name, "image": "img", "resources": resources}


def _error(obj: dict[str, Any]) -> str:
    with pytest.raises(InvalidObject) as exc:
        parse(TrainingJob, obj)
    return str(exc.value)


def test_absent_gpus_per_replica_takes_the_templates_number() -> None:
    job = parse(TrainingJob, _job(containers=[_trainer({"limits": {GPU: "4"}, "requests": {GPU: 4}})]))
    assert job.spec.gpus_per_replica == 4
    job.metadata.update(name="llm", namespace="ns")
    pod = render_pod(job, 0, 1)
    assert pod["spec"]["containers"][0]["resources"]["limits"][GPU] == "4"
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["PET_NPROC_PER_NODE"] == "4"
    assert parse(TrainingJob, _job()).spec.gpus_per_replica == 1  # no GPUs anywhere: one, as before


def test_the_crd_no_longer_defaults_gpus_per_replica() -> None:
    # A server-side default of 1 would turn every template-only job into a conflict.
    info = next(i for i in CRDS if i.kind == "TrainingJob")
    spec = crd_manifest(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "default" not in spec["properties"]["gpusPerReplica"]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            _job(4, containers=[_trainer({"limits": {GPU: 8}})]),
            "spec.gpusPerReplica: gpusPerReplica is 4 but template.spec.containers[0] (trainer) asks for "
            "nvidia.com/gpu: 8",
        ),
        (
            _job(containers=[_trainer({"limits": {GPU: 8}, "requests": {GPU: 4}})]),
            "spec.template.spec.containers[0].resources: nvidia.com/gpu requests (4) and limits (8) differ",
        ),
        (
            _job(containers=[_trainer({"limits": {GPU: "1.5"}})]),
            "spec.template.spec.containers[0].resources.limits: nvidia.com/gpu: '1.5' is invalid: must be a whole",
        ),
        (
            _job(8, containers=[_trainer({}), _trainer({"limits": {GPU: 1}}, "monitor")]),
            "spec.template.spec.containers[1].resources: template.spec.containers[1] (monitor) asks for "
            "nvidia.com/gpu: 1: only the first container gets GPUs",
        ),
        (
            _job(8, initContainers=[{**_trainer({"limits": {GPU: 1}}, "side"), "restartPolicy": "Always"}]),
            "spec.template.spec.initContainers[0].resources: template.spec.initContainers[0] (side) is a sidecar",
        ),
        (
            _job(2, initContainers=[_trainer({"limits": {GPU: 4}}, "warmup")]),
            "more than gpusPerReplica (2)",
        ),
    ],
    ids=["conflict", "requests-vs-limits", "fractional", "gpu-sidecar", "gpu-init-sidecar", "init-too-many"],
)
def test_gpus_in_the_template_that_disagree_are_refused_naming_both(obj: dict[str, Any], expected: str) -> None:
    assert expected in _error(obj)


def test_an_init_container_may_use_the_workers_gpus() -> None:
    job = parse(TrainingJob, _job(8, initContainers=[_trainer({"limits": {GPU: 8}}, "check")]))
    assert job.spec.gpus_per_replica == 8


BYPASS = [
    ({"nodeName": "gpu-node-1"}, "spec.template.spec.nodeName: nodeName must not be set"),
    ({"schedulerName": "default-scheduler"}, "spec.template.spec.schedulerName: schedulerName must be unset"),
    ({"affinity": {"podAntiAffinity": {"x": 1}}}, "spec.template.spec.affinity: affinity.podAffinity and"),
    ({"affinity": {"podAffinity": {"x": 1}}}, "spec.template.spec.affinity: affinity.podAffinity and"),
    ({"topologySpreadConstraints": [{"maxSkew": 1}]}, "spec.template.spec.topologySpreadConstraints: "),
    ({"schedulingGates": [{"name": "wait"}]}, "spec.template.spec.schedulingGates: schedulingGates are not"),
]


@pytest.mark.parametrize(("pod_spec", "expected"), BYPASS, ids=[next(iter(b[0])) for b in BYPASS])
def test_fields_that_bypass_gang_placement_are_refused(pod_spec: dict[str, Any], expected: str) -> None:
    assert expected in _error(_job(**pod_spec))


def test_the_api_server_refuses_them_with_the_same_message() -> None:
    info = next(i for i in CRDS if i.kind == "TrainingJob")
    root = crd_manifest(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = root["properties"]["spec"]["properties"]["template"]["properties"]["spec"]["x-kubernetes-validations"]
    assert [(r["rule"], r["message"]) for r in rules] == [(r.rule, r.message) for r in PodSpec.cel_rules]
    for pod_spec, expected in BYPASS:
        wire = {"containers": [{"name": "t", "image": "i"}], **pod_spec}
        failing = [r for r in rules if not evaluate_rule(r["rule"], wire)]
        assert len(failing) == 1
        assert failing[0]["message"] in expected + _error(_job(**pod_spec))


def test_what_placement_honours_is_accepted() -> None:
    ok = _job(
        nodeSelector={"pool": "a"},
        schedulerName="powertrain",
        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}},
        tolerations=[{"operator": "Exists"}],
    )
    parse(TrainingJob, ok)


def test_a_conflicting_job_is_invalid_in_the_core_and_nothing_is_placed() -> None:
    obj = _job(4, containers=[_trainer({"limits": {GPU: 8}})])
    obj["metadata"]["namespace"] = "default"
    s = ClusterSnapshot.build(jobs=[obj])
    assert "gpusPerReplica is 4" in s.invalid_jobs[("default", "llm")]


def test_skipping_guarded_rules_agrees_with_cel() -> None:
    # evaluate_rule does not run `!has(self.X) || …` for objects without X; CEL itself must say the same.
    rules = [r.rule for r in (*PodSpec.cel_rules, *TrainingJobSpec.cel_rules)]
    guarded = [r for r in rules if _guard(r) is not None]
    assert len(guarded) >= 6
    for rule in guarded:
        assert _compiled(rule).execute({"self": {"other": 1}}) is True
        assert evaluate_rule(rule, {"other": 1})


@pytest.mark.parametrize(
    ("container", "field", "expected"),
    [
        ({"env": {"A": "1"}}, "env", "must be a list"),  # a map was dropped when the worker env was merged
        ({"env": [{"value": "1"}]}, "env[0].name", "is required"),
        ({"env": [{"name": "A", "value": 1}]}, "env[0].value", "must be a string"),
        ({"command": "torchrun train.py"}, "command", "must be a list"),
    ],
)
def test_container_fields_the_operator_merges_into_must_have_their_kubernetes_shape(
    container: dict[str, Any], field: str, expected: str
) -> None:
    message = _error(_job(containers=[{"name": "trainer", "image": "img", **container}]))
    assert f"spec.template.spec.containers[0].{field}: " in message
    assert expected in message


def test_the_users_env_is_kept_and_the_workers_env_is_added_after_it() -> None:
    job = parse(TrainingJob, _job(containers=[{"name": "t", "image": "img", "env": [{"name": "RANK", "value": "x"}]}]))
    job.metadata.update(name="llm", namespace="ns")
    env = render_pod(job, 0, 1)["spec"]["containers"][0]["env"]
    assert env[0] == {"name": "RANK", "value": "x"}  # the template's own wins, as documented
    assert "MASTER_ADDR" in {e["name"] for e in env}
