"""Gang placement: all replicas or none, inside the narrowest topology domain that fits.

Rules users can rely on:

- A gang is placed whole or not at all, and never mixes GPU models.
- `Required` at level L: every replica inside one domain of L (a narrower domain inside it when one fits);
  otherwise nothing, with a message naming the largest domain's usable free GPUs.
- `Preferred`: the narrowest domain that fits, widening level by level past L, up to the whole cluster. While
  the gang waits for locality (`GangRequest.hold`, decided by the scheduler) it is held to L like `Required`.
- Among the domains of that level that fit, the best fit (least capacity left over) wins, so large gangs
  keep finding whole racks; ties go to the domain whose name sorts first (decisions are deterministic).
- Inside the domain replicas are packed onto the fewest nodes; the last node is the best fit.
- A node is used only if the worker pod passes every kube-scheduler filter there (node selector, required
  node affinity, taints/tolerations, cordon, Ready) and its GPUs, cpu, memory and pod slots suffice; GPUs
  reported unhealthy are not free.

A `PlacementEngine` serves one scheduling pass: it copies each node's free resources once, keeps per-shape
capacity counts per domain incrementally as gangs are placed, so deciding one more job costs O(levels ×
distinct capacities) plus the nodes of the chosen domain, not a scan of the cluster. The counts (and the
nodes eligible per pod shape) outlive the pass in the snapshot (`ClusterSnapshot.kept`): the next pass brings
them up to date on just the nodes whose free resources changed since — by the snapshot's updates or by the
last pass's own commits and masks — and builds them afresh after a node is added, removed or rewritten. One
engine at a time changes kept counts; another engine alive at the same time (a trial inside a pass) builds
its own.
"""

from __future__ import annotations

import heapq
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Final

from powertrain.api import constants as c
from powertrain.api.trainingjob import TopologyMode
from powertrain.core import conditions as cond
from powertrain.core.memo import memo
from powertrain.core.predicates import node_filters, unschedulable_message
from powertrain.core.quantity import PODS, format_amount
from powertrain.core.snapshot import ClusterSnapshot, JobInfo, JobKey, filter_shape
from powertrain.core.topology import CLUSTER, DomainKey, domain_name, domain_path

REASON_GPU_MODEL: Final = "node(s) didn't have an acceptable GPU model"
_REQUEST: Final = "placement.GangRequest"


@dataclass(frozen=True)
class GangRequest:
    """What placement needs to know about a job."""

    key: JobKey
    replicas: int
    gpus_per_replica: int
    per_replica: Mapping[str, int]
    models: tuple[str, ...] | None
    level: str
    required: bool
    template: Mapping[str, Any]  # {"spec": the worker pod spec}, for the kube-scheduler filters
    shape: str = ""
    hold: bool = False
    """Keep a Preferred gang inside one domain of `level` for now (it is waiting for locality)."""
    avoid: frozenset[str] = frozenset()
    """Nodes not to use (a straggler's node the gang was moved off: status.avoidNodes)."""

    @classmethod
    def from_job(cls, info: JobInfo, replicas: int | None = None, avoid: frozenset[str] = frozenset()) -> GangRequest:
        if replicas is None and not avoid:
            # A pass asks for every waiting job's request; a JobInfo never changes, so neither does this one.
            cached = info.derived.get(_REQUEST)
            if cached is None:
                cached = info.derived[_REQUEST] = cls._build(info, None, avoid)
            assert isinstance(cached, GangRequest)
            return cached
        return cls._build(info, replicas, avoid)

    @classmethod
    def _build(cls, info: JobInfo, replicas: int | None, avoid: frozenset[str]) -> GangRequest:
        spec = info.job.spec
        return cls(
            avoid=avoid,
            key=info.key,
            replicas=replicas or spec.replicas,
            gpus_per_replica=spec.gpus_per_replica,
            per_replica=info.per_replica,
            models=tuple(spec.gpu_model) if spec.gpu_model else None,
            level=str(spec.topology.level),
            required=spec.topology.mode == TopologyMode.REQUIRED.value,
            template=info.template,
            shape=info.filter_shape,
        )

    @property
    def gpus(self) -> int:
        return self.replicas * self.gpus_per_replica

    def held(self) -> GangRequest:
        """This request held to its level (waiting for locality), with the keys already derived from it."""
        copy = replace(self, hold=True)
        for name in ("_filter_shape", "per_replica_key", "shape_key"):  # hold is in none of them
            if name in self.__dict__:
                copy.__dict__[name] = self.__dict__[name]
        return copy

    def filter_shape(self) -> str:
        """The fields the non-resource filters read, as a cache key shared by jobs that look alike."""
        return self._filter_shape

    @memo
    def _filter_shape(self) -> str:
        base = self.shape or filter_shape(self.template)
        return f"{base}|avoid:{','.join(sorted(self.avoid))}" if self.avoid else base

    @memo
    def per_replica_key(self) -> tuple[tuple[str, int], ...]:
        return tuple(sorted(self.per_replica.items()))

    @memo
    def shape_key(self) -> tuple[object, ...]:
        """What makes two requests fail alike in a pass (all but the size and the job)."""
        return (self.filter_shape(), self.per_replica_key, self.models, self.level, self.required)


