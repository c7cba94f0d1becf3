"""Built-in kinds decoded as the API server decodes them into their Go types, before any validation.

The real server unmarshals a built-in object's JSON into a typed struct, so [API concepts: "Field validation"]:
- a value of the wrong JSON type (a string where an int32 belongs, an object where a list belongs, a number
  past int32) fails decoding: 400 BadRequest, `Pod in version "v1" cannot be handled as a Pod: json: cannot
  unmarshal string into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32`;
- a resource quantity that does not parse fails the same way (`quantities must match the regular expression
  ...`);
- a field the type does not have is dropped: with `fieldValidation=Strict` (kubectl's default) the request
  fails with 400 `strict decoding error: unknown field "spec.containers[0].imagePullPolcy"`, with `Warn` it
  comes back as a warning, with `Ignore` silently.
The types are the `kubernetes` client's generated models (the same OpenAPI the server publishes); integer
widths, which the models do not carry, are int32 except for the int64 fields named below.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from powertrain.sandbox.errors import ApiError, bad_request

# The models each built-in kind decodes into (storage key → model class name in kubernetes.client.models).
_ROOT_MODELS = {
    "pods": "V1Pod",
    "services": "V1Service",
    "endpoints": "V1Endpoints",
    "configmaps": "V1ConfigMap",
    "secrets": "V1Secret",
    "serviceaccounts": "V1ServiceAccount",
    "namespaces": "V1Namespace",
    "nodes": "V1Node",
    "events": "CoreV1Event",
    "events.events.k8s.io": "EventsV1Event",
    "leases.coordination.k8s.io": "V1Lease",
}
# JSON names of the int64 fields among the kinds above; every other integer is an int32.
_INT64_FIELDS = frozenset(
    {
        "terminationGracePeriodSeconds",
        "activeDeadlineSeconds",
        "deletionGracePeriodSeconds",
        "generation",
        "observedGeneration",
        "runAsUser",
        "runAsGroup",
        "fsGroup",
        "supplementalGroups",
        "expirationSeconds",
        "seconds",
        "value",
    }
)
_QUANTITY_MAPS = frozenset({"limits", "requests", "capacity", "allocatable", "overhead", "hard", "used"})
_QUANTITY_FIELDS = frozenset({"sizeLimit", "storage"})
_QUANTITY_FMT = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_QUANTITY = re.compile(_QUANTITY_FMT)
_SUFFIXES = {
    "": 1,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_LIST = re.compile(r"^List\[(.+)\]$")
_DICT = re.compile(r"^Dict\[str, (.+)\]$")


class DecodeError(Exception):
    """The Go decoder's message, before the handler wraps it with the kind."""


@cache
def _fields(model: str) -> dict[str, tuple[str, str]]:
    """JSON name → (python attribute, type string) of a generated model."""
    from kubernetes.client import models  # imported on first use: it is large

    cls = getattr(models, model)
    return {cls.attribute_map[attr]: (attr, typ) for attr, typ in cls.openapi_types.items()}


def _go_struct(model: str) -> str:
    return re.sub(r"^(Core|Events)?V\d+(alpha\d+|beta\d+)?", "", model)


def _go_type(typ: str, json_name: str) -> str:
    if (m := _LIST.match(typ)) is not None:
        return "[]" + _go_type(m.group(1), json_name)
    if (m := _DICT.match(typ)) is not None:
        return "map[string]" + _go_type(m.group(1), json_name)
    if typ == "int":
        return "int64" if json_name in _INT64_FIELDS else "int32"
    simple = {
        "str": "string",
        "bytes": "[]uint8",
        "float": "float64",
        "bool": "bool",
        "datetime": "v1.Time",
        "object": "interface {}",
    }
    return simple.get(typ) or "v1." + _go_struct(typ)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def parse_quantity(text: str) -> Decimal:
    """A resource.Quantity's value; DecodeError with the API server's message when it does not parse."""
    m = _QUANTITY.match(text)
    if m is None:
        raise DecodeError(f"quantities must match the regular expression '{_QUANTITY_FMT}'")
    number, suffix = m.groups()
    try:
        base = Decimal(number)
        if suffix in _SUFFIXES:
            return base * Decimal(_SUFFIXES[suffix])
        if suffix[:1] in ("e", "E"):
            return base * Decimal(10) ** int(suffix[1:])
    except (InvalidOperation, ValueError):
        raise DecodeError(f"quantities must match the regular expression '{_QUANTITY_FMT}'") from None
    raise DecodeError("unable to parse quantity's suffix")


