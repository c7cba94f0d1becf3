"""Server-side printing: `Table` responses (API concepts: "Receiving resources as Tables").

Custom resources print their CRD's additionalPrinterColumns (JSONPath subset: fields, [n], [*],
[?(@.field=="value")]); built-in kinds print the columns kubectl users expect.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from powertrain.sandbox.resources import ResourceType

Obj = dict[str, Any]

_TOKEN = re.compile(
    r"\.([A-Za-z0-9_\-/]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]|\['([^']+)'\]"
)


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Evaluate a JSONPath of the forms printer columns use; returns every match."""
    expr = path.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    expr = expr.removeprefix("$")
    if not expr.startswith(".") and not expr.startswith("["):
        expr = "." + expr
    current = [obj]
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            return []
        pos = m.end()
        nxt: list[Any] = []
        for cur in current:
            if m.group(1) is not None or m.group(5) is not None:
                name = m.group(1) or m.group(5)
                if isinstance(cur, dict) and name in cur:
                    nxt.append(cur[name])
            elif m.group(2) is not None:
                if isinstance(cur, list):
                    if m.group(2) == "*":
                        nxt.extend(cur)
                    elif int(m.group(2)) < len(cur):
                        nxt.append(cur[int(m.group(2))])
            elif isinstance(cur, list):
                field, want = m.group(3), m.group(4)
                for item in cur:
                    val: Any = item
                    for part in field.split("."):
                        val = val.get(part) if isinstance(val, dict) else None
                    if val is not None and str(val) == want:
                        nxt.append(item)
        current = nxt
    return current


def human_age(since: str | None, now: datetime) -> str:
    """kubectl's duration.HumanDuration, e.g. 45s, 3m12s, 5h, 2d3h."""
    if not since:
        return "<unknown>"
    try:
        then = datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<invalid>"
    secs = max(0, int((now - then).total_seconds()))
    if secs < 120:
        return f"{secs}s"
    mins = secs // 60
    if mins < 10:
        return f"{mins}m{secs % 60}s" if secs % 60 else f"{mins}m"
    if mins < 180:
        return f"{mins}m"
    hours = mins // 60
    if hours < 8:
        return f"{hours}h{mins % 60}m" if mins % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y{days % 365}d"


def _cell(values: list[Any], typ: str, now: datetime) -> Any:
    if not values:
        return None
    value = values[0]
    if typ == "date":
        return human_age(str(value), now)
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, separators=(",", ":"))
    if typ == "string":
        return ",".join(str(v) for v in values) if len(values) > 1 else str(value)
    return value


_NAME_COL = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
_AGE_COL = {
    "name": "Age",
    "type": "string",
    "format": "",
    "description": "CreationTimestamp of the object.",
    "priority": 0,
}


def _col(name: str, typ: str = "string", priority: int = 0, description: str = "") -> dict[str, Any]:
    return {"name": name, "type": typ, "format": "", "description": description or name, "priority": priority}


def _pod_row(obj: Obj, now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount") or 0) for s in statuses)
    phase = status.get("reason") or status.get("phase") or "Pending"
    for s in statuses:
        waiting = (s.get("state") or {}).get("waiting") or {}
        terminated = (s.get("state") or {}).get("terminated") or {}
        if waiting.get("reason"):
            phase = waiting["reason"]
        elif terminated.get("reason") and phase not in ("Succeeded", "Failed"):
            phase = terminated["reason"]
    if obj["metadata"].get("deletionTimestamp"):
        phase = "Terminating"
    return [
        f"{ready}/{len(spec.get('containers') or [])}",
        phase,
        restarts,
        human_age(obj["metadata"].get("creationTimestamp"), now),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
    ]


def _node_row(obj: Obj, now: datetime) -> list[Any]:
    conds = (obj.get("status") or {}).get("conditions") or []
    ready = next((c for c in conds if c.get("type") == "Ready"), None)
    state = "Ready" if ready and ready.get("status") == "True" else "NotReady" if ready else "Unknown"
    if (obj.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = obj["metadata"].get("labels") or {}
    roles = ",".join(sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))) or "<none>"
    info = (obj.get("status") or {}).get("nodeInfo") or {}
    return [state, roles, human_age(obj["metadata"].get("creationTimestamp"), now), info.get("kubeletVersion") or ""]


