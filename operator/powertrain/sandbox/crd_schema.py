"""Structural-schema processing of custom resources, in the order the API server applies it.

Follows "Custom Resource Definitions" in the Kubernetes docs: pruning of unknown fields, defaulting,
validation (OpenAPI v3 value checks) and `x-kubernetes-validations` CEL rules (with `oldSelf` transition
rules evaluated only on updates where the old value exists).
"""

from __future__ import annotations

import contextlib
import copy
import re
from functools import lru_cache
from typing import Any

import cel

Cause = dict[str, str]
_META_KEYS = ("apiVersion", "kind", "metadata")


def prune(
    obj: Any, schema: dict[str, Any], *, root: bool = False, dropped: list[str] | None = None, path: str = ""
) -> Any:
    """Drop fields the schema does not specify, unless `x-kubernetes-preserve-unknown-fields` keeps them.

    Dropped field paths are appended to `dropped` (for fieldValidation Warn/Strict).
    """
    if isinstance(obj, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
            return obj
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        keep_unknown = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        embedded = root or bool(schema.get("x-kubernetes-embedded-resource"))
        out: dict[str, Any] = {}
        for key, value in obj.items():
            child = f"{path}.{key}" if path else key
            if embedded and key in _META_KEYS:
                out[key] = value
            elif props is not None and key in props:
                out[key] = prune(value, props[key], dropped=dropped, path=child)
            elif isinstance(addl, dict):
                out[key] = prune(value, addl, dropped=dropped, path=child)
            elif keep_unknown or addl is True:
                out[key] = value
            elif dropped is not None:
                dropped.append(child)
        return out
    if isinstance(obj, list) and isinstance(schema.get("items"), dict):
        return [prune(v, schema["items"], dropped=dropped, path=f"{path}[{i}]") for i, v in enumerate(obj)]
    return obj


def apply_defaults(obj: Any, schema: dict[str, Any]) -> Any:
    if isinstance(obj, dict):
        out = dict(obj)
        for key, sub in (schema.get("properties") or {}).items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            if key in out:
                out[key] = apply_defaults(out[key], sub)
        addl = schema.get("additionalProperties")
        if isinstance(addl, dict):
            for key in out:
                if key not in (schema.get("properties") or {}):
                    out[key] = apply_defaults(out[key], addl)
        return out
    if isinstance(obj, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(v, schema["items"]) for v in obj]
    return obj


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _cause(kind: str, field: str, message: str) -> Cause:
    return {"reason": kind, "field": field, "message": message}


def _should(field: str, shown: str, what: str) -> Cause:
    """A value outside a bound, worded as the real API server words it."""
    return _cause("FieldValueInvalid", field, f"Invalid value: {shown}: {field} in body should {what}")


def validate(obj: Any, schema: dict[str, Any], path: str = "") -> list[Cause]:
    """OpenAPI v3 value checks; each cause names the field, the value and what is allowed."""
    causes: list[Cause] = []
    _validate(obj, schema, path, causes)
    return causes


def _type_ok(value: Any, typ: str | None, schema: dict[str, Any]) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, int | str) and not isinstance(value, bool)
    if typ is None:
        return True
    actual = _type_name(value)
    return actual == typ or (typ == "number" and actual == "integer")