@dataclass(frozen=True)
class Placement:
    level: str
    domain: str
    domain_path: str
    nodes: tuple[str, ...]  # node of each rank
    gpu_model: str

    @property
    def node_count(self) -> int:
        return len(set(self.nodes))

    def summary(self, gpus_per_replica: int) -> str:
        where = "the cluster" if self.level == CLUSTER else f"{self.level} {self.domain}"
        return (
            f"Placed {len(self.nodes)}×{gpus_per_replica} GPUs"
            f"{' ' + self.gpu_model if self.gpu_model else ''} in {where} on {self.node_count} node(s)"
        )


@dataclass(frozen=True)
class Unplaceable:
    reason: str
    message: str


def _capacity(free: Mapping[str, int], per_replica: Mapping[str, int]) -> int:
    """How many replicas fit into `free`."""
    best = -1
    for key, need in per_replica.items():
        if need <= 0:
            continue
        if key == PODS and PODS not in free:
            continue
        have = free.get(key, 0)
        if have < need:
            return 0
        n = have // need
        if best < 0 or n < best:
            best = n
    return best if best >= 0 else 1 << 20


def _add_to(into: dict[str, int], more: Mapping[str, int]) -> None:
    for resource, amount in more.items():
        into[resource] = into.get(resource, 0) + amount


@dataclass
class _LevelCounts:
    cap: dict[DomainKey, int] = field(default_factory=dict)
    buckets: dict[int, list[DomainKey]] = field(default_factory=dict)
    entries: int = 0
    """Heap entries in `buckets`, stale ones included (see compact)."""

    def set(self, key: DomainKey, value: int) -> None:
        self.cap[key] = value
        if value > 0:
            heapq.heappush(self.buckets.setdefault(value, []), key)
            self.entries += 1

    def compact(self) -> None:
        """Drop stale heap entries once they outnumber the domains (counts kept across passes collect them)."""
        if self.entries <= 2 * len(self.cap) + 16:
            return
        self.buckets = {}
        for key, value in self.cap.items():
            if value > 0:
                self.buckets.setdefault(value, []).append(key)
        for heap in self.buckets.values():
            heapq.heapify(heap)
        self.entries = sum(len(heap) for heap in self.buckets.values())

    def add(self, key: DomainKey, delta: int) -> None:
        if delta:
            self.set(key, self.cap.get(key, 0) + delta)

    def _top(self, value: int) -> DomainKey | None:
        heap = self.buckets.get(value)
        while heap:
            if self.cap.get(heap[0]) == value:
                return heap[0]
            heapq.heappop(heap)
        self.buckets.pop(value, None)
        return None

    def best_fit(self, need: int) -> DomainKey | None:
        """The domain with the smallest capacity ≥ need (first by name among equals)."""
        for value in sorted(v for v in self.buckets if v >= need):
            top = self._top(value)
            if top is not None:
                return top
        return None

    def best_fit_where(self, need: int, allowed: Callable[[DomainKey], bool]) -> DomainKey | None:
        """best_fit among the domains `allowed` accepts (a scan: only for the rare unlabelled-node case)."""
        fitting = [(cap, key) for key, cap in self.cap.items() if cap >= need and allowed(key)]
        return min(fitting)[1] if fitting else None

    def largest(self) -> tuple[int, DomainKey | None]:
        for value in sorted(self.buckets, reverse=True):
            top = self._top(value)
            if top is not None:
                return value, top
        return 0, None