def _workload_columns(rt: ResourceType) -> tuple[list[dict[str, Any]], Any] | None:
    """The columns kube-apiserver prints for the workload kinds (its printers.go), without the wide ones."""

    def n(o: Obj, key: str) -> int:
        return int((o.get("status") or {}).get(key) or 0)

    def age(o: Obj, now: datetime) -> str:
        return human_age(o["metadata"].get("creationTimestamp"), now)

    def spec_replicas(o: Obj) -> int:
        return int((o.get("spec") or {}).get("replicas", 1))

    if rt.key == "deployments.apps":
        return [_col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"), _AGE_COL], lambda o, now: [
            f"{n(o, 'readyReplicas')}/{spec_replicas(o)}",
            n(o, "updatedReplicas"),
            n(o, "availableReplicas"),
            age(o, now),
        ]
    if rt.key in ("replicasets.apps", "replicationcontrollers"):
        cols = [_col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"), _AGE_COL]
        return cols, lambda o, now: [spec_replicas(o), n(o, "replicas"), n(o, "readyReplicas"), age(o, now)]
    if rt.key == "statefulsets.apps":
        return [_col("Ready"), _AGE_COL], lambda o, now: [f"{n(o, 'readyReplicas')}/{spec_replicas(o)}", age(o, now)]
    if rt.key == "daemonsets.apps":
        cols = [_col(c, "integer") for c in ("Desired", "Current", "Ready", "Up-to-date", "Available")]

        def ds(o: Obj, now: datetime) -> list[Any]:
            selector = ((o.get("spec") or {}).get("template") or {}).get("spec", {}).get("nodeSelector") or {}
            keys = ("desiredNumberScheduled", "currentNumberScheduled", "numberReady", "updatedNumberScheduled")
            shown = ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"
            return [*(n(o, k) for k in keys), n(o, "numberAvailable"), shown, age(o, now)]

        return [*cols, _col("Node Selector"), _AGE_COL], ds
    if rt.key == "jobs.batch":

        def job(o: Obj, now: datetime) -> list[Any]:
            st = o.get("status") or {}
            conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
            state = (
                "Complete"
                if conds.get("Complete") == "True"
                else "Failed"
                if conds.get("Failed") == "True"
                else "Running"
            )
            completions = (o.get("spec") or {}).get("completions")
            done = f"{n(o, 'succeeded')}/{completions if completions is not None else 1}"
            return [state, done, age(o, now)]

        return [_col("Status"), _col("Completions"), _AGE_COL], job
    return None


def _builtin_columns(rt: ResourceType) -> tuple[list[dict[str, Any]], Any, bool] | None:
    """(columns, row function, whether the name column comes first) for the built-in kinds kubectl users know."""
    workload = _workload_columns(rt)
    if workload is not None:
        return workload[0], workload[1], True
    if rt.group == "" and rt.plural == "pods":
        cols = [
            _col("Ready"),
            _col("Status"),
            _col("Restarts", "integer"),
            _AGE_COL,
            _col("IP", priority=1),
            _col("Node", priority=1),
        ]
        return cols, _pod_row, True
    if rt.group == "" and rt.plural == "nodes":
        return [_col("Status"), _col("Roles"), _AGE_COL, _col("Version")], _node_row, True
    if rt.group == "" and rt.plural == "namespaces":
        return (
            [_col("Status"), _AGE_COL],
            lambda o, now: [
                (o.get("status") or {}).get("phase") or "Active",
                human_age(o["metadata"].get("creationTimestamp"), now),
            ],
            True,
        )
    if rt.group == "" and rt.plural == "services":

        def svc(o: Obj, now: datetime) -> list[Any]:
            spec = o.get("spec") or {}
            ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or []) or "<none>"
            return [
                spec.get("type", "ClusterIP"),
                spec.get("clusterIP") or "<none>",
                "<none>",
                ports,
                human_age(o["metadata"].get("creationTimestamp"), now),
            ]

        return [_col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), _AGE_COL], svc, True
    if rt.group == "" and rt.plural == "events":

        def ev(o: Obj, now: datetime) -> list[Any]:
            inv = o.get("involvedObject") or {}
            last = o.get("lastTimestamp") or o.get("eventTime") or o["metadata"].get("creationTimestamp")
            return [
                human_age(last, now),
                o.get("type", ""),
                o.get("reason", ""),
                f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}",
                o.get("message", ""),
                o["metadata"]["name"],
            ]

        # As kubectl prints events: no leading name (it is a wide-only column at the end).
        cols = [
            _col("Last Seen"),
            _col("Type"),
            _col("Reason"),
            _col("Object"),
            _col("Message"),
            _NAME_COL | {"priority": 1},
        ]
        return cols, ev, False
    return None


def to_table(
    rt: ResourceType,
    version: str,
    objs: list[Obj],
    now: datetime,
    *,
    include_object: str,
    resource_version: str,
    cont: str = "",
) -> dict[str, Any]:
    builtin = _builtin_columns(rt)
    name_first = True
    if builtin is not None:
        cols, row_fn, name_first = builtin
        definitions = [_NAME_COL, *cols] if name_first else cols
    else:
        printer = [c for c in rt.printer_columns.get(version) or [] if c.get("name")]
        if not printer:
            printer = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
        definitions = [_NAME_COL] + [
            {
                "name": c["name"],
                "type": "string" if c.get("type") == "date" else c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", ""),
                "priority": c.get("priority", 0),
            }
            for c in printer
        ]

        def row_fn(o: Obj, now: datetime) -> list[Any]:
            return [_cell(jsonpath(o, c["jsonPath"]), c.get("type", "string"), now) for c in printer]

    rows = []
    for o in objs:
        cells = row_fn(o, now)
        row: dict[str, Any] = {"cells": [o["metadata"]["name"], *cells] if name_first else cells}
        if include_object == "Object":
            row["object"] = o
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}
        rows.append(row)
    meta: dict[str, Any] = {"resourceVersion": resource_version}
    if cont:
        meta["continue"] = cont
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": definitions,
        "rows": rows,
    }
