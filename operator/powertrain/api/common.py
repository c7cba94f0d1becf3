"""Shared building blocks of the API models: camelCase wire names, CEL rules, Kubernetes conditions.

A cross-field rule is written once, in CEL, on the model it constrains. The CRD generator emits it as
`x-kubernetes-validations` (so the API server enforces it) and the model evaluates the very same expression
locally (so the operator, the CLI and the tests reject the same objects with the same message).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from powertrain.api.limits import MAX_SAFE_INTEGER


@dataclass(frozen=True)
class CelRule:
    """One `x-kubernetes-validations` entry.

    `field_path` names the field the message is about (relative, e.g. ".replicas"), as the API server
    reports it in the `Invalid` status cause.
    """

    rule: str
    message: str
    field_path: str | None = None

    def to_schema(self) -> dict[str, str]:
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


@cache
def _compiled(rule: str) -> Any:
    # The CEL engine is ~28 MiB resident; only models with rules need it, so the node agent, whose
    # NodeTelemetry has none, never loads it.
    import cel

    return cel.compile(rule)


_GUARD = re.compile(r"^!has\(self\.([A-Za-z_][A-Za-z0-9_]*)\)\s*(\|\||$)")


@cache
def _guard(rule: str) -> str | None:
    """The field X of a rule shaped `!has(self.X) || …`: without X the rule holds, whatever follows."""
    match = _GUARD.match(rule)
    return match.group(1) if match else None


def evaluate_rule(rule: str, self_value: Any) -> bool:
    """Evaluate a CEL validation rule against the JSON form of an object, as the API server does."""
    guard = _guard(rule)
    if guard is not None and isinstance(self_value, dict) and guard not in self_value:
        return True  # what CEL itself would conclude, without running it (most objects lack most fields)
    result = _compiled(rule).execute({"self": self_value})
    return bool(result)


LIST_MAP_KEYS = "x-kubernetes-list-map-keys"


def list_map(*keys: str) -> dict[str, Any]:
    """Mark a list field as a map keyed by `keys` (unique keys; merged by key in strategic-merge patches)."""
    return {"x-kubernetes-list-type": "map", LIST_MAP_KEYS: list(keys)}


class CelRuleViolation(ValueError):
    """Raised inside model validation; pydantic turns it into a located, readable error."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _schema_extras(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    rules = getattr(cls, "cel_rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [r.to_schema() for r in rules]


class ApiModel(BaseModel):
    """Base for every API type: camelCase on the wire, snake_case in Python, unknown fields rejected.

    Rejecting unknown fields in specs turns the classic typo (`gpuPerReplica`) into a clear message
    instead of a silently ignored setting.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
        use_enum_values=True,
        json_schema_extra=_schema_extras,
    )

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()

    @model_validator(mode="after")
    def _check_list_map_keys(self) -> ApiModel:
        for name, info in type(self).model_fields.items():
            extra = info.json_schema_extra
            if not isinstance(extra, dict) or LIST_MAP_KEYS not in extra:
                continue
            keys = [str(k) for k in extra[LIST_MAP_KEYS]]  # type: ignore[union-attr]
            seen: set[tuple[Any, ...]] = set()
            for item in getattr(self, name) or []:
                wire_item = item.to_wire() if isinstance(item, ApiModel) else item
                key = tuple(wire_item.get(k) for k in keys)
                if key in seen:
                    shown = ", ".join(f"{k}={v!r}" for k, v in zip(keys, key, strict=True))
                    raise CelRuleViolation(f"duplicate entry with {shown}", info.alias or name)
                seen.add(key)
        return self

    @model_validator(mode="after")
    def _check_cel_rules(self) -> ApiModel:
        if not self.cel_rules:
            return self
        wire = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        for rule in self.cel_rules:
            if not evaluate_rule(rule.rule, wire):
                field = rule.field_path.lstrip(".") if rule.field_path else None
                raise CelRuleViolation(rule.message, field)
        return self

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready form sent to the API server."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class OpenModel(ApiModel):
    """A partially typed object that keeps every field it does not know (e.g. a pod template)."""

    model_config = ConfigDict(extra="allow")


class StatusModel(ApiModel):
    """Status is written by controllers; tolerate fields from newer versions instead of failing reads."""

    model_config = ConfigDict(extra="ignore")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """The standard Kubernetes condition shape (metav1.Condition)."""

    type: str = Field(description="Condition type in CamelCase, e.g. Ready, Scheduled, Unschedulable.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="Machine-readable CamelCase reason for the last transition.")
    message: str = Field(default="", description="Human-readable explanation of the last transition.")
    last_transition_time: datetime | None = Field(default=None, description="When the condition last changed status.")
    observed_generation: int | None = Field(
        default=None, ge=0, le=MAX_SAFE_INTEGER, description="The .metadata.generation the condition was set for."
    )
