"""Pure pieces of the API server, checked directly: selector parsing, schema pruning/defaulting/validation, the
printer-column JSONPath subset and ages, and the store's watch history bound.

Sections followed: "Labels and Selectors" (set-based syntax), CRD "Field pruning"/"Defaulting"/"Validation",
"Additional printer columns" (JSONPath), "Efficient detection of changes" (410 once history is compacted).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from powertrain.sandbox.crd_schema import apply_defaults, cel_errors, prune, validate
from powertrain.sandbox.errors import ApiError
from powertrain.sandbox.selectors import parse_field_selector, parse_label_selector, selector_from_match
from powertrain.sandbox.store import Store
from powertrain.sandbox.tables import human_age, jsonpath


def test_label_selector_syntax_errors_name_the_selector() -> None:
    with pytest.raises(ApiError) as err:
        parse_label_selector("a in (x, y) extra")
    assert err.value.code == 400
    assert "a in (x, y) extra" in err.value.message
    with pytest.raises(ApiError):
        parse_label_selector("bad key!=x")


def test_set_based_requirements_and_match_expressions_agree() -> None:
    text = parse_label_selector("tier in (gpu, cpu),!legacy,zone!=z9")
    match = selector_from_match(
        {
            "matchLabels": {},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["gpu", "cpu"]},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["z9"]},
            ],
        }
    )
    for labels in ({"tier": "gpu"}, {"tier": "cpu", "zone": "z9"}, {"tier": "gpu", "legacy": "1"}, {}):
        assert text.matches(labels) == match.matches(labels)


def test_field_selector_rejects_unsupported_fields() -> None:
    with pytest.raises(ApiError) as err:
        parse_field_selector("spec.priority=1", ("metadata.name",), "pods")
    assert "metadata.name" in err.value.message
    sel = parse_field_selector("metadata.name!=a", ("metadata.name",), "pods")
    assert sel.matches({"metadata": {"name": "b"}})
    assert not sel.matches({"metadata": {"name": "a"}})


SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "size": {"type": "integer", "default": 1, "minimum": 1},
                "mode": {"type": "string", "enum": ["A", "B"]},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "w": {"type": "integer", "default": 5}},
                    },
                },
            },
            "x-kubernetes-validations": [{"rule": "self.size < 10", "message": "too big"}],
        }
    },
}


def test_prune_keeps_declared_and_preserved_fields_and_reports_the_rest() -> None:
    dropped: list[str] = []
    obj = {
        "apiVersion": "x/v1",
        "kind": "K",
        "metadata": {"name": "n"},
        "spec": {"size": 2, "extra": 1, "free": {"anything": [1]}, "items": [{"name": "a", "junk": 1}]},
    }
    out = prune(obj, SCHEMA, root=True, dropped=dropped)
    assert out["spec"] == {"size": 2, "free": {"anything": [1]}, "items": [{"name": "a"}]}
    assert out["metadata"] == {"name": "n"}
    assert dropped == ["spec.extra", "spec.items[0].junk"]


def test_defaults_fill_only_inside_existing_parents() -> None:
    assert apply_defaults({"spec": {"items": [{"name": "a"}]}}, SCHEMA) == {
        "spec": {"size": 1, "items": [{"name": "a", "w": 5}]}
    }
    assert apply_defaults({}, SCHEMA) == {}


def test_validation_messages_name_field_value_and_rule() -> None:
    causes = validate({"spec": {"size": 0, "mode": "C", "items": "no"}}, SCHEMA)
    by_field = {c["field"]: c["message"] for c in causes}
    assert "should be greater than or equal to 1" in by_field["spec.size"]
    assert 'supported values: "A", "B"' in by_field["spec.mode"]
    assert "must be of type array" in by_field["spec.items"]
    cel = cel_errors({"spec": {"size": 12}}, None, SCHEMA)
    assert cel == [{"reason": "FieldValueInvalid", "field": "spec", "message": 'Invalid value: "object": too big'}]


def test_jsonpath_subset_and_human_ages() -> None:
    obj = {
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]},
        "spec": {"l": [1, 2]},
    }
    assert jsonpath(obj, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert jsonpath(obj, ".spec.l[1]") == [2]
    assert jsonpath(obj, ".spec.l[*]") == [1, 2]
    assert jsonpath(obj, ".spec.missing") == []
    now = datetime(2026, 1, 2, 0, 0, 0, tzinfo=UTC)
    assert human_age("2026-01-01T23:59:15Z", now) == "45s"
    assert human_age("2026-01-01T23:55:00Z", now) == "5m"
    assert human_age("2026-01-01T21:30:00Z", now) == "150m"
    assert human_age("2025-12-30T00:00:00Z", now) == "3d"


def test_history_is_bounded_and_reports_compaction() -> None:
    store = Store(watch_history=3)
    for i in range(5):
        obj = {"metadata": {"name": f"o{i}", "resourceVersion": str(store.next_rv())}}
        store.put("things", obj)
    assert store.history_since("things", 1) is None  # compacted: the client must relist (410)
    recent = store.history_since("things", store.rv - 2)
    assert recent is not None
    assert [e.obj["metadata"]["name"] for e in recent] == ["o3", "o4"]
