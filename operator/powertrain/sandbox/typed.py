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
from functools import cache, lru_cache
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
    "replicationcontrollers": "V1ReplicationController",
    "deployments.apps": "V1Deployment",
    "replicasets.apps": "V1ReplicaSet",
    "statefulsets.apps": "V1StatefulSet",
    "daemonsets.apps": "V1DaemonSet",
    "controllerrevisions.apps": "V1ControllerRevision",
    "jobs.batch": "V1Job",
    "poddisruptionbudgets.policy": "V1PodDisruptionBudget",
    "networkpolicies.networking.k8s.io": "V1NetworkPolicy",
    "roles.rbac.authorization.k8s.io": "V1Role",
    "rolebindings.rbac.authorization.k8s.io": "V1RoleBinding",
    "clusterroles.rbac.authorization.k8s.io": "V1ClusterRole",
    "clusterrolebindings.rbac.authorization.k8s.io": "V1ClusterRoleBinding",
    "validatingadmissionpolicies.admissionregistration.k8s.io": "V1ValidatingAdmissionPolicy",
    "validatingadmissionpolicybindings.admissionregistration.k8s.io": "V1ValidatingAdmissionPolicyBinding",
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
_SUFFIXES: dict[str, Decimal | int] = {
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


@cache
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


@lru_cache(maxsize=4096)  # the same few quantities come back in every pod
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


# A path into the object, built as linked pairs (cheap per field) and rendered only for a message:
# (parent, ("f", name) | ("i", index) | ("k", map key)).
_Path = tuple[Any, tuple[str, Any]] | None


def _render(path: _Path, indexed: bool) -> str:
    parts: list[tuple[str, Any]] = []
    while path is not None:
        path, seg = path
        parts.append(seg)
    out = ""
    for kind, v in reversed(parts):
        if kind == "f":
            out = f"{out}.{v}" if out else str(v)
        elif indexed:
            out += f"[{v}]"
    return out


@cache
def _shape(typ: str) -> tuple[str, str]:
    """A model type string as (what, inner): list / dict of inner, a primitive, or another model."""
    if (m := _LIST.match(typ)) is not None:
        return "list", m.group(1)
    if (m := _DICT.match(typ)) is not None:
        return "dict", m.group(1)
    if typ in ("str", "datetime", "bytes", "bool", "int", "float", "object"):
        return "prim", typ
    return "model", typ


class _Walk:
    def __init__(self) -> None:
        self.unknown: list[tuple[dict[str, Any], str, _Path]] = []

    def value(self, value: Any, typ: str, struct: str, path: _Path, name: str) -> None:
        if value is None:
            return  # null decodes to the zero value anywhere
        what, inner = _shape(typ)
        if what == "list":
            if not isinstance(value, list):
                raise self._mismatch(value, _go_type(typ, name), struct, path)
            for i, v in enumerate(value):
                self.value(v, inner, struct, (path, ("i", i)), name)
        elif what == "dict":
            if not isinstance(value, dict):
                raise self._mismatch(value, _go_type(typ, name), struct, path)
            quantities = name in _QUANTITY_MAPS and inner == "str"
            for k, v in value.items():
                if quantities:
                    self._quantity(v, struct, path)
                else:
                    self.value(v, inner, struct, (path, ("k", k)), name)
        elif what == "model":
            self.object(value, typ, path, struct)
        elif inner == "object":
            return
        elif inner == "str" and name in _QUANTITY_FIELDS:
            self._quantity(value, struct, path)
        elif inner in ("str", "datetime", "bytes"):
            if not isinstance(value, str):
                raise self._mismatch(value, _go_type(inner, name), struct, path)
        elif inner == "bool":
            if not isinstance(value, bool):
                raise self._mismatch(value, "bool", struct, path)
        elif inner == "int":
            go = _go_type(inner, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self._mismatch(value, go, struct, path)
            lo, hi = _INT_RANGE[go]
            if (isinstance(value, float) and not value.is_integer()) or not lo <= value <= hi:
                raise self._mismatch(value, go, struct, path, literal=True)
        elif isinstance(value, bool) or not isinstance(value, int | float):  # float
            raise self._mismatch(value, "float64", struct, path)

    def object(self, value: Any, model: str, path: _Path, parent: str = "") -> None:
        struct = _go_struct(model)
        if not isinstance(value, dict):
            if path is None:
                raise DecodeError(f"json: cannot unmarshal {_json_kind(value)} into Go value of type v1.{struct}")
            raise self._mismatch(value, "v1." + struct, parent, path)
        fields = _fields(model)
        for k, v in value.items():
            spec = fields.get(k)
            if spec is None:
                self.unknown.append((value, k, (path, ("f", k))))
            else:
                self.value(v, spec[1], struct, (path, ("f", k)), k)

    def _quantity(self, value: Any, struct: str, path: _Path) -> None:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self._mismatch(value, "resource.Quantity", struct, path)
        if isinstance(value, str):
            parse_quantity(value)

    @staticmethod
    def _mismatch(value: Any, go_type: str, struct: str, path: _Path, *, literal: bool = False) -> DecodeError:
        what = f"number {value}" if literal else _json_kind(value)
        where = _render(path, indexed=False)
        return DecodeError(f"json: cannot unmarshal {what} into Go struct field {struct}.{where} of type {go_type}")


def decodes(key: str) -> bool:
    return key in _ROOT_MODELS


def decode(key: str, kind: str, version: str, obj: dict[str, Any], field_validation: str) -> list[str]:
    """Type-check a built-in object in place, drop its unknown fields; returns the warnings to send.

    Raises 400 BadRequest as the real handler does when the body does not decode (or, Strict, has unknown
    fields)."""
    walk = _Walk()
    try:
        walk.object(obj, _ROOT_MODELS[key], None)
    except DecodeError as exc:
        raise _cannot_handle(kind, version, str(exc)) from None
    unknown = [_render(path, indexed=True) for _, _, path in walk.unknown]
    if unknown and field_validation == "Strict":
        listed = ", ".join(f'unknown field "{u}"' for u in unknown)
        raise _cannot_handle(kind, version, f"strict decoding error: {listed}")
    for container, k, _ in walk.unknown:
        container.pop(k, None)  # the typed struct has nowhere to keep it
    return [f'unknown field "{u}"' for u in unknown] if field_validation == "Warn" else []


def _cannot_handle(kind: str, version: str, why: str) -> ApiError:
    return bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {why}')