@dataclass
class ShapeView:
    """Capacity, in replicas of one shape on one GPU model, per node and per domain of every level."""

    model: str
    per_replica: Mapping[str, int]
    cap: dict[str, int]
    levels: list[_LevelCounts]
    domains: list[dict[str, DomainKey | None]]  # per level: node → its domain
    user: weakref.ref[PlacementEngine] | None = None
    """The engine using this view (kept in the snapshot across passes; one engine at a time may change it)."""


MAX_KEPT_VIEWS: Final = 512
"""Shape views kept across passes; many one-off shapes start the cache over rather than grow it without bound."""


class PlacementEngine:
    """One scheduling pass over a snapshot: places gangs one after another, accounting for each."""

    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.snapshot = snapshot
        self.topology = snapshot.topology
        self.level_count = len(self.topology.levels) + 1  # + the cluster
        self.free: dict[str, dict[str, int]] = {}
        self.masked: set[str] = set()
        self._views: dict[tuple[str, str, tuple[tuple[str, int], ...]], ShapeView] = {}
        self._eligible = snapshot.kept.eligible  # filter shape → model → nodes (valid until a node changes)
        self._touched: set[str] = set()
        """Nodes this pass committed to or masked: kept views it uses differ from the snapshot there."""
        self._kept_stale: list[set[str]] = []
        self._found: dict[tuple[object, ...], Placement | Unplaceable] = {}
        """find's answers since the last commit or mask (a pass asks the same of many jobs alike)."""
        self._potential: dict[str, dict[str, int]] = {}

    # --- eligibility ------------------------------------------------------------------------------------

    def eligible_by_model(self, request: GangRequest) -> dict[str, list[str]]:
        """Nodes that pass the non-resource filters for this pod shape, grouped by GPU model."""
        shape = request.filter_shape()
        grouped = self._eligible.get(shape)
        if grouped is None:
            cache = self.snapshot.filter_cache(request.shape or filter_shape(request.template))
            grouped = {}
            for name, node in self.snapshot.nodes.items():
                if name in request.avoid:
                    continue
                ok = cache.get(name)
                if ok is None:
                    ok = bool(node.obj) and not node_filters(request.template, node.obj)
                    cache[name] = ok
                if ok:
                    grouped.setdefault(node.gpu_model, []).append(name)
            for names in grouped.values():
                names.sort()
            if len(self._eligible) >= MAX_KEPT_VIEWS:
                self._eligible.clear()
            self._eligible[shape] = grouped
        if request.models is None:
            return {m: grouped[m] for m in sorted(grouped)}
        return {m: grouped[m] for m in request.models if m in grouped}

    def potential_free(self, name: str) -> dict[str, int]:
        """What the node would have free with every Powertrain gang on it gone (other schedulers' pods stay);
        the same all pass (read only)."""
        free = self._potential.get(name)
        if free is None:
            node = self.snapshot.nodes[name]
            free = node.free()
            for amounts in self.snapshot.node_job_usage.get(name, {}).values():
                _add_to(free, amounts)
            _add_to(free, node.releasing)
            self._potential[name] = free
        return free

    def node_free(self, name: str) -> dict[str, int]:
        free = self.free.get(name)
        if free is None:
            free = self.snapshot.nodes[name].free()
            self.free[name] = free
        return free

    def _view(self, request: GangRequest, model: str, nodes: list[str]) -> ShapeView:
        """The view of this shape on this model: kept from an earlier pass (brought up to date where the
        snapshot or this pass changed a node since), else built."""
        vkey = (request.filter_shape(), model, request.per_replica_key)
        view = self._views.get(vkey)
        if view is not None:
            return view
        kept = self.snapshot.kept
        old = kept.entries.get(vkey)
        if isinstance(old, ShapeView) and (old.user is None or old.user() is None):
            view = old
            stale = kept.stale[vkey]
            for name in stale | self._touched:
                if name in view.cap:
                    value = 0 if name in self.masked else _capacity(self.node_free(name), view.per_replica)
                    self._set_node_cap(view, name, value)
            for counts in view.levels:
                counts.compact()
        else:
            view = self._build_view(request, model, nodes)
            if old is None:  # a view another engine is using stays its own; this one is private
                if len(kept.entries) >= MAX_KEPT_VIEWS:
                    kept.clear()
                kept.entries[vkey] = view
        if kept.entries.get(vkey) is view:
            view.user = weakref.ref(self)
            stale = kept.stale[vkey] = set(self._touched)
            self._kept_stale.append(stale)
        self._views[vkey] = view
        return view

    def _build_view(self, request: GangRequest, model: str, nodes: list[str]) -> ShapeView:
        levels = [_LevelCounts() for _ in range(self.level_count)]
        domains: list[dict[str, DomainKey | None]] = [{} for _ in range(self.level_count)]
        cap: dict[str, int] = {}
        sums: list[dict[DomainKey, int]] = [{} for _ in range(self.level_count)]
        node_keys = self.topology.node_keys
        labelled = len(self.topology.levels)  # the last level, the cluster, is one domain: ()
        cluster_sum = sums[labelled]
        cluster_domains = domains[labelled]
        for name in nodes:
            n = 0 if name in self.masked else _capacity(self.node_free(name), request.per_replica)
            cap[name] = n
            keys = node_keys.get(name)
            for level in range(labelled):
                key = keys[level] if keys is not None else None
                domains[level][name] = key
                if key is not None:
                    level_sums = sums[level]
                    level_sums[key] = level_sums.get(key, 0) + n
            cluster_domains[name] = ()
            cluster_sum[()] = cluster_sum.get((), 0) + n
        for level, totals in enumerate(sums):
            for key, total in totals.items():
                levels[level].set(key, total)
        return ShapeView(model, request.per_replica, cap, levels, domains)

    def views(self, request: GangRequest) -> list[ShapeView]:
        """One view per acceptable GPU model that has eligible nodes (in the job's order of preference)."""
        return [self._view(request, model, nodes) for model, nodes in self.eligible_by_model(request).items()]

    # --- bookkeeping ------------------------------------------------------------------------------------

    def _set_node_cap(self, view: ShapeView, name: str, value: int) -> None:
        old = view.cap.get(name)
        if old is None or old == value:
            return
        view.cap[name] = value
        for level in range(self.level_count):
            key = view.domains[level].get(name)
            if key is not None:
                view.levels[level].add(key, value - old)

    def _refresh_node(self, name: str) -> None:
        self._found.clear()
        self._touched.add(name)
        for stale in self._kept_stale:
            stale.add(name)
        for view in self._views.values():
            if name in view.cap:
                value = 0 if name in self.masked else _capacity(self.node_free(name), view.per_replica)
                self._set_node_cap(view, name, value)

    def commit(self, placement: Placement, per_replica: Mapping[str, int]) -> None:
        """Account for a gang the pass decided to place."""
        counts: dict[str, int] = {}
        for name in placement.nodes:
            counts[name] = counts.get(name, 0) + 1
        for name, count in counts.items():
            free = self.node_free(name)
            for key, need in per_replica.items():
                if key in free or key != PODS:
                    free[key] = free.get(key, 0) - need * count
            self._refresh_node(name)

    def mask(self, nodes: Iterable[str]) -> None:
        """Keep these nodes for a job earlier in the queue: later jobs of the pass cannot use them."""
        for name in nodes:
            if name not in self.masked:
                self.masked.add(name)
                self._refresh_node(name)

    def unmask(self, nodes: Iterable[str]) -> None:
        """Give back nodes kept earlier in the pass (their job is placed elsewhere now, or lets them go)."""
        for name in nodes:
            if name in self.masked:
                self.masked.discard(name)
                self._refresh_node(name)

    # --- placement --------------------------------------------------------------------------------------

    def _max_level(self, request: GangRequest) -> int | None:
        """Widest level the gang may use: L when Required or held, the cluster when Preferred; None: L undefined."""
        if not request.required and not request.hold:
            return self.level_count - 1
        return self.topology.level_index(request.level)

    def _locality(self, view: ShapeView, level: int, name: str) -> tuple[object, ...]:
        """Sort key that groups nodes by sub-domain, fullest sub-domains first (widest sub-level first)."""
        parts: list[object] = []
        for sub in range(level - 1, 0, -1):
            key = view.domains[sub].get(name)
            parts.append(-view.levels[sub].cap.get(key, 0) if key is not None else 0)
            parts.append(key or ())
        parts.append(name)
        return tuple(parts)

    def within_required(self, request: GangRequest, level: int, key: DomainKey) -> bool:
        """Whether a domain of `level` lies inside a labelled domain of the job's Required level.

        Keys list label values widest level first, so the Required level's value sits at a fixed position; a
        node without that label belongs to no domain of that level and is never used for a Required gang.
        """
        if not request.required and not request.hold:
            return True
        required = self.topology.level_index(request.level)
        if required is None or level >= required:
            return True
        position = len(self.topology.levels) - 1 - required
        return position < len(key) and bool(key[position])

    def _nodes_for(self, view: ShapeView, level: int, key: DomainKey, replicas: int) -> list[str]:
        members = self.topology.nodes_in(level, key)
        candidates = sorted(
            ((view.cap[n], n) for n in members if view.cap.get(n, 0) > 0),
            key=lambda t: (-t[0], self._locality(view, level, t[1])),
        )
        ranks: list[str] = []
        remaining = replicas
        for i, (cap, name) in enumerate(candidates):
            if cap >= remaining:
                # The node count is settled; the last node is the tightest that holds the rest, and among
                # equally tight ones the first in locality order (next to the nodes already taken).
                tightest = min(c for c, _ in candidates[i:] if c >= remaining)
                last = next(n for c, n in candidates[i:] if c == tightest)
                ranks.extend([last] * remaining)
                return ranks
            ranks.extend([name] * cap)
            remaining -= cap
        return []

    def find(self, request: GangRequest) -> Placement | Unplaceable:
        """The placement this pass would make for the gang, without committing it."""
        key = (request.shape_key, request.replicas, request.gpus_per_replica, request.hold)
        found = self._found.get(key)
        if found is None:
            found = self._found[key] = self._find(request)
        return found

    def _find(self, request: GangRequest) -> Placement | Unplaceable:
        max_level = self._max_level(request)
        if max_level is None:
            defined = ", ".join(lv.name for lv in self.topology.levels)
            return Unplaceable(
                cond.REASON_TOPOLOGY,
                f"spec.topology.level {request.level!r} is Required but the ClusterTrainingPolicy does not define "
                f"that level (levels: {defined})",
            )
        views = self.views(request)
        if not views:
            return Unplaceable(cond.REASON_NO_MATCHING_NODES, self._no_nodes_message(request))
        best: tuple[int, int, int, DomainKey, ShapeView] | None = None
        for order, view in enumerate(views):
            for level in range(max_level + 1):
                key = view.levels[level].best_fit(request.replicas)
                if key is not None and not self.within_required(request, level, key):
                    key = view.levels[level].best_fit_where(
                        request.replicas, partial(self.within_required, request, level)
                    )
                if key is None:
                    continue
                leftover = view.levels[level].cap[key] - request.replicas
                candidate = (level, leftover, order, key, view)
                if best is None or candidate[:4] < best[:4]:
                    best = candidate
                break
        if best is None:
            return Unplaceable(cond.REASON_WAITING_FOR_RESOURCES, self._too_small_message(request, views, max_level))
        level, _, _, key, view = best
        nodes = self._nodes_for(view, level, key, request.replicas)
        if len(nodes) != request.replicas:  # the counts said it fits; never place a partial gang if they lied
            return Unplaceable(cond.REASON_WAITING_FOR_RESOURCES, f"internal: capacity of {domain_path(key)} was stale")
        return Placement(
            level=self.topology.level_name(level),
            domain=domain_name(key),
            domain_path=domain_path(key),
            nodes=tuple(nodes),
            gpu_model=view.model,
        )

    def place(self, request: GangRequest) -> Placement | Unplaceable:
        """Find a placement and account for it."""
        result = self.find(request)
        if isinstance(result, Placement):
            self.commit(result, request.per_replica)
        return result

    # --- messages ---------------------------------------------------------------------------------------

    def _no_nodes_message(self, request: GangRequest) -> str:
        reasons: list[list[str]] = []
        wanted = set(request.models) if request.models else None
        for node in self.snapshot.nodes.values():
            why = node_filters(request.template, node.obj) if node.obj else ["node(s) were not ready"]
            if wanted is not None and node.gpu_model not in wanted:
                why.append(f"{REASON_GPU_MODEL} ({', '.join(sorted(wanted))})")
            reasons.append(why)
        return unschedulable_message(len(self.snapshot.nodes), reasons)

    def _too_small_message(self, request: GangRequest, views: list[ShapeView], max_level: int) -> str:
        g = request.gpus_per_replica
        need = f"the job needs {request.gpus} ({request.replicas}×{g})"
        largest = max(((view.levels[max_level].largest(), view.model, view) for view in views), key=lambda t: t[0][0])
        (cap, key), model, largest_view = largest
        model_text = f"{model} " if model else ""
        level_name = self.topology.level_name(max_level)
        short = self._short_of(request, largest_view, max_level, key)
        if level_name == CLUSTER:
            return f"the cluster has {cap * g} free {model_text}GPUs usable by {g}-GPU workers{short}; {need}"
        if key is None and not view_has_domains(views, max_level):
            labels = " or ".join(self.topology.levels[max_level].labels) or "(none)"
            return f"no eligible node carries a {level_name} label ({labels}); {need} inside one {level_name}"
        where = f" ({domain_path(key)})" if key is not None else ""
        return (
            f"the largest {level_name}{where} has {cap * g} free {model_text}GPUs usable by {g}-GPU workers{short}; "
            f"{need} inside one {level_name}"
        )

    def _short_of(self, request: GangRequest, view: ShapeView, level: int, key: DomainKey | None) -> str:
        """When free GPUs sit next to too little of something else (cpu, memory, pod slots), name it: a
        message that only counted GPUs would say "0 free GPUs" while every GPU is free."""
        names = [n for n, k in view.domains[level].items() if k == key and n not in self.masked]
        if key is None or not names:
            names = [n for n in view.cap if n not in self.masked]
        free = {n: self.node_free(n) for n in names}
        gpus_free = sum(max(f.get(c.GPU_RESOURCE, 0), 0) for f in free.values())
        usable = sum(view.cap.get(n, 0) for n in names) * request.gpus_per_replica
        if gpus_free <= usable:
            return ""
        short = []
        for resource, need in sorted(request.per_replica.items()):
            if (
                resource == c.GPU_RESOURCE
                or need <= 0
                or (resource == PODS and all(PODS not in f for f in free.values()))
            ):
                continue
            workers = sum(max(f.get(resource, 0), 0) // need for f in free.values())
            if workers < request.replicas:
                most = max((f.get(resource, 0) for f in free.values()), default=0)
                short.append(
                    f"{resource} (each worker asks for {format_amount(resource, need)}, the most free on a node is "
                    f"{format_amount(resource, max(most, 0))})"
                )
        if not short:
            return ""
        return f" ({gpus_free} GPUs are free, but not enough {' or '.join(short)})"


def view_has_domains(views: list[ShapeView], level: int) -> bool:
    return any(key is not None for view in views for key in view.domains[level].values())


def gpu_model_of(snapshot: ClusterSnapshot, node: str) -> str:
    info = snapshot.nodes.get(node)
    return info.gpu_model if info else ""


def gpus_free_by_model(snapshot: ClusterSnapshot) -> dict[str, int]:
    """Free, healthy GPUs on schedulable Ready nodes, per model (for gauges and the demo)."""
    out: dict[str, int] = {}
    for node in snapshot.nodes.values():
        if not node.ready or node.unschedulable:
            continue
        free = max(node.free().get(c.GPU_RESOURCE, 0), 0)
        if free:
            out[node.gpu_model] = out.get(node.gpu_model, 0) + free
    return out
