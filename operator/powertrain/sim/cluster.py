"""Simulated clusters as core/v1 Node objects: a uniform cluster from a short spec, or a real fleet (Alibaba
PAI's node list). Same conventions as the sandbox (`powertrain sandbox up`): topology counts are per parent,
nodes fill the leaf domains in name order in even, contiguous blocks; a fleet file without topology columns
gets racks of up to 16 nodes of one GPU model (file order), 8 racks per spine, one zone.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from powertrain.api import constants as c

DEFAULT_SPEC: Final = "nodes=32,gpus-per-node=8,topology=zone=1,spine=2,rack=4"
DEFAULT_MODEL: Final = "NVIDIA-H200"
TOPOLOGY_KEYS: Final = ("zone", "spine", "rack", "nvlink")
CLUSTER_KEYS: Final = ("nodes", "gpus-per-node", "model", "topology")
FLEET_RACK_NODES: Final = 16
FLEET_SPINE_RACKS: Final = 8
MAX_NODES: Final = 100_000
FLEET_COLUMNS: Final = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
# Alibaba's model codes → the product label the GPU operator would set (G2/G3 are anonymised in the trace).
ALIBABA_GPU_PRODUCTS: Final = {
    "P100": "Tesla-P100-PCIE-16GB",
    "T4": "Tesla-T4",
    "V100M16": "Tesla-V100-SXM2-16GB",
    "V100M32": "Tesla-V100-SXM2-32GB",
    "A10": "NVIDIA-A10",
    "G2": "Alibaba-G2",
    "G3": "Alibaba-G3",
}
_LABELS: Final = {
    "zone": c.ZONE_LABEL,
    "spine": c.SPINE_LABEL,
    "rack": c.RACK_LABEL,
    "nvlink": c.NVLINK_DOMAIN_LABEL,
}


class ClusterError(ValueError):
    """A cluster spec or fleet file that cannot describe nodes; the message says what is allowed."""


@dataclass(frozen=True)
class SimNode:
    name: str
    gpus: int
    model: str
    domains: dict[str, str] = field(default_factory=dict)
    cpu_milli: int = 128_000
    memory_mib: int = 2 * 1024 * 1024

    def to_object(self) -> dict[str, Any]:
        labels = {c.HOSTNAME_LABEL: self.name, c.GPU_PRODUCT_LABEL: self.model, c.GPU_COUNT_LABEL: str(self.gpus)}
        labels.update({_LABELS[level]: value for level, value in self.domains.items()})
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


def _letters(index: int) -> str:
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(ord("a") + rem) + out
    return out


def parse_cluster(spec: str) -> list[SimNode]:
    """`nodes=32,gpus-per-node=8,model=NVIDIA-H200,topology=zone=1,spine=2,rack=4,nvlink=2` → nodes.

    Every key is optional (defaults: 32 nodes, 8 GPUs, NVIDIA-H200, one zone/spine/rack); the level counts
    after `topology=` are per parent, as for `powertrain sandbox up --topology`.
    """
    values: dict[str, str] = {}
    topology: dict[str, int] = {}
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
            if key in topology:
                raise ClusterError(f"--cluster: topology level {key!r} is given twice")
            topology[key] = _count(key, value, 0 if key == "nvlink" else 1, 10_000)
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
    return uniform_nodes(count, gpus, model, topology)


def uniform_nodes(count: int, gpus: int, model: str, topology: dict[str, int]) -> list[SimNode]:
    zones, spines, racks = topology.get("zone", 1), topology.get("spine", 1), topology.get("rack", 1)
    nvlink = topology.get("nvlink", 0)
    leaves = zones * spines * racks * max(nvlink, 1)
    width = max(3, len(str(count - 1)))
    nodes: list[SimNode] = []
    for i in range(count):
        leaf = i * leaves // count
        rack = leaf // max(nvlink, 1)
        spine = rack // racks
        domains = {"zone": f"zone-{_letters(spine // spines)}", "spine": f"spine-{spine}", "rack": f"rack-{rack}"}
        if nvlink:
            domains["nvlink"] = f"nvl-{leaf}"
        nodes.append(SimNode(f"node-{i:0{width}d}", gpus, model, domains))
    return nodes


def parse_fleet(text: str, source: str = "fleet") -> list[SimNode]:
    """Alibaba's `openb_node_list_gpu_node.csv` (sn,cpu_milli,memory_mib,gpu,model[,zone,spine,rack,nvlink])."""
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [col for col in FLEET_COLUMNS if col not in header]
    if missing:
        raise ClusterError(
            f"{source}: missing column(s) {', '.join(missing)}; a fleet file needs the header "
            f"{','.join(FLEET_COLUMNS)} (optionally zone,spine,rack,nvlink)"
        )
    nodes: list[SimNode] = []
    seen: set[str] = set()
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        where = f"{source}:{line}"
        try:
            cpu, memory, gpus = int(row["cpu_milli"]), int(row["memory_mib"]), int(row["gpu"])
        except ValueError:
            raise ClusterError(f"{where}: cpu_milli, memory_mib and gpu must be whole numbers, got {row}") from None
        if cpu <= 0 or memory <= 0 or not 0 <= gpus <= 64:
            raise ClusterError(f"{where}: need cpu_milli > 0, memory_mib > 0 and 0 ≤ gpu ≤ 64, got {row}")
        name = row["sn"]
        if not name or name in seen:
            raise ClusterError(f"{where}: sn={name!r} is invalid: node names must be non-empty and unique")
        seen.add(name)
        if gpus == 0:
            continue  # a CPU-only node cannot take a training worker
        model = ALIBABA_GPU_PRODUCTS.get(row["model"], row["model"]) or "unknown"
        domains = {k: row[k] for k in TOPOLOGY_KEYS if row.get(k)}
        nodes.append(SimNode(name, gpus, model, domains, cpu_milli=cpu, memory_mib=memory))
        if len(nodes) > MAX_NODES:
            raise ClusterError(f"{source}: more than {MAX_NODES} GPU nodes")
    if not nodes:
        raise ClusterError(f"{source}: no GPU nodes")
    if not any(n.domains for n in nodes):
        nodes = _fleet_topology(nodes)
    return nodes


def _fleet_topology(nodes: list[SimNode]) -> list[SimNode]:
    by_model: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        by_model.setdefault(node.model, []).append(i)
    rack_of: dict[int, int] = {}
    rack = 0
    for indices in by_model.values():
        for start in range(0, len(indices), FLEET_RACK_NODES):
            for i in indices[start : start + FLEET_RACK_NODES]:
                rack_of[i] = rack
            rack += 1
    out = []
    for i, node in enumerate(nodes):
        r = rack_of[i]
        domains = {"zone": "zone-a", "spine": f"spine-{r // FLEET_SPINE_RACKS}", "rack": f"rack-{r}"}
        out.append(SimNode(node.name, node.gpus, node.model, domains, node.cpu_milli, node.memory_mib))
    return out


def load_fleet(path: Path) -> list[SimNode]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClusterError(f"--fleet: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ClusterError(f"--fleet: {str(path)!r} is not a UTF-8 text (CSV) file") from None
    return parse_fleet(text, str(path))
