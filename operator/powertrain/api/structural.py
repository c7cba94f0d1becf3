"""Check that a CRD schema is *structural*, as the API server demands of apiextensions.k8s.io/v1 CRDs.

Follows "Specifying a structural schema" in the Kubernetes docs (tasks/extend-kubernetes/custom-resources/
custom-resource-definitions). Used by the CRD tests and by the sandbox when a CRD is created.
"""

from __future__ import annotations

from typing import Any

_JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
_FORBIDDEN_IN_JUNCTORS = ("description", "type", "default", "additionalProperties", "nullable")
_ALLOWED_KEYS = {
    "type",
    "format",
    "description",
    "title",
    "default",
    "nullable",
    "enum",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "maxProperties",
    "minProperties",
    "required",
    "items",
    "properties",
    "additionalProperties",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "example",
    "externalDocs",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
}
_TYPES = {"object", "array", "string", "integer", "number", "boolean"}


def structural_errors(schema: dict[str, Any], path: str = "openAPIV3Schema") -> list[str]:
    """Every violation of the structural-schema rules, as 'path: problem' strings (empty when structural)."""
    errors: list[str] = []
    _check(schema, path, errors, root=True)
    return errors


def _check(node: Any, path: str, errors: list[str], *, root: bool = False) -> None:
    if not isinstance(node, dict):
        errors.append(f"{path}: must be an object, got {type(node).__name__}")
        return
    for key in node:
        if key not in _ALLOWED_KEYS:
            errors.append(f"{path}.{key}: unsupported keyword in a CRD schema")
    typ = node.get("type")
    exempt = node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    if typ is None and not exempt:
        errors.append(f"{path}.type: must not be empty")
    elif typ is not None and typ not in _TYPES:
        errors.append(f"{path}.type: unknown type {typ!r}")
    if root and typ != "object":
        errors.append(f"{path}.type: the root must be an object")
    if "properties" in node and "additionalProperties" in node:
        errors.append(f"{path}: properties and additionalProperties are mutually exclusive")
    if node.get("additionalProperties") is False:
        errors.append(f"{path}.additionalProperties: false is not allowed (unknown fields are pruned)")
    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        if bound in node and not isinstance(node[bound], bool):
            errors.append(f"{path}.{bound}: must be a boolean in OpenAPI v3.0")
    if typ == "array" and "items" not in node:
        errors.append(f"{path}.items: arrays must specify items")
    if node.get("x-kubernetes-list-type") == "map":
        keys = node.get("x-kubernetes-list-map-keys") or []
        item = node.get("items") or {}
        required = set(item.get("required", []))
        for key in keys:
            child = (item.get("properties") or {}).get(key)
            if child is None:
                errors.append(f"{path}: list-map key {key!r} is not a property of the items")
            elif key not in required and "default" not in child:
                errors.append(f"{path}: list-map key {key!r} must be required or defaulted")
    for name, child in (node.get("properties") or {}).items():
        _check(child, f"{path}.properties[{name}]", errors)
    if isinstance(node.get("additionalProperties"), dict):
        _check(node["additionalProperties"], f"{path}.additionalProperties", errors)
    if "items" in node:
        _check(node["items"], f"{path}.items", errors)
    for junctor in _JUNCTORS:
        branches = node.get(junctor)
        if branches is None:
            continue
        for i, branch in enumerate(branches if isinstance(branches, list) else [branches]):
            _check_junctor(branch, f"{path}.{junctor}[{i}]", errors)


def _check_junctor(node: Any, path: str, errors: list[str]) -> None:
    if not isinstance(node, dict):
        return
    for key in _FORBIDDEN_IN_JUNCTORS:
        if key in node:
            errors.append(f"{path}.{key}: must not be set inside allOf/anyOf/oneOf/not")
    for name, child in (node.get("properties") or {}).items():
        _check_junctor(child, f"{path}.properties[{name}]", errors)
    if "items" in node:
        _check_junctor(node["items"], f"{path}.items", errors)
