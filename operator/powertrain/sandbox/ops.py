"""Node faults for reliability tests, done through the API as the real actors would do them.

* `set_node_ready(..., "False" | "Unknown" | "True")`: what the node lifecycle controller writes when a kubelet
  reports NotReady (False) or stops reporting (Unknown): the Ready condition, plus the
  node.kubernetes.io/not-ready or /unreachable taints with NoSchedule and NoExecute effects; "True" restores
  Ready and removes those taints. The sandbox kubelet then freezes, evicts or resumes the node's pods.
* `cordon` / `uncordon`: spec.unschedulable, as `kubectl cordon` sets it.
* `remove_node`: deletes the Node; pod GC then force-deletes the pods bound to it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from powertrain.core.predicates import NO_EXECUTE, NO_SCHEDULE, TAINT_NOT_READY, TAINT_UNREACHABLE
from powertrain.sandbox.restclient import MERGE_PATCH, Obj, RestClient, RestError, api_path

ReadyStatus = Literal["True", "False", "Unknown"]

_REASONS: dict[str, tuple[str, str]] = {
    "True": ("KubeletReady", "kubelet is posting ready status"),
    "False": ("KubeletNotReady", "container runtime network not ready (sandbox fault injection)"),
    "Unknown": ("NodeStatusUnknown", "Kubelet stopped posting node status."),
}
_CONFLICT_RETRIES = 10


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def _update(client: RestClient, name: str, sub: str | None, change: Any) -> Obj:
    """GET, change, PUT with the read resourceVersion; retried on 409 as every controller does."""
    path = api_path("nodes", name=name)
    for _ in range(_CONFLICT_RETRIES):
        node = await client.get(path)
        change(node)
        try:
            return await client.replace(path + (f"/{sub}" if sub else ""), node)
        except RestError as exc:
            if exc.code != 409:
                raise
        await asyncio.sleep(0.01)
    raise RestError(409, "Conflict", f"node {name}: gave up after {_CONFLICT_RETRIES} conflicting updates")


async def set_node_ready(client: RestClient, name: str, status: ReadyStatus) -> Obj:
    """Returns the node as last written."""
    if status not in _REASONS:
        raise ValueError(f"node Ready status {status!r} is invalid: must be one of True, False, Unknown")
    reason, message = _REASONS[status]
    now = _now()

    def set_condition(node: Obj) -> None:
        conditions = node.setdefault("status", {}).setdefault("conditions", [])
        for cond in conditions:
            if cond.get("type") == "Ready":
                if cond.get("status") != status:
                    cond["lastTransitionTime"] = now
                cond.update(status=status, reason=reason, message=message, lastHeartbeatTime=now)
                return
        conditions.append(
            {
                "type": "Ready",
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        )

    def set_taints(node: Obj) -> None:
        spec = node.setdefault("spec", {})
        keep = [t for t in spec.get("taints") or [] if t.get("key") not in (TAINT_NOT_READY, TAINT_UNREACHABLE)]
        if status != "True":
            key = TAINT_NOT_READY if status == "False" else TAINT_UNREACHABLE
            keep.append({"key": key, "effect": NO_SCHEDULE})
            keep.append({"key": key, "effect": NO_EXECUTE, "timeAdded": now})
        if keep:
            spec["taints"] = keep
        else:
            spec.pop("taints", None)

    # Condition first: the scheduler already filters not-Ready nodes, so the taints may follow.
    await _update(client, name, "status", set_condition)
    return await _update(client, name, None, set_taints)


async def cordon(client: RestClient, name: str, unschedulable: bool = True) -> Obj:
    return await client.patch(
        api_path("nodes", name=name), {"spec": {"unschedulable": True if unschedulable else None}}, MERGE_PATCH
    )


async def uncordon(client: RestClient, name: str) -> Obj:
    return await cordon(client, name, unschedulable=False)


async def remove_node(client: RestClient, name: str) -> None:
    await client.delete(api_path("nodes", name=name))
