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


def _meta(obj: Obj) -> dict[str, Any]:
    return dict(obj.get("metadata") or {})


def core_to_v1(ev: Obj) -> Obj:
    source = ev.get("source") or {}
    out: Obj = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": _meta(ev)}
    pairs = {
        "regarding": ev.get("involvedObject"),
        "note": ev.get("message"),
        "reason": ev.get("reason"),
        "type": ev.get("type"),
        "action": ev.get("action"),
        "related": ev.get("related"),
        "eventTime": ev.get("eventTime"),
        "reportingController": ev.get("reportingComponent") or source.get("component"),
        "reportingInstance": ev.get("reportingInstance") or source.get("host"),
        "deprecatedSource": source or None,
        "deprecatedFirstTimestamp": ev.get("firstTimestamp"),
        "deprecatedLastTimestamp": ev.get("lastTimestamp"),
        "deprecatedCount": ev.get("count"),
        "series": ev.get("series"),
    }
    out.update({k: v for k, v in pairs.items() if v not in (None, "")})
    return out


def v1_to_core(ev: Obj) -> Obj:
    source = ev.get("deprecatedSource") or {}
    if not source and ev.get("reportingController"):
        source = {"component": ev["reportingController"]}
        if ev.get("reportingInstance"):
            source["host"] = ev["reportingInstance"]
    out: Obj = {"apiVersion": "v1", "kind": "Event", "metadata": _meta(ev)}
    pairs = {
        "involvedObject": ev.get("regarding") or {},
        "message": ev.get("note"),
        "reason": ev.get("reason"),
        "type": ev.get("type"),
        "action": ev.get("action"),
        "related": ev.get("related"),
        "eventTime": ev.get("eventTime"),
        "reportingComponent": ev.get("reportingController"),
        "reportingInstance": ev.get("reportingInstance"),
        "source": source or None,
        "firstTimestamp": ev.get("deprecatedFirstTimestamp"),
        "lastTimestamp": ev.get("deprecatedLastTimestamp"),
        "count": ev.get("deprecatedCount"),
        "series": ev.get("series"),
    }
    out.update({k: v for k, v in pairs.items() if v not in (None, "")})
    return out


def mirror(key: str, obj: Obj) -> tuple[str, Obj] | None:
    """The other API's key and view of an event written under `key`; None for anything else."""
    if key == CORE_KEY:
        return V1_KEY, core_to_v1(obj)
    if key == V1_KEY:
        return CORE_KEY, v1_to_core(obj)
    return None
