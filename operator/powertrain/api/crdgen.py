"""Generate the CustomResourceDefinitions from the pydantic models (the single source of truth).

pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3 subset. The translation:
references are inlined, `Optional[X]` becomes plain X (absence is the null), titles are dropped, numeric
exclusive bounds become OpenAPI 3.0 booleans, open objects become `x-kubernetes-preserve-unknown-fields`,
and nested spec objects whose fields all have defaults get `default: {}` so the API server fills them in.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from powertrain.api import constants as c
from powertrain.api.policy import ClusterTrainingPolicySpec, ClusterTrainingPolicyStatus
from powertrain.api.telemetry import NodeTelemetrySpec, NodeTelemetryStatus
from powertrain.api.trainingjob import TrainingJob, TrainingJobSpec, TrainingJobStatus

Schema = dict[str, Any]


@dataclass(frozen=True)
class CrdInfo:
    kind: str
    plural: str
    singular: str
    scope: str
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ("powertrain",)
    spec_required: bool = False
    printer_columns: tuple[dict[str, Any], ...] = ()
    scale: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.plural}.{c.GROUP}"

    @property
    def file_name(self) -> str:
        return f"{c.GROUP}_{self.plural}.yaml"


def _age() -> dict[str, Any]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


CRDS: tuple[CrdInfo, ...] = (
    CrdInfo(
        kind="TrainingJob",
        plural="trainingjobs",
        singular="trainingjob",
        scope="Namespaced",
        spec=TrainingJobSpec,
        status=TrainingJobStatus,
        description=(TrainingJob.__doc__ or "").strip(),
        short_names=("tj",),
        spec_required=True,
        printer_columns=(
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Lifecycle phase."},
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas", "description": "Desired workers."},
            {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas", "description": "Ready workers."},
            {"name": "GPUs", "type": "integer", "jsonPath": ".status.gpus", "description": "GPUs held."},
            {
                "name": "Efficiency",
                "type": "string",
                "jsonPath": ".status.efficiency.verdict",
                "description": "Efficiency verdict of the running gang.",
            },
            {
                "name": "Level",
                "type": "string",
                "jsonPath": ".status.placement.level",
                "priority": 1,
                "description": "Topology level of the placement.",
            },
            {
                "name": "Domain",
                "type": "string",
                "jsonPath": ".status.placement.domain",
                "description": "Topology domain holding the gang.",
            },
            {"name": "Queue", "type": "string", "jsonPath": ".spec.queue", "priority": 1, "description": "Queue."},
            {
                "name": "Priority",
                "type": "integer",
                "jsonPath": ".spec.priority",
                "priority": 1,
                "description": "Priority.",
            },
            {
                "name": "Restarts",
                "type": "integer",
                "jsonPath": ".status.restarts",
                "priority": 1,
                "description": "Gang restarts.",
            },
            {
                "name": "Cap",
                "type": "integer",
                "jsonPath": ".status.power.capWatts",
                "priority": 1,
                "description": "Per-GPU cap of the job's power mode or capWatts, watts.",
            },
            {
                "name": "Cost",
                "type": "number",
                "jsonPath": ".status.costEstimate",
                "priority": 1,
                "description": "Estimated cost so far (policy's cost.currency).",
            },
            _age(),
        ),
        scale={
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    ),
    CrdInfo(
        kind="ClusterTrainingPolicy",
        plural="clustertrainingpolicies",
        singular="clustertrainingpolicy",
        scope="Cluster",
        spec=ClusterTrainingPolicySpec,
        status=ClusterTrainingPolicyStatus,
        description=(
            "Cluster-wide training policy: topology map, power budgets, queues, preemption and rescheduling. "
            "The operator uses the one named `default`."
        ),
        short_names=("ctp",),
        printer_columns=(_age(),),
    ),
    CrdInfo(
        kind="NodeTelemetry",
        plural="nodetelemetries",
        singular="nodetelemetry",
        scope="Cluster",
        spec=NodeTelemetrySpec,
        status=NodeTelemetryStatus,
        description=(
            "Telemetry of one node (named after it): the operator writes power-cap requests in spec, "
            "only that node's agent writes status."
        ),
        short_names=("nt",),
        printer_columns=(
            {"name": "Backend", "type": "string", "jsonPath": ".status.backend", "description": "Collector."},
            {"name": "Reported", "type": "date", "jsonPath": ".status.timestamp", "description": "Last report."},
            _age(),
        ),
    ),
)


def _inline(node: Any, defs: dict[str, Schema]) -> Any:
    if isinstance(node, list):
        return [_inline(x, defs) for x in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
        target.update(node)  # the referencing site's description/default win
        node = target
    return {k: _inline(v, defs) for k, v in node.items()}


_DROP = {"title", "$defs"}


def _to_openapi(node: Schema, *, in_spec: bool) -> Schema:
    """Convert one inlined JSON-Schema node to a structural OpenAPI v3 node."""
    node = dict(node)
    any_of = node.pop("anyOf", None)
    if any_of is not None:
        variants = [v for v in any_of if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"cannot express union in a structural schema: {any_of}")
        merged = dict(variants[0])
        merged.update(node)  # description etc. of the optional field
        node = merged
    for key in _DROP:
        node.pop(key, None)
    if node.get("default", ...) is None:
        node.pop("default")
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node and not isinstance(node[bound], bool):
            node[plain] = node.pop(bound)
            node[bound] = True

    props = node.get("properties")
    extra = node.pop("additionalProperties", None)
    if props is not None:
        node["properties"] = {k: _to_openapi(v, in_spec=in_spec) for k, v in props.items()}
        if extra is True:
            node["x-kubernetes-preserve-unknown-fields"] = True
    elif node.get("type") == "object":
        if isinstance(extra, dict) and extra:
            node["additionalProperties"] = _to_openapi(extra, in_spec=in_spec)
        else:
            node["x-kubernetes-preserve-unknown-fields"] = True
    if "items" in node:
        node["items"] = _to_openapi(node["items"], in_spec=in_spec)
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        if "enum" in node and all(isinstance(v, str) for v in node["enum"]):
            node["type"] = "string"
        else:
            raise ValueError(f"schema node without a type: {node}")

    if in_spec and node.get("type") == "object" and "default" not in node and props:
        required = set(node.get("required", []))
        children = node["properties"]
        if not required and any("default" in ch for ch in children.values()):
            node["default"] = {}
    if not in_spec:
        _strip_defaults(node)
    return node


def _strip_defaults(node: Schema) -> None:
    # Status is written by controllers; API-server defaulting there would only hide missing writes.
    node.pop("default", None)


def _wire_default(value: Any) -> Any:
    # A nested object defaults to {}: the API server then applies that object's own field defaults.
    if isinstance(value, BaseModel):
        return {}
    if isinstance(value, list):
        return [
            v.model_dump(mode="json", by_alias=True, exclude_none=True) if isinstance(v, BaseModel) else v
            for v in value
        ]
    return value


class _FactoryDefaults(GenerateJsonSchema):
    """Also publish defaults that come from a default_factory, so the API server fills them in too."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            schema = {**schema, "default": _wire_default(factory())}  # type: ignore[call-arg]
            schema.pop("default_factory", None)
        return super().default_schema(schema)


