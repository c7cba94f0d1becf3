"""The operator's in-memory view of the cluster, fed by kopf watch events and by full relists.

kopf's watch streams keep it current; a relist (at start and whenever this replica becomes the leader, since
a paused replica's streams were stopped) replaces a kind wholesale. Resource versions decide which of a
watch event and a relist is newer, and tombstones keep an object deleted during a relist from coming back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from powertrain.api import constants as c

JSON = dict[str, Any]
Key = tuple[str, str]  # (namespace or "", name)

KINDS = ("nodes", "pods", "telemetry", "jobs", "policies")
TOMBSTONE_LIMIT = 10_000


def key_of(obj: JSON) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _rv(obj: JSON) -> int | None:
    raw = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        return None  # opaque resource versions: the latest arrival wins


def _newer_or_equal(new: JSON, old: JSON) -> bool:
    a, b = _rv(new), _rv(old)
    return a is None or b is None or a >= b


def pod_is_relevant(pod: JSON) -> bool:
    """Our workers, plus any pod that holds node resources (other schedulers' pods use GPUs, cpu, memory too)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if c.JOB_NAME_LABEL in labels:
        return True
    phase = (pod.get("status") or {}).get("phase")
    return bool((pod.get("spec") or {}).get("nodeName")) and phase not in ("Succeeded", "Failed")


@dataclass
class ClusterCache:
    """Objects by kind and (namespace, name). `version` bumps on every change so a pass can tell if it is stale."""

    objects: dict[str, dict[Key, JSON]] = field(default_factory=lambda: {k: {} for k in KINDS})
    tombstones: dict[str, dict[str, int | None]] = field(default_factory=lambda: {k: {} for k in KINDS})
    version: int = 0
    # What changed since the last drain, per kind: the latest object, or None when it went away. The
    # scheduling pass applies these to its incremental snapshot instead of rebuilding it.
    changes: dict[str, dict[Key, JSON | None]] = field(default_factory=lambda: {k: {} for k in KINDS})

    def drain_changes(self) -> dict[str, dict[Key, JSON | None]]:
        out = self.changes
        self.changes = {k: {} for k in KINDS}
        return out

    def upsert(self, kind: str, obj: JSON) -> bool:
        """Apply an ADDED/MODIFIED object; returns True when the view changed."""
        if kind == "pods" and not pod_is_relevant(obj):
            return self.delete(kind, obj)
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        if uid and uid in self.tombstones[kind]:
            return False
        bucket = self.objects[kind]
        k = key_of(obj)
        old = bucket.get(k)
        if old is not None and not _newer_or_equal(obj, old):
            return False
        bucket[k] = obj
        self.changes[kind][k] = obj
        self.version += 1
        return True

    def delete(self, kind: str, obj: JSON) -> bool:
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        if uid:
            stones = self.tombstones[kind]
            stones[uid] = _rv(obj)
            if len(stones) > TOMBSTONE_LIMIT:
                for old_uid in list(stones)[: len(stones) // 2]:
                    del stones[old_uid]
        k = key_of(obj)
        current = self.objects[kind].get(k)
        if current is None:
            return False
        current_uid = (current.get("metadata") or {}).get("uid")
        if uid and current_uid and current_uid != uid:
            return False  # an older incarnation went away; the new one stays
        del self.objects[kind][k]
        self.changes[kind][k] = None
        self.version += 1
        return True

    def replace_all(self, kind: str, items: Iterable[JSON]) -> None:
        """A relist: the listed objects are the truth, except newer ones already seen through the watch."""
        fresh: dict[Key, JSON] = {}
        old = self.objects[kind]
        stones = self.tombstones[kind]
        for obj in items:
            if kind == "pods" and not pod_is_relevant(obj):
                continue
            if str((obj.get("metadata") or {}).get("uid") or "") in stones:
                continue
            k = key_of(obj)
            seen = old.get(k)
            fresh[k] = seen if seen is not None and not _newer_or_equal(obj, seen) else obj
        changes = self.changes[kind]
        for k in old.keys() - fresh.keys():
            changes[k] = None
        for k, obj in fresh.items():
            if old.get(k) is not obj:
                changes[k] = obj
        self.objects[kind] = fresh
        self.version += 1

    def items(self, kind: str) -> list[JSON]:
        return list(self.objects[kind].values())

    def get(self, kind: str, namespace: str, name: str) -> JSON | None:
        return self.objects[kind].get((namespace, name))

    def pods_of_job(self, namespace: str, job: str) -> list[JSON]:
        out = []
        for (ns, _), pod in self.objects["pods"].items():
            if ns == namespace and ((pod.get("metadata") or {}).get("labels") or {}).get(c.JOB_NAME_LABEL) == job:
                out.append(pod)
        return out