def _validate(value: Any, schema: dict[str, Any], path: str, causes: list[Cause]) -> None:
    field = path or "<root>"
    typ = schema.get("type")
    if value is None:
        if not schema.get("nullable"):
            causes.append(
                _cause(
                    "FieldValueTypeInvalid",
                    field,
                    f'Invalid value: "null": {field} in body must be of type {typ or "object"}: "null"',
                )
            )
        return
    if not _type_ok(value, typ, schema):
        causes.append(
            _cause(
                "FieldValueTypeInvalid",
                field,
                f'Invalid value: {_show(value)}: {field} in body must be of type {typ}: "{_type_name(value)}"',
            )
        )
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(_show(v) for v in schema["enum"])
        causes.append(
            _cause("FieldValueNotSupported", field, f"Unsupported value: {_show(value)}: supported values: {allowed}")
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if lo is not None and (value < lo or (schema.get("exclusiveMinimum") and value == lo)):
            rel = "greater than" if schema.get("exclusiveMinimum") else "greater than or equal to"
            causes.append(_should(field, _show(value), f"be {rel} {lo}"))
        if hi is not None and (value > hi or (schema.get("exclusiveMaximum") and value == hi)):
            rel = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
            causes.append(_should(field, _show(value), f"be {rel} {hi}"))
        mult = schema.get("multipleOf")
        if mult and (value / mult) != int(value / mult):
            causes.append(_should(field, _show(value), f"be a multiple of {mult}"))
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            causes.append(_should(field, _show(value), f"be at least {schema['minLength']} chars long"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            causes.append(
                _cause("FieldValueTooLong", field, f"Too long: may not be more than {schema['maxLength']} bytes")
            )
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            causes.append(_should(field, _show(value), f"match '{schema['pattern']}'"))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            causes.append(_should(field, str(len(value)), f"have at least {schema['minItems']} items"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            causes.append(
                _cause(
                    "FieldValueTooMany", field, f"Too many: {len(value)}: must have at most {schema['maxItems']} items"
                )
            )
        list_type = schema.get("x-kubernetes-list-type")
        if schema.get("uniqueItems") or list_type == "set":
            seen: list[Any] = []
            for i, v in enumerate(value):
                if v in seen:
                    causes.append(_cause("FieldValueDuplicate", f"{field}[{i}]", f"Duplicate value: {_show(v)}"))
                seen.append(v)
        if list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen_keys: list[tuple[Any, ...]] = []
            for i, v in enumerate(value):
                k = tuple(v.get(key) for key in keys) if isinstance(v, dict) else (v,)
                if k in seen_keys:
                    causes.append(
                        _cause(
                            "FieldValueDuplicate",
                            f"{field}[{i}]",
                            f"Duplicate value: {_show(dict(zip(keys, k, strict=False)))}",
                        )
                    )
                seen_keys.append(k)
        items = schema.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(value):
                _validate(v, items, f"{field}[{i}]", causes)
    if isinstance(value, dict):
        for req in schema.get("required") or []:
            if req not in value:
                child = f"{path}.{req}" if path else req
                causes.append(_cause("FieldValueRequired", child, "Required value"))
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            causes.append(
                _cause(
                    "FieldValueInvalid",
                    field,
                    f"{field} in body should have at least {schema['minProperties']} properties",
                )
            )
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            causes.append(
                _cause(
                    "FieldValueTooMany",
                    field,
                    f"{field} in body should have at most {schema['maxProperties']} properties",
                )
            )
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for key, v in value.items():
            child = f"{path}.{key}" if path else key
            if key in props:
                if not path and key == "metadata":
                    continue
                _validate(v, props[key], child, causes)
            elif isinstance(addl, dict):
                _validate(v, addl, child, causes)


@lru_cache(maxsize=1024)
def _pattern(p: str) -> re.Pattern[str]:
    return re.compile(p)


@lru_cache(maxsize=1024)
def _program(rule: str) -> Any:
    return cel.compile(rule)


def _to_cel(value: Any) -> Any:
    # The CEL library wants plain containers; JSON already gives exactly those.
    return value


def cel_errors(new: Any, old: Any, schema: dict[str, Any], path: str = "") -> list[Cause]:
    """Evaluate every `x-kubernetes-validations` rule that applies to `new` (and `old` on updates)."""
    causes: list[Cause] = []
    _cel_walk(new, old, schema, path, causes)
    return causes


def _cel_walk(new: Any, old: Any, schema: dict[str, Any], path: str, causes: list[Cause]) -> None:
    if new is None:
        return
    field = path or "<root>"
    for rule in schema.get("x-kubernetes-validations") or []:
        text = rule.get("rule", "")
        transition = "oldSelf" in text
        if transition and old is None:
            continue
        ctx: dict[str, Any] = {"self": _to_cel(new)}
        if transition:
            ctx["oldSelf"] = _to_cel(old)
        where = field
        if rule.get("fieldPath"):
            where = f"{path}{rule['fieldPath']}" if path else str(rule["fieldPath"]).lstrip(".")
        try:
            ok = _program(text).execute(ctx)
        except Exception as exc:
            causes.append(
                _cause(
                    "FieldValueInvalid",
                    where,
                    f"Invalid value: {_show(new)}: rule {text!r} could not be evaluated: {exc}",
                )
            )
            continue
        if ok is not True:
            message = rule.get("message") or f"failed rule: {text}"
            if rule.get("messageExpression"):
                with contextlib.suppress(Exception):
                    message = str(_program(rule["messageExpression"]).execute(ctx))
            causes.append(
                _cause(rule.get("reason") or "FieldValueInvalid", where, f"Invalid value: {_show(new)}: {message}")
            )
    if isinstance(new, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for key, value in new.items():
            if not path and key == "metadata":
                continue
            sub = props.get(key) if key in props else (addl if isinstance(addl, dict) else None)
            if sub is not None:
                _cel_walk(value, old_map.get(key), sub, f"{path}.{key}" if path else key, causes)
    elif isinstance(new, list) and isinstance(schema.get("items"), dict):
        # Transition rules on list items only correlate for map lists (by key), as in Kubernetes.
        keys = schema.get("x-kubernetes-list-map-keys") if schema.get("x-kubernetes-list-type") == "map" else None
        old_by_key: dict[tuple[Any, ...], Any] = {}
        if keys and isinstance(old, list):
            old_by_key = {tuple(o.get(k) for k in keys): o for o in old if isinstance(o, dict)}
        for i, value in enumerate(new):
            prev = old_by_key.get(tuple(value.get(k) for k in keys)) if keys and isinstance(value, dict) else None
            _cel_walk(value, prev, schema["items"], f"{field}[{i}]", causes)
