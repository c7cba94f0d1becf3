"""The two Event APIs as two views of one set of objects, as in Kubernetes: core/v1 `Event` and
`events.k8s.io/v1` `Event` ("Event v1 events.k8s.io" API reference: regarding = involvedObject, note = message,
reportingController/Instance = source, deprecated* = the core timestamps and count).

Every write to either API is mirrored, with the same name, uid and resourceVersion, into the other.
"""

from __future__ import annotations

from typing import Any

CORE_KEY = "events"
V1_KEY = "events.events.k8s.io"

Obj = dict[str, Any]


# events.k8s.io/v1 name → core/v1 name of the same field.
_V1_TO_CORE: dict[str, str] = {
    "regarding": "involvedObject",
    "note": "message",
    "reason": "reason",
    "type": "type",
    "action": "action",
    "related": "related",
    "eventTime": "eventTime",
    "series": "series",
    "reportingController": "reportingComponent",
    "reportingInstance": "reportingInstance",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_CORE_TO_V1: dict[str, str] = {core: v1 for v1, core in _V1_TO_CORE.items()}


def _view(ev: Obj, api_version: str, names: dict[str, str], derived: Obj) -> Obj:
    fields = {to: ev.get(name) for name, to in names.items()} | derived
    out: Obj = {"apiVersion": api_version, "kind": "Event", "metadata": dict(ev.get("metadata") or {})}
    out.update({k: v for k, v in fields.items() if v not in (None, "")})
    return out


def core_to_v1(ev: Obj) -> Obj:
    source = ev.get("source") or {}
    # Older clients name the reporter only in `source`.
    derived = {
        "reportingController": ev.get("reportingComponent") or source.get("component"),
        "reportingInstance": ev.get("reportingInstance") or source.get("host"),
        "deprecatedSource": source or None,
    }
    return _view(ev, "events.k8s.io/v1", _CORE_TO_V1, derived)


def v1_to_core(ev: Obj) -> Obj:
    source = ev.get("deprecatedSource") or {}
    if not source and ev.get("reportingController"):
        source = {"component": ev["reportingController"]}
        if ev.get("reportingInstance"):
            source["host"] = ev["reportingInstance"]
    return _view(ev, "v1", _V1_TO_CORE, {"involvedObject": ev.get("regarding") or {}, "source": source or None})


def mirror(key: str, obj: Obj) -> tuple[str, Obj] | None:
    """The other API's key and view of an event written under `key`; None for anything else."""
    if key == CORE_KEY:
        return V1_KEY, core_to_v1(obj)
    if key == V1_KEY:
        return CORE_KEY, v1_to_core(obj)
    return None
