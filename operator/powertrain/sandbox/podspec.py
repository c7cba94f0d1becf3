"""The pod spec rules the API server's validation applies after decoding and defaulting (ValidatePodSpec), with
its messages: `Pod "x" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be
between 1 and 65535, inclusive` (422 Invalid, one cause per rule broken). [Pods; Containers: "Container
names"; Resource management: "Requests and limits", "Extended resources"; Pod lifecycle: "Restart policy"]

Covered: containers present, names DNS-1123 labels and unique across init and app containers, image present,
imagePullPolicy and restartPolicy enums, ports in 1..65535 with a known protocol, env entries named and not
both `value` and `valueFrom`, quantities not negative, requests not above limits, extended resources whole
and with requests equal to limits, terminationGracePeriodSeconds ≥ 0, activeDeadlineSeconds in 1..2^31-1.
Not covered: volumes, probes, security contexts, affinity and the rest of the spec.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from powertrain.sandbox.objectmeta import dns1123_label_errors, go_quote, invalid
from powertrain.sandbox.typed import DecodeError, parse_quantity

Cause = dict[str, str]

_PROTOCOLS = ("SCTP", "TCP", "UDP")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_OVERCOMMIT = ("cpu", "memory", "ephemeral-storage")
MAX_INT32 = 2**31 - 1


def required(field: str, detail: str = "") -> Cause:
    return {
        "reason": "FieldValueRequired",
        "field": field,
        "message": "Required value" + (f": {detail}" if detail else ""),
    }


def not_supported(field: str, value: Any, allowed: tuple[str, ...]) -> Cause:
    shown = ", ".join(f'"{a}"' for a in allowed)
    return {
        "reason": "FieldValueNotSupported",
        "field": field,
        "message": f"Unsupported value: {go_quote(value)}: supported values: {shown}",
    }


def _range(field: str, value: int, lo: int, hi: int) -> list[Cause]:
    return [] if lo <= value <= hi else [invalid(field, value, f"must be between {lo} and {hi}, inclusive")]


def spec_errors(spec: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    containers = spec.get("containers") or []
    if not containers:
        return [required("spec.containers")]
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            causes.extend(_container_errors(c, f"spec.{group}[{i}]", seen))
    policy = spec.get("restartPolicy")
    if policy not in _RESTART_POLICIES:
        causes.append(not_supported("spec.restartPolicy", policy or "", _RESTART_POLICIES))
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace < 0:
        causes.append(invalid("spec.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0"))
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int):
        causes.extend(_range("spec.activeDeadlineSeconds", deadline, 1, MAX_INT32))
    return causes


def _container_errors(c: dict[str, Any], path: str, seen: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    name = c.get("name") or ""
    if not name:
        causes.append(required(f"{path}.name"))
    else:
        causes.extend(invalid(f"{path}.name", name, m) for m in dns1123_label_errors(name))
        if name in seen:
            causes.append(
                {
                    "reason": "FieldValueDuplicate",
                    "field": f"{path}.name",
                    "message": f"Duplicate value: {go_quote(name)}",
                }
            )
        seen.add(name)
    if not c.get("image"):
        causes.append(required(f"{path}.image"))
    pull = c.get("imagePullPolicy")
    if pull is not None and pull not in _PULL_POLICIES:
        causes.append(not_supported(f"{path}.imagePullPolicy", pull, _PULL_POLICIES))
    for j, p in enumerate(c.get("ports") or []):
        where = f"{path}.ports[{j}]"
        port = p.get("containerPort") or 0
        if not port:
            causes.append(required(f"{where}.containerPort"))
        else:
            causes.extend(_range(f"{where}.containerPort", port, 1, 65535))
        if p.get("hostPort"):
            causes.extend(_range(f"{where}.hostPort", p["hostPort"], 1, 65535))
        if p.get("protocol") not in _PROTOCOLS:
            causes.append(not_supported(f"{where}.protocol", p.get("protocol") or "", _PROTOCOLS))
    for j, e in enumerate(c.get("env") or []):
        where = f"{path}.env[{j}]"
        if not e.get("name"):
            causes.append(required(f"{where}.name"))
        if e.get("value") and e.get("valueFrom") is not None:
            causes.append(invalid(f"{where}.valueFrom", "", "may not be specified when `value` is not empty"))
    causes.extend(_resource_errors(c.get("resources") or {}, f"{path}.resources"))
    return causes


def _quantity(value: Any) -> Decimal:
    if isinstance(value, int | float):
        return Decimal(str(value))
    try:
        return parse_quantity(str(value))
    except DecodeError:
        return Decimal(0)  # decoding refused it already; nothing reaches here unparsed


def _resource_errors(res: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    for kind, values in (("limits", limits), ("requests", requests)):
        for rname, raw in values.items():
            q = _quantity(raw)
            where = f"{path}.{kind}[{rname}]"
            if q < 0:
                causes.append(invalid(where, str(raw), "must be greater than or equal to 0"))
            elif _extended(rname) and q != q.to_integral_value():
                causes.append(invalid(where, str(raw), "must be an integer"))
    for rname, raw in requests.items():
        q = _quantity(raw)
        if rname in limits:
            limit = _quantity(limits[rname])
            if q != limit and rname not in _OVERCOMMIT:
                causes.append(
                    invalid(f"{path}.requests", str(raw), f"must be equal to {rname} limit of {limits[rname]}")
                )
            elif q > limit:
                causes.append(
                    invalid(
                        f"{path}.requests", str(raw), f"must be less than or equal to {rname} limit of {limits[rname]}"
                    )
                )
        elif rname not in _OVERCOMMIT and not rname.startswith("hugepages-"):
            causes.append(required(f"{path}.limits", "Limit must be set for non overcommitable resources"))
    return causes


def _extended(rname: str) -> bool:
    return "/" in rname and not rname.startswith(("kubernetes.io/", "requests."))
