"""The simulator's fast path to TrainingJob models gives the snapshot exactly what parsing the object gives."""

from __future__ import annotations

from typing import Any

from powertrain.api import constants as c
from powertrain.api.policy import ClusterTrainingPolicySpec, PodSecurity
from powertrain.api.trainingjob import TrainingJob
from powertrain.api.validation import parse
from powertrain.core.snapshot import ClusterSnapshot
from powertrain.sim.models import JobModels


def _obj(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": c.API_VERSION,
        "kind": "TrainingJob",
        "metadata": {"name": "j1", "namespace": "sim", "creationTimestamp": "2026-01-01T00:00:00+00:00"},
        "spec": {
            "replicas": 4,
            "gpusPerReplica": 1,
            "topology": {"level": "node", "mode": "Preferred", "localitySensitivity": 1.7},
            "template": {"spec": {"containers": [{"name": "trainer", "image": "sim/resnet50"}]}},
            **spec,
        },
    }
    if status is not None:
        obj["status"] = status
    return obj


RUNNING = {
    "phase": "Running",
    "placement": {"level": "node", "domain": "n1", "nodes": ["n1", "n1", "n1", "n1"]},
    "submitTime": "2026-01-01T00:00:00+00:00",
    "startTime": "2026-01-01T00:10:00+00:00",
    "attainedGpuSeconds": 12.5,
    "preemptions": 1,
    "conditions": [{"type": "Scheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:10:00+00:00"}],
}


def test_models_equal_what_parsing_gives_and_reuse_the_spec() -> None:
    models = JobModels(ClusterSnapshot.empty())
    objects = [
        _obj(),
        _obj({"phase": "Queued", "localityWaitStart": "2026-01-01T00:05:00+00:00"}),
        _obj(RUNNING),
        _obj({**RUNNING, "requestedReplicas": 4, "desiredReplicas": 2}, elastic={"minReplicas": 2, "maxReplicas": 8}),
    ]
    first = None
    for obj in objects:
        model = models.model(obj)
        reference = parse(TrainingJob, obj)
        assert model == reference
        assert model is not None
        assert model.to_wire() == reference.to_wire()
        assert model.model_fields_set == reference.model_fields_set
        if obj["spec"] == objects[0]["spec"]:
            first = first or model.spec
            assert model.spec is first  # validated once
    assert first is not None


def test_what_does_not_validate_is_left_to_the_snapshot() -> None:
    snapshot = ClusterSnapshot.empty()
    models = JobModels(snapshot)
    bad = _obj(replicas=0)
    assert models.model(bad) is None
    models.upsert(bad)
    assert "replicas" in snapshot.invalid_jobs[("sim", "j1")]
    assert models.model(_obj({"phase": "Nowhere"})) is None


def test_a_reused_spec_is_checked_again_after_a_policy_change() -> None:
    snapshot = ClusterSnapshot.empty(ClusterTrainingPolicySpec(pod_security=PodSecurity(enforce=False)))
    models = JobModels(snapshot)
    privileged = {"containers": [{"name": "t", "image": "i", "securityContext": {"privileged": True}}]}
    models.upsert(_obj(template={"spec": privileged}))
    assert ("sim", "j1") in snapshot.jobs
    snapshot.set_policy(ClusterTrainingPolicySpec())  # enforces the baseline profile
    models.upsert(_obj(RUNNING, template={"spec": privileged}))  # the same spec object as before
    assert ("sim", "j1") in snapshot.invalid_jobs
    assert ("sim", "j1") not in snapshot.jobs


def test_jobs_with_one_spec_share_it_and_each_name_is_still_checked() -> None:
    snapshot = ClusterSnapshot.empty()
    models = JobModels(snapshot)
    first = _obj()
    long_name = "x" * 62  # worker hostnames made from it would pass 63 characters
    second = {**_obj(), "metadata": {**first["metadata"], "name": long_name}}
    third = {**_obj(), "metadata": {**first["metadata"], "name": "j3"}}
    models.upsert(first)
    models.upsert(second)
    models.upsert(third)
    shared = snapshot.jobs[("sim", "j1")]
    assert snapshot.jobs[("sim", "j3")].job.spec is shared.job.spec
    assert snapshot.jobs[("sim", "j3")].per_replica == shared.per_replica
    assert "too long" in snapshot.invalid_jobs[("sim", long_name)]
