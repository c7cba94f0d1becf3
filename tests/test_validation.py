"""Bad TrainingJob specs get clear messages (field, value, what is allowed) and never a traceback."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from powertrain.api import ClusterTrainingPolicy, InvalidObject, NodeTelemetry, TrainingJob, parse

REPO = Path(__file__).resolve().parents[1]

GOOD: dict[str, Any] = {
    "apiVersion": "powertrain.dev/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "llm"},
    "spec": {
        "replicas": 4,
        "gpusPerReplica": 8,
        "template": {"spec": {"containers": [{"name": "trainer", "image": "img", "command": ["torchrun"]}]}},
    },
}


def _with(**spec: Any) -> dict[str, Any]:
    obj = copy.deepcopy(GOOD)
    obj["spec"].update(spec)
    return obj


def _errors(obj: Any) -> list[str]:
    with pytest.raises(InvalidObject) as exc:
        parse(TrainingJob, obj)
    return [str(e) for e in exc.value.errors]


def test_good_spec_gets_the_documented_defaults() -> None:
    job = parse(TrainingJob, GOOD)
    assert job.spec.topology.level == "rack"
    assert job.spec.topology.mode == "Preferred"
    assert job.spec.queue == "default"
    assert job.spec.run_policy.backoff_limit == 3
    # unknown container fields survive: the template is a full PodTemplateSpec
    assert job.spec.template.spec.containers[0].command == ["torchrun"]
    assert job.to_wire()["spec"]["template"]["spec"]["containers"][0]["command"] == ["torchrun"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"replicas": 0}, "spec.replicas: 0 is invalid: must be ≥ 1"),
        ({"replicas": "four"}, 'spec.replicas: "four" is invalid: must be an integer'),
        ({"gpuPerReplica": 8}, "spec.gpuPerReplica: unknown field; did you mean 'gpusPerReplica'?"),
        ({"topology": {"level": "building"}}, "spec.topology.level: \"building\" is invalid: must be one of 'node'"),
        ({"topology": {"mode": "required"}}, 'spec.topology.mode: "required" is invalid: must be one of'),
        ({"queue": "Team_A"}, 'spec.queue: "Team_A" is invalid: must be a DNS label'),
        ({"power": {"capWatts": 0}}, "spec.power.capWatts: 0 is invalid: must be > 0"),
        ({"power": {"mode": "Turbo"}}, "spec.power.mode: \"Turbo\" is invalid: must be one of 'Performance'"),
        ({"runPolicy": {"backoffLimit": -1}}, "spec.runPolicy.backoffLimit: -1 is invalid: must be ≥ 0"),
        ({"gpuModel": []}, "spec.gpuModel: must have at least 1 item(s)"),
        ({"template": {"spec": {"containers": []}}}, "spec.template.spec.containers: must have at least 1 item(s)"),
        (
            {"template": {"spec": {"containers": [{"name": "a"}]}}},
            "spec.template.spec.containers[0].image: is required",
        ),
        (
            {"elastic": {"minReplicas": 6, "maxReplicas": 8}},
            "spec.replicas: replicas must lie within elastic.minReplicas and elastic.maxReplicas",
        ),
        (
            {"elastic": {"minReplicas": 9, "maxReplicas": 8}},
            "spec.elastic.minReplicas: minReplicas must be less than or equal to maxReplicas",
        ),
        (
            {"template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]}}},
            "spec.template.spec.containers: duplicate entry with name='a'",
        ),
    ],
)
def test_bad_specs_say_field_value_and_what_is_allowed(spec: dict[str, Any], expected: str) -> None:
    errors = _errors(_with(**spec))
    assert any(e.startswith(expected) for e in errors), errors


def test_all_problems_are_reported_at_once() -> None:
    errors = _errors(_with(replicas=0, gpusPerReplica=0, queue="A"))
    assert len(errors) == 3


def test_missing_spec_and_non_objects() -> None:
    assert _errors({"kind": "TrainingJob"}) == ["spec: is required"]
    assert _errors("not a mapping")[0].startswith("(root): must be an object")
    assert _errors(_with(template=[1, 2]))[0] == "spec.template: must be an object"


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        model = {"TrainingJob": TrainingJob, "ClusterTrainingPolicy": ClusterTrainingPolicy}[doc["kind"]]
        parse(model, doc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
SPEC_KEYS = [
    "replicas", "gpusPerReplica", "elastic", "gpuModel", "topology", "priority", "queue", "power",
    "masterPort", "template", "runPolicy", "bogus",
]  # fmt: skip


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(key=st.sampled_from(SPEC_KEYS), value=json_values)
def test_fuzzed_spec_fields_give_messages_never_tracebacks(key: str, value: Any) -> None:
    obj = _with(**{key: value})
    try:
        parse(TrainingJob, obj)
    except InvalidObject as exc:
        assert exc.errors
        for err in exc.errors:
            assert str(err).startswith("spec"), str(err)
            assert "Traceback" not in str(err)


@settings(max_examples=200, deadline=None)
@given(doc=json_values)
def test_fuzzed_whole_documents_never_crash_any_kind(doc: Any) -> None:
    for model in (TrainingJob, ClusterTrainingPolicy, NodeTelemetry):
        try:
            parse(model, doc)
        except InvalidObject as exc:
            assert exc.errors