class _Walk:
    def __init__(self) -> None:
        self.unknown: list[str] = []

    def value(self, value: Any, typ: str, struct: str, dotted: str, indexed: str, name: str) -> Any:
        """`value` decoded as `typ`; returns it with unknown fields removed."""
        if value is None:
            return None
        if (m := _LIST.match(typ)) is not None:
            self._expect(value, list, typ, struct, dotted, name)
            return [self.value(v, m.group(1), struct, dotted, f"{indexed}[{i}]", name) for i, v in enumerate(value)]
        if (m := _DICT.match(typ)) is not None:
            self._expect(value, dict, typ, struct, dotted, name)
            inner = m.group(1)
            quantities = name in _QUANTITY_MAPS and inner == "str"
            out = {}
            for k, v in value.items():
                if quantities:
                    self._quantity(v, struct, dotted, name)
                    out[k] = v
                else:
                    out[k] = self.value(v, inner, struct, dotted, f"{indexed}[{k}]", name)
            return out
        if typ == "object":
            return value
        if typ in ("str", "datetime", "bytes"):
            if name in _QUANTITY_FIELDS and typ == "str":
                self._quantity(value, struct, dotted, name)
                return value
            self._expect(value, str, typ, struct, dotted, name)
            return value
        if typ == "bool":
            self._expect(value, bool, typ, struct, dotted, name)
            return value
        if typ == "int":
            go = _go_type(typ, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self._mismatch(_json_kind(value), go, struct, dotted)
            lo, hi = _INT_RANGE[go]
            if (isinstance(value, float) and not value.is_integer()) or not lo <= value <= hi:
                raise self._mismatch(f"number {value}", go, struct, dotted)
            return int(value)
        if typ == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self._mismatch(_json_kind(value), "float64", struct, dotted)
            return value
        return self.object(value, typ, dotted, indexed, struct)

    def object(self, value: Any, model: str, dotted: str, indexed: str, parent: str = "") -> dict[str, Any]:
        fields = _fields(model)
        struct = _go_struct(model)
        if not isinstance(value, dict):
            if not dotted:
                raise DecodeError(f"json: cannot unmarshal {_json_kind(value)} into Go value of type v1.{struct}")
            raise self._mismatch(_json_kind(value), "v1." + struct, parent, dotted)
        out = {}
        for k, v in value.items():
            spec = fields.get(k)
            sub_dotted = f"{dotted}.{k}" if dotted else k
            sub_indexed = f"{indexed}.{k}" if indexed else k
            if spec is None:
                self.unknown.append(sub_indexed)
                continue
            out[k] = self.value(v, spec[1], struct, sub_dotted, sub_indexed, k)
        return out

    def _quantity(self, value: Any, struct: str, dotted: str, name: str) -> None:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self._mismatch(_json_kind(value), "resource.Quantity", struct, dotted)
        if isinstance(value, str):
            parse_quantity(value)

    def _expect(self, value: Any, cls: type, typ: str, struct: str, dotted: str, name: str) -> None:
        ok = isinstance(value, cls) and (cls is not int or not isinstance(value, bool))
        if not ok:
            raise self._mismatch(_json_kind(value), _go_type(typ, name), struct, dotted)

    @staticmethod
    def _mismatch(what: str, go_type: str, struct: str, dotted: str) -> DecodeError:
        return DecodeError(f"json: cannot unmarshal {what} into Go struct field {struct}.{dotted} of type {go_type}")


def decodes(key: str) -> bool:
    return key in _ROOT_MODELS


def decode(key: str, kind: str, version: str, obj: dict[str, Any], field_validation: str) -> list[str]:
    """Type-check a built-in object in place, drop its unknown fields; returns the warnings to send.

    Raises 400 BadRequest as the real handler does when the body does not decode (or, Strict, has unknown
    fields)."""
    walk = _Walk()
    try:
        decoded = walk.object(obj, _ROOT_MODELS[key], "", "")
    except DecodeError as exc:
        raise _cannot_handle(kind, version, str(exc)) from None
    if walk.unknown and field_validation == "Strict":
        unknown = ", ".join(f'unknown field "{u}"' for u in walk.unknown)
        raise _cannot_handle(kind, version, f"strict decoding error: {unknown}")
    if walk.unknown:
        obj.clear()
        obj.update(decoded)
    return [f'unknown field "{u}"' for u in walk.unknown] if field_validation == "Warn" else []


def _cannot_handle(kind: str, version: str, why: str) -> ApiError:
    return bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {why}')
