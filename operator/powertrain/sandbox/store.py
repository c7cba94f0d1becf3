"""The in-memory object store: one cluster-wide resourceVersion, indexes, bounded watch history and fan-out.

Everything here runs on the event loop without awaiting, so each write is atomic and observed in order.
Writers never block on watchers: each watcher has a bounded queue, and one that falls behind is closed
(the client resumes from its last resourceVersion, or relists after 410 Gone, as with a real API server).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from powertrain.sandbox.selectors import FieldSelector, LabelSelector, field_value

Obj = dict[str, Any]
ObjKey = tuple[str, str]  # (namespace or "", name)


class Event:
    """One change, as watchers see it. Objects are never mutated after they are stored."""

    __slots__ = ("_raw", "key", "obj", "old", "rv", "type")

    def __init__(self, type_: str, rv: int, key: str, obj: Obj, old: Obj | None) -> None:
        self.type = type_
        self.rv = rv
        self.key = key
        self.obj = obj
        self.old = old
        self._raw: bytes | None = None

    def encoded(self) -> bytes:
        """The watch line, encoded once and shared by every watcher of the storage version."""
        if self._raw is None:
            self._raw = json.dumps({"type": self.type, "object": self.obj}, separators=(",", ":")).encode() + b"\n"
        return self._raw


# Fields that clients select on per node or per object (kubelets, agents, kubectl describe): indexed like labels.
FIELD_INDEXES: dict[str, tuple[str, ...]] = {"pods": ("spec.nodeName",), "events": ("involvedObject.name",)}

CLOSE = object()  # queue sentinel: the watcher was closed (dropped, overflowed, or the server stops)


@dataclass(eq=False)
class Watcher:
    key: str
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    queue: asyncio.Queue[Any]
    closed: bool = False
    overflowed: bool = False
    everything: bool = field(init=False)  # no namespace, no selectors: every event is visible
    index_key: tuple[str, str] | None = field(init=False)  # (field path, value) it needs; None = not indexed

    def __post_init__(self) -> None:
        self.everything = self.namespace is None and self.labels.empty and self.fields.empty
        self.index_key = self.fields.indexable()

    def visible(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        if self.everything:
            return True
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.labels.matches(meta.get("labels")) and self.fields.matches(obj)

    def offer(self, event: Event) -> None:
        if self.closed:
            return
        out = self.translate(event)
        if out is None:
            return
        try:
            self.queue.put_nowait(out)
        except asyncio.QueueFull:
            self.overflowed = True
            self.close()

    def translate(self, event: Event) -> Event | None:
        """What this watcher sees of a change: selectors turn MODIFIED into ADDED or DELETED at their edges."""
        now, before = self.visible(event.obj), self.visible(event.old)
        if event.type == "DELETED":
            return event if now else None
        if now and before:
            return event
        if now:
            return event if event.type == "ADDED" else Event("ADDED", event.rv, event.key, event.obj, None)
        if before:
            return Event("DELETED", event.rv, event.key, event.obj, None)
        return None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.queue.full():
            # Drop everything pending, not just the oldest: the client then resumes from the last event it got
            # and the history replays the rest in order (dropping only some would leave a gap).
            while not self.queue.empty():
                self.queue.get_nowait()
        self.queue.put_nowait(CLOSE)


@dataclass
class _Table:
    objects: dict[ObjKey, Obj] = field(default_factory=dict)
    by_ns: dict[str, dict[str, Obj]] = field(default_factory=dict)
    by_label: dict[tuple[str, str], set[ObjKey]] = field(default_factory=dict)
    by_field: dict[tuple[str, str], set[ObjKey]] = field(default_factory=dict)  # (path, value) for FIELD_INDEXES
    history: deque[Event] = field(default_factory=deque)
    compacted_rv: int = 0  # events at or before this resourceVersion are no longer in history
    watchers: set[Watcher] = field(default_factory=set)  # watchers that must see every event of the table
    # Watchers with an equality field selector (e.g. spec.nodeName=n1), by (path, value): an event only reaches
    # those whose value its object (or its previous state) carries, so per-node watches do not scan each other.
    indexed: dict[tuple[str, str], set[Watcher]] = field(default_factory=dict)
    index_paths: dict[str, int] = field(default_factory=dict)  # path → how many indexed watchers use it
    raw: dict[ObjKey, bytes] = field(default_factory=dict)  # encoded objects, for fast LIST responses

    def all_watchers(self) -> list[Watcher]:
        return [*self.watchers, *(w for group in self.indexed.values() for w in group)]


def _okey(obj: Obj) -> ObjKey:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


class Store:
    def __init__(self, watch_history: int = 10_000, watch_queue_size: int = 5_000) -> None:
        self.rv = 1
        self.watch_history = watch_history
        self.watch_queue_size = watch_queue_size
        self._tables: dict[str, _Table] = {}
        self._owners: dict[str, set[tuple[str, str, str]]] = {}  # owner uid → (key, namespace, name)
        self.writes = 0

    def _table(self, key: str) -> _Table:
        table = self._tables.get(key)
        if table is None:
            table = self._tables[key] = _Table()
        return table

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    # Reads.
    def get(self, key: str, namespace: str, name: str) -> Obj | None:
        return self._table(key).objects.get((namespace, name))

    def encoded(self, key: str, obj: Obj) -> bytes:
        table = self._table(key)
        k = _okey(obj)
        raw = table.raw.get(k)
        if raw is None or table.objects.get(k) is not obj:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            if table.objects.get(k) is obj:
                table.raw[k] = raw
        return raw

    def count(self, key: str) -> int:
        return len(self._table(key).objects)

    def iter(self, key: str, namespace: str | None = None) -> Iterable[Obj]:
        table = self._table(key)
        if namespace is None:
            return table.objects.values()
        return (table.by_ns.get(namespace) or {}).values()

    def select(self, key: str, namespace: str | None, labels: LabelSelector, fields: FieldSelector) -> list[Obj]:
        table = self._table(key)
        name = fields.name()
        candidates: Iterable[Obj]
        if name is not None:
            if namespace is not None:
                one = table.objects.get((namespace, name))
                candidates = [one] if one else []
            else:
                candidates = [o for (_, n), o in table.objects.items() if n == name]
        else:
            # Intersect the index sets of every key=value requirement (labels, indexed fields), smallest first.
            sets = [table.by_label.get(e, set()) for e in labels.equalities()]
            indexed = FIELD_INDEXES.get(key, ())
            sets += [table.by_field.get(e, set()) for e in fields.equalities() if e[0] in indexed]
            if sets:
                sets.sort(key=len)
                keys = set(sets[0]).intersection(*sets[1:]) if len(sets) > 1 else sets[0]
                found = [table.objects[k] for k in keys if namespace is None or k[0] == namespace]
                candidates = sorted(found, key=_sort_key)
            else:
                candidates = self.iter(key, namespace)
        out = []
        for obj in candidates:
            meta = obj["metadata"]
            if labels.matches(meta.get("labels")) and fields.matches(obj):
                out.append(obj)
        return out

    def dependents(self, owner_uid: str) -> set[tuple[str, str, str]]:
        return set(self._owners.get(owner_uid, ()))

    def namespace_empty(self, namespace: str) -> bool:
        return all(not t.by_ns.get(namespace) for t in self._tables.values())

    def keys_in_namespace(self, namespace: str) -> Iterator[tuple[str, Obj]]:
        for key, table in list(self._tables.items()):
            for obj in list((table.by_ns.get(namespace) or {}).values()):
                yield key, obj

    # Writes: the caller has set metadata.resourceVersion to next_rv().
    def put(self, key: str, obj: Obj) -> Event:
        table = self._table(key)
        k = _okey(obj)
        old = table.objects.get(k)
        if old is not None:
            self._unindex(key, table, k, old)
        table.raw.pop(k, None)
        table.objects[k] = obj
        table.by_ns.setdefault(k[0], {})[k[1]] = obj
        for lk, lv in (obj["metadata"].get("labels") or {}).items():
            table.by_label.setdefault((lk, lv), set()).add(k)
        for path in FIELD_INDEXES.get(key, ()):
            table.by_field.setdefault((path, field_value(obj, path)), set()).add(k)
        for ref in obj["metadata"].get("ownerReferences") or []:
            self._owners.setdefault(ref.get("uid", ""), set()).add((key, k[0], k[1]))
        return self._record(key, "MODIFIED" if old is not None else "ADDED", obj, old)

    def remove(self, key: str, obj: Obj) -> Event:
        """Remove an object; `obj` is the final state (with a fresh resourceVersion) that DELETED carries."""
        table = self._table(key)
        k = _okey(obj)
        old = table.objects.pop(k, None)
        table.raw.pop(k, None)
        if old is not None:
            self._unindex(key, table, k, old)
        ns_map = table.by_ns.get(k[0])
        if ns_map is not None:
            ns_map.pop(k[1], None)
            if not ns_map:
                del table.by_ns[k[0]]
        return self._record(key, "DELETED", obj, old)

    def drop_table(self, key: str) -> None:
        table = self._tables.pop(key, None)
        if table is not None:
            for w in table.all_watchers():
                w.close()

    def _unindex(self, key: str, table: _Table, k: ObjKey, old: Obj) -> None:
        for lk, lv in (old["metadata"].get("labels") or {}).items():
            s = table.by_label.get((lk, lv))
            if s is not None:
                s.discard(k)
                if not s:
                    del table.by_label[(lk, lv)]
        for path in FIELD_INDEXES.get(key, ()):
            fk = (path, field_value(old, path))
            members = table.by_field.get(fk)
            if members is not None:
                members.discard(k)
                if not members:
                    del table.by_field[fk]
        for ref in old["metadata"].get("ownerReferences") or []:
            s2 = self._owners.get(ref.get("uid", ""))
            if s2 is not None:
                s2.discard((key, k[0], k[1]))
                if not s2:
                    del self._owners[ref.get("uid", "")]

    def _record(self, key: str, type_: str, obj: Obj, old: Obj | None) -> Event:
        self.writes += 1
        table = self._table(key)
        event = Event(type_, int(obj["metadata"]["resourceVersion"]), key, obj, old)
        table.history.append(event)
        while len(table.history) > self.watch_history:
            table.compacted_rv = table.history.popleft().rv
        # Offering never adds or removes watchers (a closed one stays until its handler unwatches): no copies.
        for w in table.watchers:
            w.offer(event)
        if table.indexed:
            for path in table.index_paths:
                values = {field_value(obj, path)}
                if old is not None:
                    values.add(field_value(old, path))
                for value in values:
                    for w in table.indexed.get((path, value), ()):
                        w.offer(event)
        return event

    # Watches.
    def watch(self, key: str, namespace: str | None, labels: LabelSelector, fields: FieldSelector) -> Watcher:
        w = Watcher(key, namespace, labels, fields, asyncio.Queue(maxsize=self.watch_queue_size))
        table = self._table(key)
        if w.index_key is None:
            table.watchers.add(w)
        else:
            table.indexed.setdefault(w.index_key, set()).add(w)
            table.index_paths[w.index_key[0]] = table.index_paths.get(w.index_key[0], 0) + 1
        return w

    def unwatch(self, w: Watcher) -> None:
        table = self._tables.get(w.key)
        if table is None:
            return
        if w.index_key is None:
            table.watchers.discard(w)
            return
        group = table.indexed.get(w.index_key)
        if group is not None and w in group:
            group.discard(w)
            if not group:
                del table.indexed[w.index_key]
            path = w.index_key[0]
            table.index_paths[path] -= 1
            if not table.index_paths[path]:
                del table.index_paths[path]

    def history_since(self, key: str, rv: int) -> list[Event] | None:
        """Events after `rv`, or None when some of them were compacted away (the client must relist: 410)."""
        table = self._table(key)
        if rv < table.compacted_rv:
            return None
        return [e for e in table.history if e.rv > rv]

    def all_watchers(self) -> list[Watcher]:
        return [w for t in self._tables.values() for w in t.all_watchers()]


def _sort_key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])