def openapi_schema(model: type[BaseModel], *, in_spec: bool) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_FactoryDefaults)
    defs = raw.pop("$defs", {})
    return _to_openapi(_inline(raw, defs), in_spec=in_spec)


def crd_manifest(info: CrdInfo) -> dict[str, Any]:
    spec_schema = openapi_schema(info.spec, in_spec=True)
    if not info.spec_required:
        spec_schema.setdefault("default", {})
    root: Schema = {
        "type": "object",
        "description": info.description,
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object: powertrain.dev/v1alpha1."},
            "kind": {"type": "string", "description": f"Kind of this object: {info.kind}."},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": openapi_schema(info.status, in_spec=False),
        },
    }
    if info.spec_required:
        root["required"] = ["spec"]
    subresources: dict[str, Any] = {"status": {}}
    if info.scale:
        subresources["scale"] = dict(info.scale)
    version: dict[str, Any] = {
        "name": c.VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": root},
        "subresources": subresources,
    }
    if info.printer_columns:
        version["additionalPrinterColumns"] = [dict(col) for col in info.printer_columns]
    names: dict[str, Any] = {
        "kind": info.kind,
        "listKind": f"{info.kind}List",
        "plural": info.plural,
        "singular": info.singular,
    }
    if info.short_names:
        names["shortNames"] = list(info.short_names)
    if info.categories:
        names["categories"] = list(info.categories)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": info.name,
            "annotations": {"powertrain.dev/generated-by": "powertrain crds (from powertrain.api models)"},
        },
        "spec": {"group": c.GROUP, "scope": info.scope, "names": names, "versions": [version]},
    }


HEADER = "# Generated by `powertrain crds` from the pydantic models in operator/powertrain/api. Do not edit.\n"


def render(info: CrdInfo) -> str:
    return HEADER + yaml.safe_dump(crd_manifest(info), sort_keys=False, width=110, allow_unicode=True)


def render_all() -> dict[str, str]:
    """File name → YAML text for every CRD."""
    return {info.file_name: render(info) for info in CRDS}


def all_manifests() -> list[dict[str, Any]]:
    return [crd_manifest(info) for info in CRDS]
