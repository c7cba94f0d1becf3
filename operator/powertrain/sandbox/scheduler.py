"""A simple default scheduler, so the sandbox behaves like a cluster that runs kube-scheduler.

It binds pods whose `spec.schedulerName` is `default-scheduler` (or unset) through the pods/binding
subresource, and leaves pods of any other scheduler (e.g. `powertrain`) alone, as a real cluster does. The
filters are kube-scheduler's, from powertrain.core.predicates: resource fit against allocatable minus what the
bound, unfinished pods of every scheduler request; nodeSelector and required node affinity; taints and
tolerations; cordoned (unschedulable) and not-Ready nodes. Among feasible nodes it prefers the least allocated
(kube-scheduler's default scoring). As kube-scheduler does in big clusters, it stops looking once it has found
`feasible_nodes_to_find` feasible nodes, and the next pod's search starts where this one stopped. When
nothing fits it sets PodScheduled=False, reason Unschedulable, with kube-scheduler's "0/N nodes are available:
…" message (a node is counted under the first filter it fails), and retries when a node changes or a pod
releases resources (at most once per `retry_seconds`).

Pods are taken by priority (higher first), then by creation order. No preemption, pod affinity, topology
spread or volume binding: Powertrain's own scheduler owns gang placement.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Final

from powertrain.core.predicates import (
    insufficient_resources,
    node_allocatable,
    node_filters,
    pod_requests,
    subtract,
    unschedulable_message,
)
from powertrain.core.quantity import PODS
from powertrain.sandbox.restclient import (
    STRATEGIC_MERGE_PATCH,
    TERMINAL_PHASES,
    Informer,
    Obj,
    RestClient,
    RestError,
    api_path,
    meta_of,
    obj_key,
    phase_of,
    spec_of,
)

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER: Final = "default-scheduler"
FILTER_CACHE_LIMIT: Final = 200_000


def is_ours(pod: Mapping[str, Any]) -> bool:
    return (spec_of(pod).get("schedulerName") or DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER


def needs_scheduling(pod: Mapping[str, Any]) -> bool:
    return (
        is_ours(pod)
        and not spec_of(pod).get("nodeName")
        and not meta_of(pod).get("deletionTimestamp")
        and phase_of(pod) not in TERMINAL_PHASES
    )


def feasible_nodes_to_find(count: int) -> int:
    """kube-scheduler's adaptive percentageOfNodesToScore: in big clusters stop after this many feasible nodes."""
    if count < 100:
        return count
    percentage = max(5, 50 - count // 125)
    return max(100, count * percentage // 100)


def placement_shape(pod: Mapping[str, Any]) -> str:
    """What, besides resources, decides where a pod may go: pods alike share their node-filter results."""
    spec = spec_of(pod)
    return json.dumps(
        [spec.get("nodeSelector"), spec.get("affinity"), spec.get("tolerations")], sort_keys=True, default=str
    )


def _score(requests: Mapping[str, int], free: Mapping[str, int], allocatable: Mapping[str, int]) -> float:
    """LeastAllocated: the mean fraction of each requested resource that stays free after placing the pod."""
    fractions = []
    for key, amount in requests.items():
        if key == PODS:
            continue
        total = allocatable.get(key, 0)
        if total > 0:
            fractions.append((free.get(key, 0) - amount) / total)
    return sum(fractions) / len(fractions) if fractions else 1.0


class DefaultScheduler:
    """Fed by the pod and node informers; `run()` schedules until cancelled."""

    def __init__(
        self,
        client: RestClient,
        pods: Informer,
        nodes: Informer,
        *,
        retry_seconds: float = 1.0,
        emit_events: bool = True,
    ) -> None:
        self.client = client
        self.pods = pods
        self.nodes = nodes
        self.retry_seconds = retry_seconds
        self.emit_events = emit_events
        self._pending: dict[str, Obj] = {}  # uid → pod waiting for a decision
        self._unschedulable: dict[str, tuple[str, str]] = {}  # uid → (message last written, namespace/name)
        self._assumed: set[str] = set()  # uids bound by us whose binding the watch has not shown yet
        self._usage: dict[str, tuple[str, dict[str, int]]] = {}  # uid → (node, requests) of bound, unfinished pods
        self._used: dict[str, dict[str, int]] = {}  # node → summed requests
        self._allocatable: dict[str, dict[str, int]] = {}
        # (placement shape, node, node resourceVersion) → failing non-resource filters; pods of a gang or a
        # burst share a shape, so each node is judged once per shape instead of once per pod.
        self._filters: dict[tuple[str, str, str], list[str]] = {}
        self._next_start = 0
        self._wake = asyncio.Event()
        self._retry_due = False
        self._last_retry = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        pods.add_handler(self.on_pod)
        nodes.add_handler(self.on_node)

    # --- cache upkeep ----------------------------------------------------------------------------------------

    def _account(self, uid: str, node: str | None, requests: dict[str, int] | None) -> None:
        old = self._usage.pop(uid, None)
        if old is not None:
            used = self._used.setdefault(old[0], {})
            for key, amount in old[1].items():
                used[key] = used.get(key, 0) - amount
        if node is not None and requests is not None:
            self._usage[uid] = (node, requests)
            used = self._used.setdefault(node, {})
            for key, amount in requests.items():
                used[key] = used.get(key, 0) + amount

    def on_pod(self, kind: str, pod: Obj) -> None:
        uid = str(meta_of(pod).get("uid") or "")
        if not uid:
            return
        node = str(spec_of(pod).get("nodeName") or "")
        if node or kind == "DELETED":
            self._assumed.discard(uid)
        holds = kind != "DELETED" and (bool(node) or uid in self._assumed) and phase_of(pod) not in TERMINAL_PHASES
        if uid in self._assumed and holds:
            return
        released = uid in self._usage and not holds
        if holds:
            if uid not in self._usage or self._usage[uid][0] != node:
                try:
                    self._account(uid, node, pod_requests(pod))
                except ValueError:
                    self._account(uid, node, {PODS: 1})
        elif uid in self._usage:
            self._account(uid, None, None)
        if kind != "DELETED" and needs_scheduling(pod):
            if uid not in self._unschedulable:
                self._pending[uid] = pod
                self._wake.set()
            else:
                self._pending.pop(uid, None)
        else:
            self._pending.pop(uid, None)
            self._unschedulable.pop(uid, None)
        if released:
            self._request_retry()

    def on_node(self, kind: str, node: Obj) -> None:
        name = str(meta_of(node).get("name"))
        if kind == "DELETED":
            self._allocatable.pop(name, None)
        else:
            try:
                self._allocatable[name] = node_allocatable(node)
            except ValueError:
                self._allocatable[name] = {}
        self._request_retry()

    def _request_retry(self) -> None:
        if self._unschedulable:
            self._retry_due = True
            self._wake.set()

    # --- the scheduling loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self.pods.synced.wait()
            await self.nodes.synced.wait()
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._retry_due:
                    wait = self._last_retry + self.retry_seconds - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    self._retry_due = False
                    self._last_retry = time.monotonic()
                    self._requeue_unschedulable()
                await self._cycle()
        finally:
            for task in list(self._tasks):
                task.cancel()

    def _requeue_unschedulable(self) -> None:
        for uid, (_, key) in list(self._unschedulable.items()):
            pod = self.pods.cache.get(key)
            if pod is not None and meta_of(pod).get("uid") == uid and needs_scheduling(pod):
                self._pending[uid] = pod
            else:
                del self._unschedulable[uid]

    async def _cycle(self) -> None:
        queue = sorted(
            self._pending.items(),
            key=lambda item: (
                -int(spec_of(item[1]).get("priority") or 0),
                str(meta_of(item[1]).get("creationTimestamp")),
            ),
        )
        self._pending.clear()
        nodes = sorted(
            (
                (str(meta_of(n).get("name")), str(meta_of(n).get("resourceVersion")), n)
                for n in self.nodes.cache.values()
            ),
            key=lambda entry: entry[0],
        )
        for uid, pod in queue:
            current = self.pods.cache.get(obj_key(pod))
            if current is None or meta_of(current).get("uid") != uid or not needs_scheduling(current):
                continue
            self._schedule_one(uid, current, nodes)
            await asyncio.sleep(0)  # let watch events and bindings through between pods

    def _schedule_one(self, uid: str, pod: Obj, nodes: list[tuple[str, str, Obj]]) -> None:
        try:
            requests = pod_requests(pod)
        except ValueError as exc:
            self._mark_unschedulable(uid, pod, f"0/{len(nodes)} nodes are available: {exc}.")
            return
        best: tuple[float, str] | None = None
        reasons: list[list[str]] = []
        shape = placement_shape(pod)
        if len(self._filters) > FILTER_CACHE_LIMIT:
            self._filters.clear()
        count = len(nodes)
        enough = feasible_nodes_to_find(count)
        feasible = 0
        start = self._next_start % count if count else 0
        for i in range(count):
            name, version, node = nodes[(start + i) % count]
            key = (shape, name, version)
            static = self._filters.get(key)
            if static is None:
                static = self._filters[key] = node_filters(pod, node)
            allocatable = self._allocatable.get(name, {})
            free = subtract(allocatable, self._used.get(name, {}))
            # Like kube-scheduler, a node that fails a filter is not checked further (resources are last).
            failed = static or insufficient_resources(requests, free)
            if failed:
                reasons.append(failed)
                continue
            score = _score(requests, free, allocatable)
            if best is None or score > best[0]:
                best = (score, name)
            feasible += 1
            if feasible >= enough:
                self._next_start = start + i + 1
                break
        if best is None:
            self._mark_unschedulable(uid, pod, unschedulable_message(count, reasons))
            return
        node_name = best[1]
        self._unschedulable.pop(uid, None)
        self._account(uid, node_name, requests)  # assume now, so the next pod sees it taken
        self._assumed.add(uid)
        self._spawn(self._bind(uid, pod, node_name))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bind(self, uid: str, pod: Obj, node: str) -> None:
        meta = meta_of(pod)
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": ns, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            await self.client.create(api_path("pods", ns, name, "binding"), binding)
        except RestError as exc:
            log.info("binding %s/%s to %s failed: %s", ns, name, node, exc)
            if uid in self._assumed:
                self._assumed.discard(uid)
                self._account(uid, None, None)
            if exc.code == 404:
                return  # the pod is gone
            if exc.code >= 500 or exc.code in (409, 429):
                # Also on 409: if the pod really is bound, the watch shows it and the next cycle skips it.
                await asyncio.sleep(0.2)
                self._pending[uid] = pod
                self._wake.set()
            else:
                self._mark_unschedulable(uid, pod, f"binding to {node} was refused: {exc.message}")
            return
        if self.emit_events:
            await self._event(pod, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node}")

    def _mark_unschedulable(self, uid: str, pod: Obj, message: str) -> None:
        previous = self._unschedulable.get(uid)
        self._unschedulable[uid] = (message, obj_key(pod))
        if previous is not None and previous[0] == message:
            return
        self._spawn(self._write_unschedulable(pod, message))

    async def _write_unschedulable(self, pod: Obj, message: str) -> None:
        meta = meta_of(pod)
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": now,
            "lastProbeTime": None,
        }
        with contextlib.suppress(RestError):
            await self.client.patch(
                api_path("pods", ns, name, "status"),
                {"status": {"conditions": [condition]}},
                STRATEGIC_MERGE_PATCH,
                retry_conflicts=True,
            )
        if self.emit_events:
            await self._event(pod, "Warning", "FailedScheduling", message)

    async def _event(self, pod: Obj, kind: str, reason: str, message: str) -> None:
        meta = meta_of(pod)
        ns = str(meta.get("namespace") or "default")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name')}.", "namespace": ns},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta.get("name"),
                "namespace": ns,
                "uid": meta.get("uid"),
            },
            "type": kind,
            "reason": reason,
            "message": message,
            "source": {"component": DEFAULT_SCHEDULER},
            "reportingComponent": DEFAULT_SCHEDULER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        with contextlib.suppress(RestError):
            await self.client.create(api_path("events", ns), event)
