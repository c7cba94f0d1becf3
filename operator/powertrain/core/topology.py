"""Topology domains from node labels: node < nvlink < rack < spine < zone, then the whole cluster.

A domain is identified by the label values of its own level *and of every wider level* (widest first), as in
Kueue's topology-aware scheduling. So rack "r1" under spine "s1" and a mislabeled rack "r1" under spine "s2"
are different racks, and a domain of one level always lies inside exactly one domain of every wider level:
a gang placed inside one rack can never straddle two spines. A node that lacks the label of a level (and all
its alternates) belongs to no domain of that level; the node level always exists (the node's name).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from powertrain.api.policy import ClusterTrainingPolicySpec, TopologyLevelSpec
from powertrain.api.trainingjob import TOPOLOGY_ORDER

CLUSTER: Final = "cluster"
"""The pseudo-level above the widest labelled one: the whole cluster, a single domain."""

NODE_LEVEL: Final = "node"

DomainKey = tuple[str, ...]
"""Label values from the widest level down to the domain's own level ("" where a wider label is missing)."""


@dataclass(frozen=True)
class Level:
    name: str
    labels: tuple[str, ...]  # the node label first, then its alternates in order


def levels_from_policy(spec: ClusterTrainingPolicySpec | None) -> tuple[Level, ...]:
    """The policy's levels, narrowest first; the node level is always present (domains named after nodes)."""
    specs: Sequence[TopologyLevelSpec] = (spec or ClusterTrainingPolicySpec()).topology
    by_name = {str(s.name): (s.node_label, *s.alternate_labels) for s in specs}
    by_name.setdefault(NODE_LEVEL, ())
    return tuple(Level(name, tuple(by_name[name])) for name in TOPOLOGY_ORDER if name in by_name)


def label_value(level: Level, labels: Mapping[str, str]) -> str | None:
    for key in level.labels:
        value = labels.get(key)
        if value:
            return str(value)
    return None


def node_domains(levels: Sequence[Level], node_name: str, labels: Mapping[str, str]) -> tuple[DomainKey | None, ...]:
    """The node's domain at each level (same order as `levels`), None where the node has no such label."""
    values = [node_name if lv.name == NODE_LEVEL else label_value(lv, labels) for lv in levels]
    out: list[DomainKey | None] = []
    for i, value in enumerate(values):
        if value is None:
            out.append(None)
            continue
        # Widest first, so the key of a wider domain is a prefix-free, readable path such as (zone, spine, rack).
        wider = tuple(v or "" for v in reversed(values[i + 1 :]))
        out.append((*wider, value))
    return tuple(out)


def domain_name(key: DomainKey) -> str:
    """What users see: the domain's own label value (`rack r7`), or "cluster" for the whole cluster."""
    return (key[-1] or CLUSTER) if key else CLUSTER


def domain_path(key: DomainKey) -> str:
    """The full path, widest first, for unambiguous messages: "zone-a/s1/r7"."""
    return "/".join(v for v in key if v) if key else CLUSTER


@dataclass
class TopologyIndex:
    """Which nodes make up each domain, per level; updated node by node."""

    levels: tuple[Level, ...]
    members: list[dict[DomainKey, set[str]]]
    node_keys: dict[str, tuple[DomainKey | None, ...]]

    @classmethod
    def empty(cls, levels: tuple[Level, ...]) -> TopologyIndex:
        return cls(levels, [{} for _ in levels], {})

    def level_index(self, name: str) -> int | None:
        for i, level in enumerate(self.levels):
            if level.name == name:
                return i
        return None

    def upsert(self, node_name: str, labels: Mapping[str, str]) -> None:
        keys = node_domains(self.levels, node_name, labels)
        if self.node_keys.get(node_name) == keys:
            return
        self.remove(node_name)
        self.node_keys[node_name] = keys
        for i, key in enumerate(keys):
            if key is not None:
                self.members[i].setdefault(key, set()).add(node_name)

    def remove(self, node_name: str) -> None:
        keys = self.node_keys.pop(node_name, None)
        if keys is None:
            return
        for i, key in enumerate(keys):
            if key is None:
                continue
            group = self.members[i].get(key)
            if group is not None:
                group.discard(node_name)
                if not group:
                    del self.members[i][key]

    def nodes_in(self, level: int, key: DomainKey) -> set[str]:
        if level >= len(self.levels):  # the cluster pseudo-level
            return set(self.node_keys)
        return self.members[level].get(key, set())

    def domain_of(self, node_name: str, level: int) -> DomainKey | None:
        if level >= len(self.levels):
            return ()
        keys = self.node_keys.get(node_name)
        return keys[level] if keys is not None else None

    def level_name(self, level: int) -> str:
        return self.levels[level].name if level < len(self.levels) else CLUSTER


def free_by_domain(
    index: TopologyIndex, level: int, free: Mapping[str, int], nodes: Iterable[str]
) -> dict[DomainKey, int]:
    """Sum a per-node amount (e.g. free GPUs of acceptable models) over the domains of one level."""
    out: dict[DomainKey, int] = {}
    for name in nodes:
        key = index.domain_of(name, level)
        if key is not None:
            out[key] = out.get(key, 0) + free.get(name, 0)
    return out


def node_domain_rows(index: TopologyIndex) -> list[tuple[str, str, str]]:
    """(node, level, domain name) for every node and every level it has a domain at, node level included."""
    rows = []
    for node, keys in index.node_keys.items():
        for level, key in zip(index.levels, keys, strict=True):
            if key is not None:
                rows.append((node, level.name, domain_name(key)))
    return rows
