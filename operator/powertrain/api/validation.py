"""Turn pydantic validation errors into messages a person would write: field path, bad value, what is allowed."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from powertrain.api.common import CelRuleViolation

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str
    value: Any = None
    has_value: bool = False

    def __str__(self) -> str:
        if self.has_value:
            return f"{self.path}: {_show(self.value)} is invalid: {self.message}"
        return f"{self.path}: {self.message}"


class InvalidObject(ValueError):
    """A spec that cannot be accepted; `errors` lists every problem found, not just the first."""

    def __init__(self, kind: str, errors: list[FieldError]) -> None:
        self.kind = kind
        self.errors = errors
        super().__init__(self.summary())

    def summary(self) -> str:
        lines = "; ".join(str(e) for e in self.errors)
        return f"invalid {self.kind}: {lines}"


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _path(loc: tuple[int | str, ...], prefix: str) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out or "(root)"


def _allowed_fields(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Wire names of the fields of the model found at `loc` (for 'did you mean' hints)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        fields = {(f.alias or n): f for n, f in current.model_fields.items()}
        info = fields.get(str(part))
        if info is None:
            return []
        current = _model_in(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [(f.alias or n) for n, f in current.model_fields.items()]
    return []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    simple = {
        "missing": "is required",
        "int_type": "must be an integer",
        "int_parsing": "must be an integer",
        "int_from_float": "must be a whole number",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "string_type": "must be a string",
        "dict_type": "must be an object",
        "model_type": "must be an object",
        "model_attributes_type": "must be an object",
        "list_type": "must be a list",
        "datetime_type": "must be an RFC 3339 timestamp",
        "datetime_parsing": "must be an RFC 3339 timestamp",
        "datetime_from_date_parsing": "must be an RFC 3339 timestamp",
    }
    if kind in simple:
        return simple[kind]
    bounds = {
        "greater_than_equal": ("ge", "must be ≥ {}"),
        "greater_than": ("gt", "must be > {}"),
        "less_than_equal": ("le", "must be ≤ {}"),
        "less_than": ("lt", "must be < {}"),
        "too_short": ("min_length", "must have at least {} item(s)"),
        "too_long": ("max_length", "must have at most {} item(s)"),
        "string_too_short": ("min_length", "must be at least {} character(s) long"),
        "string_too_long": ("max_length", "must be at most {} character(s) long"),
    }
    if kind in bounds:
        key, template = bounds[kind]
        return template.format(ctx.get(key, "?"))
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        if pattern.startswith("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"):
            return "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"
        return f"must match the pattern {pattern}"
    if kind in ("enum", "literal_error"):
        expected = ctx.get("expected", "")
        return f"must be one of {expected}"
    msg = str(err.get("msg", kind))
    return msg.removeprefix("Value error, ")


def field_errors(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> list[FieldError]:
    out: list[FieldError] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            parent, name = loc[:-1], str(loc[-1])
            allowed = _allowed_fields(model, parent)
            hint = difflib.get_close_matches(name, allowed, n=1)
            suggestion = (
                f"; did you mean {hint[0]!r}?" if hint else (f"; known fields: {', '.join(allowed)}" if allowed else "")
            )
            out.append(FieldError(_path(loc, prefix), f"unknown field{suggestion}"))
            continue
        violation = (err.get("ctx") or {}).get("error")
        if isinstance(violation, CelRuleViolation):
            if violation.field:
                loc = (*loc, *violation.field.split("."))
            out.append(FieldError(_path(loc, prefix), violation.message))
            continue
        has_value = kind != "missing" and not isinstance(err.get("input"), dict | list)
        out.append(FieldError(_path(loc, prefix), _message(err), err.get("input"), has_value))
    return out


def parse(model: type[M], data: Any, *, kind: str | None = None, prefix: str = "") -> M:
    """Validate `data` (wire form) into `model`, raising InvalidObject with readable messages."""
    kind = kind or model.__name__
    if not isinstance(data, Mapping):
        raise InvalidObject(kind, [FieldError(prefix or "(root)", f"must be an object, got {_show(data)}")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidObject(kind, field_errors(exc, model, prefix)) from None
    except (RecursionError, OverflowError) as exc:  # absurdly nested or huge input
        raise InvalidObject(kind, [FieldError(prefix or "(root)", f"cannot be read: {exc}")]) from None
