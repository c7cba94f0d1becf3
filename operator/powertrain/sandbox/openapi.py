"""OpenAPI documents for kubectl (API concepts: "OpenAPI interface definition").

v3 (`/openapi/v3` and `/openapi/v3/<group-version>`) carries every served path, with the `fieldValidation`
parameter kubectl looks for before it delegates validation to the server, and full schemas for custom
resources so `kubectl explain` works. Built-in kinds get paths but no schemas: kubectl then uses its compiled-in
types for them, which is what it does against servers whose OpenAPI it cannot use.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from powertrain.sandbox.resources import ResourceType

_META_REF = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_OBJECT_META = {
    "description": "ObjectMeta is metadata that all persisted resources must have.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Name must be unique within a namespace."},
        "generateName": {"type": "string", "description": "Optional prefix the server uses to generate a unique name."},
        "namespace": {"type": "string", "description": "Namespace defines the space within which the name is unique."},
        "labels": {
            "type": "object",
            "additionalProperties": {"type": "string", "default": ""},
            "description": "Map of string keys and values used to organize and select objects.",
        },
        "annotations": {
            "type": "object",
            "additionalProperties": {"type": "string", "default": ""},
            "description": "Unstructured key value map set by external tools.",
        },
        "uid": {"type": "string", "description": "Unique in time and space; set by the server."},
        "resourceVersion": {"type": "string", "description": "Opaque version used for optimistic concurrency."},
        "generation": {"type": "integer", "format": "int64", "description": "Sequence of the desired state."},
        "creationTimestamp": {"type": "string", "format": "date-time", "description": "When the object was created."},
        "deletionTimestamp": {"type": "string", "format": "date-time", "description": "When deletion was requested."},
        "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
        "finalizers": {
            "type": "array",
            "items": {"type": "string", "default": ""},
            "description": "Must be empty before the object is deleted from the registry.",
        },
        "ownerReferences": {
            "type": "array",
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "description": "Objects this object depends on.",
        },
        "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    },
}

_QUERY = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _gvk(rt: ResourceType, version: str) -> dict[str, str]:
    return {"group": rt.group, "version": version, "kind": rt.kind}


def schema_name(rt: ResourceType, version: str) -> str:
    """Reverse-domain definition name, as the real server names them (powertrain.dev → dev.powertrain)."""
    group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{group}.{version}.{rt.kind}"


def _operation(rt: ResourceType, version: str, action: str, params: tuple[str, ...] = ()) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema_name(rt, version)}"} if rt.crd else {"type": "object"}
    return {
        "operationId": f"{action}{rt.kind}",
        "parameters": [{"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}} for p in params],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(rt, version),
    }


def _paths(rt: ResourceType, version: str) -> dict[str, Any]:
    base = f"/apis/{rt.group}/{version}" if rt.group else f"/api/{version}"
    coll = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
    item = f"{coll}/{{name}}"
    paths: dict[str, Any] = {
        coll: {"get": _operation(rt, version, "list"), "post": _operation(rt, version, "post", _QUERY)},
        item: {
            "get": _operation(rt, version, "get"),
            "put": _operation(rt, version, "put", _QUERY),
            "patch": _operation(rt, version, "patch", _QUERY),
            "delete": _operation(rt, version, "delete", ("dryRun", "gracePeriodSeconds", "propagationPolicy")),
        },
    }
    if rt.status:
        paths[f"{item}/status"] = {
            "get": _operation(rt, version, "get"),
            "patch": _operation(rt, version, "patch", _QUERY),
            "put": _operation(rt, version, "put", _QUERY),
        }
    return paths


def _crd_schema(rt: ResourceType, version: str) -> dict[str, Any]:
    schema = copy.deepcopy(rt.schema(version) or {"type": "object"})
    props = schema.setdefault("properties", {})
    props["metadata"] = {
        "description": "Standard object's metadata.",
        "allOf": [{"$ref": f"#/components/schemas/{_META_REF}"}],
    }
    props.setdefault("apiVersion", {"type": "string", "description": "APIVersion defines the versioned schema."})
    props.setdefault(
        "kind", {"type": "string", "description": "Kind is a string value representing the REST resource."}
    )
    schema["x-kubernetes-group-version-kind"] = [_gvk(rt, version)]
    return schema


def group_version_doc(types: list[ResourceType], group: str, version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {_META_REF: _OBJECT_META}
    for rt in types:
        paths.update(_paths(rt, version))
        if rt.crd:
            schemas[schema_name(rt, version)] = _crd_schema(rt, version)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def doc_hash(doc: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64].upper()


def v3_root(hashes: dict[str, str]) -> dict[str, Any]:
    return {"paths": {p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={h}"} for p, h in sorted(hashes.items())}}


def v2_doc(types: list[ResourceType]) -> dict[str, Any]:
    """Swagger 2.0 with the custom resources' definitions (JSON only)."""
    definitions: dict[str, Any] = {_META_REF: _OBJECT_META}
    for rt in types:
        if not rt.crd:
            continue
        for v in rt.versions:
            d = _crd_schema(rt, v)
            d["properties"]["metadata"] = {"$ref": f"#/definitions/{_META_REF}"}
            definitions[schema_name(rt, v)] = d
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": {},
        "definitions": definitions,
    }


# What kube-openapi answers (clients ask for the older "...spec.v2@v1.0+protobuf" too; Go rejects "@" in a reply).
V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def v2_protobuf() -> bytes:
    """The Swagger 2.0 document in gnostic's protobuf form (openapi.v2.Document), without definitions.

    kubectl's client-side validation asks for it (protobuf only) when the OpenAPI v3 documents have no schema
    for a manifest's kind; finding none here either, it skips validation and reports what the server says, as
    against a real cluster (an unknown kind: `no matches for kind "X" in version "G/V"`)."""

    def field(number: int, payload: bytes) -> bytes:
        return _varint(number << 3 | 2) + _varint(len(payload)) + payload

    info = field(1, b"Kubernetes") + field(2, b"v1.32.0")
    return field(1, b"2.0") + field(2, info) + field(8, b"") + field(9, b"")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)
