"""The CRDs in crds/ are generated from the API models, current, structural and useful to kubectl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cel
import pytest
import yaml

from powertrain.api import crdgen
from powertrain.api.structural import structural_errors
from powertrain.commands.crds import stale_files

REPO = Path(__file__).resolve().parents[1]


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: dict[str, Any], path: str = ""):  # type: ignore[no-untyped-def]
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_checked_in_crds_match_the_models() -> None:
    assert stale_files(REPO / "crds") == [], "crds/ is stale: run `powertrain crds -o crds`"


def test_stale_check_notices_a_hand_edit(tmp_path: Path) -> None:
    for name, text in crdgen.render_all().items():
        (tmp_path / name).write_text(text)
    assert stale_files(tmp_path) == []
    victim = tmp_path / "powertrain.dev_trainingjobs.yaml"
    victim.write_text(victim.read_text().replace("minimum: 1", "minimum: 0", 1))
    (tmp_path / "extra.yaml").write_text("kind: Nothing\n")
    problems = stale_files(tmp_path)
    assert any("trainingjobs" in p and "differs" in p for p in problems)
    assert any("extra.yaml" in p for p in problems)


@pytest.mark.parametrize("crd", crdgen.all_manifests(), ids=lambda c: c["metadata"]["name"])
def test_schema_is_structural(crd: dict[str, Any]) -> None:
    assert structural_errors(_schema(crd)) == []


def test_structural_checker_rejects_what_the_api_server_rejects() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"description": "no type"},
            "b": {"type": "object", "additionalProperties": False, "properties": {"x": {"type": "string"}}},
            "c": {"type": "integer", "exclusiveMinimum": 0},
            "d": {"type": "string", "anyOf": [{"type": "string", "description": "x"}]},
            "e": {"$ref": "#/defs/x"},
        },
    }
    errors = "\n".join(structural_errors(bad))
    for fragment in ("[a].type", "[b]", "[c].exclusiveMinimum", "anyOf[0].type", "[e].$ref"):
        assert fragment in errors


@pytest.mark.parametrize("crd", crdgen.all_manifests(), ids=lambda c: c["metadata"]["name"])
def test_every_field_is_described_for_kubectl_explain(crd: dict[str, Any]) -> None:
    undocumented = [
        path
        for path, node in _walk(_schema(crd))
        if path and not path.startswith(".metadata") and not path.endswith("[]") and not node.get("description")
    ]
    assert undocumented == []


@pytest.mark.parametrize("crd", crdgen.all_manifests(), ids=lambda c: c["metadata"]["name"])
def test_cel_rules_compile_and_name_real_fields(crd: dict[str, Any]) -> None:
    for path, node in _walk(_schema(crd)):
        for rule in node.get("x-kubernetes-validations", []):
            cel.compile(rule["rule"])
            assert rule["message"]
            field = rule.get("fieldPath", "").lstrip(".")
            if field:
                assert field.split(".")[0] in node["properties"], (path, field)


def test_trainingjob_crd_has_the_kubectl_surface() -> None:
    crd = yaml.safe_load((REPO / "crds" / "powertrain.dev_trainingjobs.yaml").read_text())
    names = crd["spec"]["names"]
    assert names["shortNames"] == ["tj"]
    assert "powertrain" in names["categories"]
    version = crd["spec"]["versions"][0]
    assert set(version["subresources"]) == {"status", "scale"}
    columns = {col["name"]: col["jsonPath"] for col in version["additionalPrinterColumns"]}
    assert {"Phase", "Replicas", "GPUs", "Domain", "Age"} <= set(columns)
    schema = _schema(crd)
    for column_path in [*columns.values(), *version["subresources"]["scale"].values()]:
        node = schema
        for part in column_path.lstrip(".").split("."):
            if part == "metadata":
                break
            node = node["properties"][part]
    spec = schema["properties"]["spec"]
    template = spec["properties"]["template"]
    assert template["x-kubernetes-preserve-unknown-fields"] is True
    assert spec["properties"]["topology"]["default"] == {}
    assert spec["properties"]["topology"]["properties"]["level"]["enum"] == ["node", "nvlink", "rack", "spine", "zone"]
    conditions = schema["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_policy_defaults_are_the_topograph_labels() -> None:
    crd = yaml.safe_load((REPO / "crds" / "powertrain.dev_clustertrainingpolicies.yaml").read_text())
    assert crd["spec"]["scope"] == "Cluster"
    levels = _schema(crd)["properties"]["spec"]["properties"]["topology"]["default"]
    assert [(lv["name"], lv["nodeLabel"]) for lv in levels] == [
        ("node", "kubernetes.io/hostname"),
        ("nvlink", "accelerator.topograph.run/domain"),
        ("rack", "fabric.topograph.run/tier-0"),
        ("spine", "fabric.topograph.run/tier-1"),
        ("zone", "topology.kubernetes.io/zone"),
    ]
    assert levels[1]["alternateLabels"] == ["nvidia.com/gpu.clique"]
