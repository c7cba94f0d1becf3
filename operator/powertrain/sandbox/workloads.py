"""Minimal workload controllers: Deployments, ReplicaSets (and ReplicationControllers), DaemonSets,
StatefulSets, Jobs, and ClusterRole aggregation. They talk to the API server only through the REST client and
informers, as kube-controller-manager does, and follow the Kubernetes docs' description of each:

- ReplicaSet [ReplicaSet: "How a ReplicaSet works"]: keeps `spec.replicas` pods it owns (controller owner
  reference, blockOwnerDeletion), created from the template with generateName `NAME-`; removes extras,
  unscheduled and not-ready ones first; status counts replicas, ready and available pods.
- Deployment [Deployments: "Rolling Update Deployment", "Recreate Deployment"]: one ReplicaSet per pod
  template, named `NAME-HASH` with the `pod-template-hash` label; RollingUpdate scales the new ReplicaSet up
  within maxSurge and old ones down while at least `replicas - maxUnavailable` pods stay available; Recreate
  scales old ones to zero first. Status: replicas, updated, ready, available and unavailable replicas,
  observedGeneration, the Available and Progressing conditions; old ReplicaSets beyond
  revisionHistoryLimit are deleted.
- DaemonSet [DaemonSet: "How Daemon Pods are scheduled"]: one pod per node that matches the template's
  nodeSelector / required node affinity and whose NoSchedule/NoExecute taints it tolerates (with the
  tolerations the controller adds); pods are pinned by node affinity on `metadata.name` and bound by the
  default scheduler. RollingUpdate replaces outdated pods at most maxUnavailable at a time.
- StatefulSet [StatefulSets: "Pod Management Policies"]: pods NAME-0..N-1; OrderedReady creates each once all
  lower ordinals are Ready, scales down from the highest; RollingUpdate replaces from the highest ordinal.
- Job [Jobs: "Parallel execution", "Pod backoff failure policy"]: up to `parallelism` active pods until
  `completions` pods succeeded (Complete) or more than backoffLimit failed (Failed, BackoffLimitExceeded);
  finished Jobs delete their remaining active pods.
- Aggregated ClusterRoles [Using RBAC: "Aggregated ClusterRoles"]: `rules` rewritten to the union of the
  selected roles' rules.

Left out: ControllerRevisions and rollback history, paused Deployments' special cases beyond "do nothing",
minReadySeconds, progressDeadlineSeconds (never reports ProgressDeadlineExceeded), Indexed Jobs,
activeDeadlineSeconds, pod failure policies, TTL-after-finished, orphan adoption by selector, PVC templates.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from powertrain.core.predicates import node_selector_matches, untolerated_taint
from powertrain.sandbox import rbac
from powertrain.sandbox.restclient import MERGE_PATCH, TERMINAL_PHASES, Informer, Obj, RestClient, RestError

log = logging.getLogger(__name__)

_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
HASH_LABEL = "pod-template-hash"
REVISION_LABEL = "controller-revision-hash"
# Tolerations every DaemonSet pod gets, so daemons stay on nodes under pressure or being drained.
DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
_PATHS = {
    "Deployment": "/apis/apps/v1/deployments",
    "ReplicaSet": "/apis/apps/v1/replicasets",
    "DaemonSet": "/apis/apps/v1/daemonsets",
    "StatefulSet": "/apis/apps/v1/statefulsets",
    "Job": "/apis/batch/v1/jobs",
    "ReplicationController": "/api/v1/replicationcontrollers",
}


def template_hash(template: Any) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_HASH_ALPHABET[b % len(_HASH_ALPHABET)] for b in digest[:10])


def _ns_path(kind: str, ns: str, name: str = "", sub: str = "") -> str:
    base = _PATHS[kind]
    prefix, _, plural = base.rpartition("/")
    path = f"{prefix}/namespaces/{ns}/{plural}"
    if name:
        path += f"/{name}"
    if sub:
        path += f"/{sub}"
    return path


def _pod_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/pods" + (f"/{name}" if name else "")


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def controller_of(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("kind")), str(ref.get("uid"))
    return None


def pod_ready(pod: Mapping[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def pod_active(pod: Mapping[str, Any]) -> bool:
    return not _meta(pod).get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """An IntOrString like maxSurge: an int, or a percentage of `total` (rounded as the controller does)."""
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value or 0)


def _owner_ref(kind: str, api_version: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = _meta(obj)
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Workloads:
    """All workload controllers, fed by informers; each reconciles one object at a time on the sandbox loop."""

    def __init__(self, client: RestClient, pods: Informer, nodes: Informer) -> None:
        self.client = client
        self.pods = pods
        self.nodes = nodes
        self.informers = {kind: Informer(client, path) for kind, path in _PATHS.items()}
        self.roles = Informer(client, "/apis/rbac.authorization.k8s.io/v1/clusterroles")
        self._dirty: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        # Pods created (uid) or deleted (uid) that the pod informer has not shown yet, by owner uid.
        self._created: dict[str, dict[str, Obj]] = {}
        self._deleted: set[str] = set()
        self._owner_key: dict[str, tuple[str, str]] = {}  # owner uid → (kind, ns/name)
        for kind, inf in self.informers.items():
            inf.add_handler(functools.partial(self._on_owner, kind))
        pods.add_handler(self._on_pod)
        nodes.add_handler(lambda ev, obj: self._mark_all("DaemonSet"))
        self.roles.add_handler(lambda ev, obj: self._mark("ClusterRole", "*"))

    # --- events ------------------------------------------------------------------------------------------

    def _mark(self, kind: str, key: str) -> None:
        self._dirty.add((kind, key))
        self._wake.set()

    def _retry(self, kind: str, key: str, delay: float) -> None:
        """Try again later: a write the API server refuses (a 422 pod template) must not spin the loop."""
        asyncio.get_running_loop().call_later(delay, self._mark, kind, key)

    def _mark_all(self, kind: str) -> None:
        for key in self.informers[kind].cache:
            self._mark(kind, key)

    def _on_owner(self, kind: str, event: str, obj: Obj) -> None:
        meta = _meta(obj)
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        if event == "DELETED":
            self._owner_key.pop(str(meta.get("uid")), None)
            self._created.pop(str(meta.get("uid")), None)
        else:
            self._owner_key[str(meta.get("uid"))] = (kind, key)
        self._mark(kind, key)
        owner = controller_of(obj)
        if owner is not None and owner[1] in self._owner_key:
            self._mark(*self._owner_key[owner[1]])

    def _on_pod(self, event: str, pod: Obj) -> None:
        uid = str(_meta(pod).get("uid"))
        owner = controller_of(pod)
        if owner is None:
            return
        pending = self._created.get(owner[1])
        if pending is not None:
            pending.pop(uid, None)
        if event == "DELETED":
            self._deleted.discard(uid)
        if owner[1] in self._owner_key:
            self._mark(*self._owner_key[owner[1]])

    # --- loop --------------------------------------------------------------------------------------------

    async def run(self) -> None:
        tasks = [asyncio.create_task(inf.run()) for inf in [*self.informers.values(), self.roles]]
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 2.0)
                self._wake.clear()
                if not self._dirty:
                    # A periodic resync: pods' readiness can change without an owner event being missed.
                    for kind in ("Deployment", "DaemonSet", "Job", "StatefulSet"):
                        self._mark_all(kind)
                    self._wake.clear()
                batch, self._dirty = self._dirty, set()
                for kind, key in sorted(batch):
                    try:
                        await self._reconcile(kind, key)
                    except asyncio.CancelledError:
                        raise
                    except RestError as exc:
                        if exc.code not in (404, 409):
                            log.warning("%s %s: %s", kind, key, exc)
                        self._retry(kind, key, 0.05 if exc.code == 409 else 1.0)
                    except Exception:
                        log.exception("reconciling %s %s failed", kind, key)
                        self._retry(kind, key, 1.0)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    async def _reconcile(self, kind: str, key: str) -> None:
        if kind == "ClusterRole":
            await self._aggregate_roles()
            return
        obj = self.informers[kind].cache.get(key)
        if obj is None or _meta(obj).get("deletionTimestamp"):
            return
        if kind in ("ReplicaSet", "ReplicationController"):
            await self._replicaset(kind, obj)
        elif kind == "Deployment":
            await self._deployment(obj)
        elif kind == "DaemonSet":
            await self._daemonset(obj)
        elif kind == "StatefulSet":
            await self._statefulset(obj)
        elif kind == "Job":
            await self._job(obj)

    # --- pods --------------------------------------------------------------------------------------------

    def _owned_pods(self, owner_uid: str, ns: str) -> list[Obj]:
        pods = [
            p
            for key, p in self.pods.cache.items()
            if key.startswith(f"{ns}/") and (controller_of(p) or ("", ""))[1] == owner_uid
        ]
        seen = {_meta(p).get("uid") for p in pods}
        pods += [p for uid, p in (self._created.get(owner_uid) or {}).items() if uid not in seen]
        return [p for p in pods if _meta(p).get("uid") not in self._deleted]

    async def _create_pod(
        self,
        owner: Obj,
        kind: str,
        api_version: str,
        template: Mapping[str, Any],
        *,
        name: str = "",
        labels: Mapping[str, str] | None = None,
        spec_extra: Mapping[str, Any] | None = None,
    ) -> Obj:
        meta = _meta(owner)
        tmeta = template.get("metadata") or {}
        pod_meta: dict[str, Any] = {
            "namespace": meta["namespace"],
            "labels": {**(tmeta.get("labels") or {}), **(labels or {})},
            "ownerReferences": [_owner_ref(kind, api_version, owner)],
        }
        if tmeta.get("annotations"):
            pod_meta["annotations"] = dict(tmeta["annotations"])
        if name:
            pod_meta["name"] = name
        else:
            pod_meta["generateName"] = f"{meta['name']}-"
        spec = json.loads(json.dumps(template.get("spec") or {}))
        spec.update(spec_extra or {})
        pod = await self.client.create(_pod_path(meta["namespace"]), {"metadata": pod_meta, "spec": spec})
        self._created.setdefault(meta["uid"], {})[_meta(pod)["uid"]] = pod
        return pod

    async def _delete_pod(self, pod: Obj) -> None:
        meta = _meta(pod)
        self._deleted.add(str(meta.get("uid")))
        with contextlib.suppress(RestError):
            await self.client.delete(_pod_path(meta["namespace"], meta["name"]), uid=meta.get("uid"))

    async def _write_status(self, kind: str, obj: Obj, status: dict[str, Any]) -> None:
        if {k: v for k, v in (obj.get("status") or {}).items() if k != "conditions"} == {
            k: v for k, v in status.items() if k != "conditions"
        } and _same_conditions((obj.get("status") or {}).get("conditions"), status.get("conditions")):
            return
        meta = _meta(obj)
        # A merge patch removes what it sets to null: counts that dropped to zero are omitted, as in Go.
        patch: dict[str, Any] = {k: None for k in obj.get("status") or {} if k not in status}
        patch.update(status)
        await self.client.patch(
            _ns_path(kind, meta["namespace"], meta["name"], "status"), {"status": patch}, MERGE_PATCH
        )

    # --- ReplicaSet --------------------------------------------------------------------------------------

    async def _replicaset(self, kind: str, rs: Obj) -> None:
        meta, spec = _meta(rs), rs.get("spec") or {}
        api_version = "apps/v1" if kind == "ReplicaSet" else "v1"
        pods = [p for p in self._owned_pods(meta["uid"], meta["namespace"]) if pod_active(p)]
        want = int(spec.get("replicas", 1))
        if len(pods) < want:
            for _ in range(want - len(pods)):
                pods.append(await self._create_pod(rs, kind, api_version, spec.get("template") or {}))
        elif len(pods) > want:
            # Unscheduled, then not ready, then newest first.
            ranked = sorted(
                pods,
                key=lambda p: (
                    bool((p.get("spec") or {}).get("nodeName")),
                    pod_ready(p),
                    -_timestamp_key(p),
                ),
            )
            for p in ranked[: len(pods) - want]:
                await self._delete_pod(p)
                pods.remove(p)
        ready = sum(1 for p in pods if pod_ready(p))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": meta.get("generation", 1),
        }
        await self._write_status(kind, rs, status)

    # --- Deployment --------------------------------------------------------------------------------------

    async def _deployment(self, d: Obj) -> None:
        meta, spec = _meta(d), d.get("spec") or {}
        ns = meta["namespace"]
        template = spec.get("template") or {}
        h = template_hash(template)
        rses = [
            rs
            for key, rs in self.informers["ReplicaSet"].cache.items()
            if key.startswith(f"{ns}/") and (controller_of(rs) or ("", ""))[1] == meta["uid"]
        ]
        new = next((rs for rs in rses if (_meta(rs).get("labels") or {}).get(HASH_LABEL) == h), None)
        olds = sorted((rs for rs in rses if rs is not new), key=_timestamp_key)
        desired = int(spec.get("replicas", 1))
        strategy = spec.get("strategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        ru = strategy.get("rollingUpdate") or {}
        surge = scaled_value(ru.get("maxSurge", "25%"), desired, True) if rolling else 0
        unavailable = scaled_value(ru.get("maxUnavailable", "25%"), desired, False) if rolling else desired
        if rolling and surge == 0 and unavailable == 0:
            unavailable = 1

        def replicas(rs: Obj) -> int:
            return int((rs.get("spec") or {}).get("replicas", 0))

        def available(rs: Obj) -> int:
            return int((rs.get("status") or {}).get("availableReplicas", 0))

        if spec.get("paused"):
            return
        old_total = sum(replicas(rs) for rs in olds)
        if new is None:
            revision = 1 + max(
                (int((_meta(rs).get("annotations") or {}).get("deployment.kubernetes.io/revision", 0)) for rs in rses),
                default=0,
            )
            if rolling:
                start = max(0, min(desired, desired + surge - old_total))
            else:
                start = desired if old_total == 0 and not any(_rs_pods(self, rs) for rs in olds) else 0
            labels = {**(template.get("metadata") or {}).get("labels", {}), HASH_LABEL: h}
            tmpl = json.loads(json.dumps(template))
            tmpl.setdefault("metadata", {})["labels"] = labels
            selector = json.loads(json.dumps(spec.get("selector") or {}))
            selector.setdefault("matchLabels", {})[HASH_LABEL] = h
            body = {
                "metadata": {
                    "name": f"{meta['name']}-{h}",
                    "namespace": ns,
                    "labels": labels,
                    "annotations": {
                        "deployment.kubernetes.io/revision": str(revision),
                        "deployment.kubernetes.io/desired-replicas": str(desired),
                    },
                    "ownerReferences": [_owner_ref("Deployment", "apps/v1", d)],
                },
                "spec": {"replicas": start, "selector": selector, "template": tmpl},
            }
            try:
                new = await self.client.create(_ns_path("ReplicaSet", ns), body)
            except RestError as exc:
                if exc.code != 409:
                    raise
                new = await self.client.get(_ns_path("ReplicaSet", ns, f"{meta['name']}-{h}"))
        else:
            target = replicas(new)
            if rolling:
                if target < desired:
                    room = desired + surge - (old_total + target)
                    target = min(desired, target + max(0, room))
                elif target > desired:
                    target = desired
            elif old_total == 0 and not any(_rs_pods(self, rs) for rs in olds):
                target = desired
            if target != replicas(new):
                await self._scale(new, target)
        # Scale old ReplicaSets down, keeping `desired - unavailable` pods available.
        if olds:
            all_available = sum(available(rs) for rs in [new, *olds])
            budget = max(0, all_available - (desired - unavailable)) if rolling else old_total
            for rs in olds:
                r = replicas(rs)
                if r == 0:
                    continue
                unhealthy = max(0, r - available(rs))
                cut = min(r, unhealthy + budget)
                budget -= max(0, cut - unhealthy)
                if cut:
                    await self._scale(rs, r - cut)
        # History: old, empty ReplicaSets beyond revisionHistoryLimit go.
        limit = int(spec.get("revisionHistoryLimit", 10))
        empty = [rs for rs in olds if replicas(rs) == 0 and not (rs.get("status") or {}).get("replicas")]
        for rs in empty[: max(0, len(empty) - limit)]:
            with contextlib.suppress(RestError):
                await self.client.delete(_ns_path("ReplicaSet", ns, _meta(rs)["name"]))
        every = [new, *olds]
        total = sum(int((rs.get("status") or {}).get("replicas", 0)) for rs in every)
        ready = sum(int((rs.get("status") or {}).get("readyReplicas", 0)) for rs in every)
        avail = sum(available(rs) for rs in every)
        updated = int((new.get("status") or {}).get("replicas", 0))
        now = _now()
        is_available = avail >= desired - unavailable
        complete = updated == desired and total == desired and avail == desired
        old_conds = {c.get("type"): c for c in (d.get("status") or {}).get("conditions") or []}

        def cond(kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
            prev = old_conds.get(kind) or {}
            status = "True" if ok else "False"
            changed = prev.get("status") != status
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastUpdateTime": now if changed or prev.get("reason") != reason else prev.get("lastUpdateTime"),
                "lastTransitionTime": now if changed else prev.get("lastTransitionTime", now),
            }

        rs_name = _meta(new).get("name")
        status = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": avail,
            "unavailableReplicas": max(0, total - avail) if total else max(0, desired - avail),
            "conditions": [
                cond(
                    "Available",
                    is_available,
                    "MinimumReplicasAvailable" if is_available else "MinimumReplicasUnavailable",
                    "Deployment has minimum availability."
                    if is_available
                    else "Deployment does not have minimum availability.",
                ),
                cond(
                    "Progressing",
                    True,
                    "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                    f'ReplicaSet "{rs_name}" has successfully progressed.'
                    if complete
                    else f'ReplicaSet "{rs_name}" is progressing.',
                ),
            ],
        }
        for k in ("readyReplicas", "availableReplicas", "unavailableReplicas", "updatedReplicas", "replicas"):
            if not status[k]:
                del status[k]  # zero counts are omitted, as the Go encoder does
        await self._write_status("Deployment", d, status)

    async def _scale(self, rs: Obj, replicas: int) -> None:
        meta = _meta(rs)
        await self.client.patch(
            _ns_path("ReplicaSet", meta["namespace"], meta["name"]), {"spec": {"replicas": replicas}}, MERGE_PATCH
        )

    # --- DaemonSet ---------------------------------------------------------------------------------------

    async def _daemonset(self, ds: Obj) -> None:
        meta, spec = _meta(ds), ds.get("spec") or {}
        template = json.loads(json.dumps(spec.get("template") or {}))
        tspec = template.setdefault("spec", {})
        tolerations = list(tspec.get("tolerations") or [])
        tolerations += [t for t in DAEMON_TOLERATIONS if t not in tolerations]
        tspec["tolerations"] = tolerations
        h = template_hash(spec.get("template") or {})
        probe = {"spec": tspec}
        eligible = [
            name
            for name, node in self.nodes.cache.items()
            if node_selector_matches(probe, node) is None and untolerated_taint(probe, node) is None
        ]
        pods = [p for p in self._owned_pods(meta["uid"], meta["namespace"]) if pod_active(p)]
        by_node: dict[str, list[Obj]] = {}
        for p in pods:
            by_node.setdefault(_daemon_node(p), []).append(p)
        for node, on in by_node.items():
            extra = on[1:] if node in eligible else on
            for p in extra:
                await self._delete_pod(p)
                pods.remove(p)
        for node in eligible:
            if node not in by_node:
                affinity = {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
                            ]
                        }
                    }
                }
                template["spec"]["affinity"] = {**(tspec.get("affinity") or {}), **affinity}
                pods.append(await self._create_pod(ds, "DaemonSet", "apps/v1", template, labels={REVISION_LABEL: h}))
        # Rolling update: outdated pods go, at most maxUnavailable of the desired pods down at once.
        strategy = spec.get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            ru = strategy.get("rollingUpdate") or {}
            limit = max(1, scaled_value(ru.get("maxUnavailable", 1), len(eligible), True))
            down = sum(1 for p in pods if not pod_ready(p))
            for p in pods:
                if down >= limit:
                    break
                if (_meta(p).get("labels") or {}).get(REVISION_LABEL) != h and pod_ready(p):
                    await self._delete_pod(p)
                    down += 1
        live = [p for p in pods if _meta(p).get("uid") not in self._deleted]
        ready = sum(1 for p in live if pod_ready(p))
        updated = sum(1 for p in live if (_meta(p).get("labels") or {}).get(REVISION_LABEL) == h)
        status = {
            "desiredNumberScheduled": len(eligible),
            "currentNumberScheduled": len({_daemon_node(p) for p in live} & set(eligible)),
            "numberMisscheduled": 0,
            "numberReady": ready,
            "updatedNumberScheduled": updated,
            "numberAvailable": ready,
            "numberUnavailable": max(0, len(eligible) - ready),
            "observedGeneration": meta.get("generation", 1),
        }
        for k in ("numberAvailable", "numberUnavailable", "updatedNumberScheduled"):
            if not status[k]:
                del status[k]
        await self._write_status("DaemonSet", ds, status)

    # --- StatefulSet -------------------------------------------------------------------------------------

    async def _statefulset(self, sts: Obj) -> None:
        meta, spec = _meta(sts), sts.get("spec") or {}
        name = meta["name"]
        want = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        h = f"{name}-{template_hash(template)}"
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        pods = {_meta(p)["name"]: p for p in self._owned_pods(meta["uid"], meta["namespace"]) if pod_active(p)}
        for i in range(want):
            pod_name = f"{name}-{i}"
            if pod_name in pods:
                if ordered and not pod_ready(pods[pod_name]):
                    break
                continue
            if any(
                _meta(p).get("name") == pod_name
                for p in self.pods.cache.values()
                if _meta(p).get("namespace") == meta["namespace"]
            ):
                break  # the previous pod of this ordinal is still terminating
            extra: dict[str, Any] = {"hostname": pod_name}
            if spec.get("serviceName"):
                extra["subdomain"] = spec["serviceName"]
            pods[pod_name] = await self._create_pod(
                sts,
                "StatefulSet",
                "apps/v1",
                template,
                name=pod_name,
                labels={
                    REVISION_LABEL: h,
                    "statefulset.kubernetes.io/pod-name": pod_name,
                    "apps.kubernetes.io/pod-index": str(i),
                },
                spec_extra=extra,
            )
            if ordered:
                break
        for pod_name in sorted(pods, key=_ordinal, reverse=True):
            if _ordinal(pod_name) >= want:
                await self._delete_pod(pods.pop(pod_name))
                if ordered:
                    break
        if all(pod_ready(p) for p in pods.values()) and len(pods) == want:
            for pod_name in sorted(pods, key=_ordinal, reverse=True):
                if (_meta(pods[pod_name]).get("labels") or {}).get(REVISION_LABEL) != h:
                    await self._delete_pod(pods[pod_name])
                    break
        ready = sum(1 for p in pods.values() if pod_ready(p))
        updated = sum(1 for p in pods.values() if (_meta(p).get("labels") or {}).get(REVISION_LABEL) == h)
        status = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": updated,
            "updatedReplicas": updated,
            "currentRevision": h,
            "updateRevision": h,
        }
        await self._write_status("StatefulSet", sts, status)

    # --- Job ---------------------------------------------------------------------------------------------

    async def _job(self, job: Obj) -> None:
        meta, spec = _meta(job), job.get("spec") or {}
        st = dict(job.get("status") or {})
        conds = list(st.get("conditions") or [])
        finished = any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conds)
        pods = self._owned_pods(meta["uid"], meta["namespace"])
        active = [p for p in pods if pod_active(p)]
        succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
        failed = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Failed")
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism", 1))
        now = _now()
        if not finished:
            if failed > int(spec.get("backoffLimit", 6)):
                conds.append(
                    _job_condition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit", now)
                )
                finished = True
            elif (completions is not None and succeeded >= int(completions)) or (
                completions is None and succeeded > 0 and not active
            ):
                conds.append(_job_condition("Complete", "", "", now))
                st["completionTime"] = now
                finished = True
        if finished:
            for p in active:
                await self._delete_pod(p)
            active = []
        elif not spec.get("suspend"):
            remaining = (int(completions) - succeeded) if completions is not None else parallelism
            for _ in range(max(0, min(parallelism, remaining) - len(active))):
                active.append(await self._create_pod(job, "Job", "batch/v1", spec.get("template") or {}))
        st.setdefault("startTime", now)
        st.update(
            {
                "active": len(active),
                "succeeded": succeeded,
                "failed": failed,
                "ready": sum(1 for p in active if pod_ready(p)),
                "conditions": conds,
                "uncountedTerminatedPods": {},
            }
        )
        for k in ("active", "succeeded", "failed"):
            if not st[k]:
                del st[k]
        if not conds:
            del st["conditions"]
        await self._write_status("Job", job, st)

    # --- ClusterRole aggregation -------------------------------------------------------------------------

    async def _aggregate_roles(self) -> None:
        roles = list(self.roles.cache.values())
        for role in roles:
            if not role.get("aggregationRule"):
                continue
            rules = rbac.aggregate(role, roles)
            if rules != (role.get("rules") or []):
                await self.client.patch(
                    f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{_meta(role)['name']}",
                    {"rules": rules},
                    MERGE_PATCH,
                )


def _job_condition(kind: str, reason: str, message: str, now: str) -> dict[str, Any]:
    cond = {"type": kind, "status": "True", "lastProbeTime": now, "lastTransitionTime": now}
    if reason:
        cond["reason"] = reason
        cond["message"] = message
    return cond


def _same_conditions(a: Any, b: Any) -> bool:
    def strip(conds: Any) -> list[tuple[Any, ...]]:
        return [(c.get("type"), c.get("status"), c.get("reason")) for c in conds or []]

    return strip(a) == strip(b)


def _timestamp_key(obj: Mapping[str, Any]) -> float:
    ts = _meta(obj).get("creationTimestamp")
    try:
        return datetime.strptime(str(ts), "%Y-%m-%dT%H:%M:%SZ").timestamp()
    except ValueError:
        return 0.0


def _ordinal(name: str) -> int:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _daemon_node(pod: Mapping[str, Any]) -> str:
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        return str(node)
    terms = (
        (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms") or []
    for term in terms:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("values"):
                return str(f["values"][0])
    return ""


def _rs_pods(ctrl: Workloads, rs: Obj) -> list[Obj]:
    meta = _meta(rs)
    return [p for p in ctrl._owned_pods(meta["uid"], meta["namespace"]) if not _meta(p).get("deletionTimestamp")]
