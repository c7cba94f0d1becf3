"""Simulated clusters as core/v1 Node objects: a uniform cluster from a short spec, or a real fleet (Alibaba
PAI's node list). The layouts come from `powertrain.fleet`, as for the sandbox (`powertrain sandbox up`):
topology counts are per parent, nodes fill the leaf domains in name order in even, contiguous blocks; a fleet
file without topology columns gets racks of up to 16 nodes of one GPU model (file order), 8 racks per spine,
one zone. CPU-only nodes of a fleet are left out: they cannot take a training worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from powertrain import fleet
from powertrain.api import constants as c
from powertrain.fleet import (
    DEFAULT_CPU_MILLI,
    DEFAULT_GPU_MODEL,
    DEFAULT_MEMORY_MIB,
    TOPOLOGY_KEYS,
    TOPOLOGY_LABELS,
    FleetError,
    FleetNode,
    read_fleet_csv,
    synthesized_domains,
    uniform_fleet,
)

DEFAULT_SPEC: Final = "nodes=32,gpus-per-node=8,topology=zone=1,spine=2,rack=4"
DEFAULT_MODEL: Final = DEFAULT_GPU_MODEL
CLUSTER_KEYS: Final = ("nodes", "gpus-per-node", "model", "topology")
MAX_NODES: Final = 100_000


class ClusterError(ValueError):
    """A cluster spec or fleet file that cannot describe nodes; the message says what is allowed."""


@dataclass(frozen=True)
class SimNode:
    name: str
    gpus: int
    model: str
    domains: dict[str, str] = field(default_factory=dict)
    cpu_milli: int = DEFAULT_CPU_MILLI
    memory_mib: int = DEFAULT_MEMORY_MIB

    def to_object(self) -> dict[str, Any]:
        labels = {c.HOSTNAME_LABEL: self.name, c.GPU_PRODUCT_LABEL: self.model, c.GPU_COUNT_LABEL: str(self.gpus)}
        labels.update({TOPOLOGY_LABELS[level]: value for level, value in self.domains.items()})
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels},
            "spec": {},
            "status": {
                "allocatable": {
                    "cpu": f"{self.cpu_milli}m",
                    "memory": f"{self.memory_mib}Mi",
                    c.GPU_RESOURCE: str(self.gpus),
                    "pods": "110",
                },
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }


def _count(key: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ClusterError(f"--cluster: {key}={value!r} is invalid: must be a whole number") from None
    if not low <= number <= high:
        raise ClusterError(f"--cluster: {key}={number} is invalid: must lie within {low}..{high}")
    return number


def parse_cluster(spec: str) -> list[SimNode]:
    """`nodes=32,gpus-per-node=8,model=NVIDIA-H200,topology=zone=1,spine=2,rack=4,nvlink=2` → nodes.

    Every key is optional (defaults: 32 nodes, 8 GPUs, NVIDIA-H200, one zone/spine/rack); the level counts
    after `topology=` are per parent, as for `powertrain sandbox up --topology`.
    """
    values: dict[str, str] = {}
    levels: list[str] = []
    in_topology = False
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if key == "topology" and sep:
            in_topology = True
            key, sep, value = value.partition("=")
            key = key.strip()
        if in_topology and key in TOPOLOGY_KEYS and sep:
            levels.append(f"{key}={value}")
            continue
        if not sep or key not in CLUSTER_KEYS:
            raise ClusterError(
                f"--cluster: {part!r} is invalid: use key=value with keys {', '.join(CLUSTER_KEYS)}, the topology "
                f"last with levels {', '.join(TOPOLOGY_KEYS)} (e.g. {DEFAULT_SPEC})"
            )
        if key in values:
            raise ClusterError(f"--cluster: {key!r} is given twice")
        values[key] = value.strip()
    count = _count("nodes", values.get("nodes", "32"), 1, MAX_NODES)
    gpus = _count("gpus-per-node", values.get("gpus-per-node", "8"), 1, 64)
    model = values.get("model", DEFAULT_MODEL)
    if not model or len(model) > 63 or any(ch.isspace() or ch in "/," for ch in model):
        raise ClusterError(f"--cluster: model={model!r} is invalid: must be a label value such as {DEFAULT_MODEL}")
    try:
        topology = fleet.parse_topology(",".join(levels))
    except FleetError as exc:
        raise ClusterError(f"--cluster: topology {exc}") from None
    return uniform_nodes(count, gpus, model, topology)


def uniform_nodes(count: int, gpus: int, model: str, topology: fleet.Topology) -> list[SimNode]:
    return [_sim_node(node, model) for node in uniform_fleet(count, gpus, model, topology)]


def _sim_node(node: FleetNode, model: str) -> SimNode:
    return SimNode(node.name, node.gpus, model, dict(node.domains), node.cpu_milli, node.memory_mib)


def parse_fleet(text: str, source: str = "fleet") -> list[SimNode]:
    """Alibaba's `openb_node_list_gpu_node.csv` (sn,cpu_milli,memory_mib,gpu,model[,zone,spine,rack,nvlink])."""
    try:
        rows = read_fleet_csv(text, source)
    except FleetError as exc:
        raise ClusterError(str(exc)) from None
    nodes = [_sim_node(row, row.gpu_model or "unknown") for row in rows if row.gpus]
    if len(nodes) > MAX_NODES:
        raise ClusterError(f"{source}: more than {MAX_NODES} GPU nodes")
    if not nodes:
        raise ClusterError(f"{source}: no GPU nodes")
    if not any(n.domains for n in nodes):
        domains = synthesized_domains([n.model for n in nodes])
        nodes = [
            SimNode(n.name, n.gpus, n.model, d, n.cpu_milli, n.memory_mib) for n, d in zip(nodes, domains, strict=True)
        ]
    return nodes


def load_fleet(path: Path) -> list[SimNode]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClusterError(f"--fleet: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ClusterError(f"--fleet: {str(path)!r} is not a UTF-8 text (CSV) file") from None
    return parse_fleet(text, str(path))
