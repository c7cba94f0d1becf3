"""GPU fleets as plain data, shared by the sandbox (`powertrain sandbox up`) and the simulator (`powertrain simulate`).

Two sources, one result (a list of `FleetNode`):

* a fan-out topology such as `zone=1,spine=2,rack=4,nvlink=2`, each level counted *per parent domain*: 1 zone
  holding 2 spines, each holding 4 racks (8 racks in all), each rack split into 2 NVLink domains. Nodes fill the
  leaf domains in name order, in contiguous blocks as even as possible (node-000…node-003 in the first leaf, and so
  on), the way consecutive machines share a rack. A level left out has one domain per parent, except nvlink: left
  out (or 0) means no NVLink domain at all, as on clusters without multi-node NVLink.
* a CSV node list with the columns of the Alibaba PAI fleet (`sn,cpu_milli,memory_mib,gpu,model`), optionally with
  `zone,spine,rack,nvlink` columns. Alibaba model codes become `nvidia.com/gpu.product` values through
  `ALIBABA_GPU_PRODUCTS`; any other value is used as the label value as-is.

A fleet without any topology gets one from `synthesized_domains`: racks never mix GPU models and hold up to 16
nodes of one model in file order; 8 consecutive racks share a spine; one zone.

Pure: no files, no clocks, nothing beyond the standard library and the API constants, so the simulator can use it
without importing the sandbox. Callers turn `FleetError` into their own error type and render the nodes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from powertrain.api import constants as c

DEFAULT_GPU_MODEL: Final = "NVIDIA-H200"
DEFAULT_CPU_MILLI: Final = 128_000
DEFAULT_MEMORY_MIB: Final = 2 * 1024 * 1024

# The trace anonymises two models (G2, G3); inventing a product name for them would mislead, so they keep a
# label that says where they came from. The others are the names NVIDIA's GPU feature discovery writes.
ALIBABA_GPU_PRODUCTS: Final[Mapping[str, str]] = {
    "P100": "Tesla-P100-PCIE-16GB",
    "T4": "Tesla-T4",
    "V100M16": "Tesla-V100-SXM2-16GB",
    "V100M32": "Tesla-V100-SXM2-32GB",
    "A10": "NVIDIA-A10",
    "G2": "Alibaba-G2",
    "G3": "Alibaba-G3",
}

FLEET_COLUMNS: Final = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
FLEET_RACK_NODES: Final = 16
FLEET_SPINE_RACKS: Final = 8
MAX_LEVEL_COUNT: Final = 10_000

TOPOLOGY_KEYS: Final = ("zone", "spine", "rack", "nvlink")
TOPOLOGY_LABELS: Final[Mapping[str, str]] = {
    "zone": c.ZONE_LABEL,
    "spine": c.SPINE_LABEL,
    "rack": c.RACK_LABEL,
    "nvlink": c.NVLINK_DOMAIN_LABEL,
}


class FleetError(ValueError):
    """A topology or node list that cannot describe nodes; the message names the field, value and what is allowed."""


@dataclass(frozen=True)
class FleetNode:
    """One node: `gpu_model` is the product label value (None: no GPUs or no model given); `domains` maps
    zone/spine/rack/nvlink to domain names (a level absent: no label)."""

    name: str
    gpus: int
    gpu_model: str | None = DEFAULT_GPU_MODEL
    cpu_milli: int = DEFAULT_CPU_MILLI
    memory_mib: int = DEFAULT_MEMORY_MIB
    domains: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Topology:
    """Fan-out per level (see the module docstring); nvlink 0 means no NVLink-domain label."""

    zone: int = 1
    spine: int = 1
    rack: int = 1
    nvlink: int = 0

    @property
    def leaves(self) -> int:
        return self.zone * self.spine * self.rack * max(self.nvlink, 1)

    def domains(self, index: int, count: int) -> dict[str, str]:
        """The domains of node `index` of `count` (contiguous, even blocks over the leaves)."""
        leaf = index * self.leaves // count if count else 0
        rack = leaf // max(self.nvlink, 1)
        spine = rack // self.rack
        zone = spine // self.spine
        out = {"zone": f"zone-{letters(zone)}", "spine": f"spine-{spine}", "rack": f"rack-{rack}"}
        if self.nvlink:
            out["nvlink"] = f"nvl-{leaf}"
        return out


def level_count(key: str, value: str) -> int:
    """The count of one topology level; nvlink may be 0 (no NVLink domains), the others start at 1."""
    try:
        count = int(value.strip())
    except ValueError:
        raise FleetError(f"{key}={value!r} is invalid: must be a whole number") from None
    low = 0 if key == "nvlink" else 1
    if not low <= count <= MAX_LEVEL_COUNT:
        raise FleetError(f"{key}={count} is invalid: must lie within {low}..{MAX_LEVEL_COUNT}")
    return count


def parse_topology(text: str) -> Topology:
    """`zone=1,spine=2,rack=4,nvlink=2` → Topology; every level optional, counts are whole numbers."""
    counts: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in TOPOLOGY_KEYS:
            raise FleetError(
                f"{part!r} is invalid: use level=count with levels {', '.join(TOPOLOGY_KEYS)}"
                " (e.g. zone=1,spine=2,rack=4,nvlink=2)"
            )
        if key in counts:
            raise FleetError(f"level {key!r} is given twice")
        counts[key] = level_count(key, value)
    return Topology(**counts)


def letters(index: int) -> str:
    """0 → a, 25 → z, 26 → aa: zone names the way clouds spell them."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(ord("a") + rem) + out
    return out


def node_names(count: int, prefix: str = "node") -> list[str]:
    """`node-000`…: zero-padded to at least 3 digits so names sort in index order."""
    width = max(3, len(str(count - 1)))
    return [f"{prefix}-{i:0{width}d}" for i in range(count)]


def uniform_fleet(count: int, gpus: int, gpu_model: str, topology: Topology) -> list[FleetNode]:
    """`count` identical nodes named node-000… spread over `topology`; callers check the ranges they allow."""
    return [
        FleetNode(name=name, gpus=gpus, gpu_model=gpu_model if gpus else None, domains=topology.domains(i, count))
        for i, name in enumerate(node_names(count))
    ]


def read_fleet_csv(text: str, source: str) -> list[FleetNode]:
    """Every row of a node list (CPU-only rows too), in file order; domains only where the file names them."""
    reader = csv.DictReader(io.StringIO(text))
    columns = [col.strip() for col in reader.fieldnames or []]
    missing = [col for col in FLEET_COLUMNS if col not in columns]
    if missing:
        raise FleetError(
            f"{source}: missing column(s) {', '.join(missing)}; a CSV node file needs the header "
            f"{','.join(FLEET_COLUMNS)} (optionally zone,spine,rack,nvlink)"
        )
    out: list[FleetNode] = []
    seen: set[str] = set()
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        where = f"{source}:{line}"
        try:
            cpu_milli, memory_mib, gpus = int(row["cpu_milli"]), int(row["memory_mib"]), int(row["gpu"])
        except ValueError:
            raise FleetError(f"{where}: cpu_milli, memory_mib and gpu must be whole numbers, got {row}") from None
        if cpu_milli <= 0 or memory_mib <= 0 or not 0 <= gpus <= 64:
            raise FleetError(f"{where}: need cpu_milli > 0, memory_mib > 0 and 0 ≤ gpu ≤ 64, got {row}")
        name = row["sn"]
        if not name:
            raise FleetError(f"{where}: sn (the node name) is empty")
        if name in seen:
            raise FleetError(f"{where}: node name {name!r} appears more than once (sn must be unique)")
        seen.add(name)
        model = ALIBABA_GPU_PRODUCTS.get(row["model"], row["model"])
        out.append(
            FleetNode(
                name=name,
                gpus=gpus,
                gpu_model=(model or None) if gpus else None,
                cpu_milli=cpu_milli,
                memory_mib=memory_mib,
                domains={k: row[k] for k in TOPOLOGY_KEYS if row.get(k)},
            )
        )
    return out


def synthesized_domains(models: Sequence[str]) -> list[dict[str, str]]:
    """Domains for nodes whose GPU models are `models` (in order): racks of ≤ 16 nodes of one model in that order,
    8 consecutive racks per spine, one zone."""
    by_model: dict[str, list[int]] = {}
    for i, model in enumerate(models):
        by_model.setdefault(model, []).append(i)
    rack_of: dict[int, int] = {}
    rack = 0
    for indices in by_model.values():
        for start in range(0, len(indices), FLEET_RACK_NODES):
            for i in indices[start : start + FLEET_RACK_NODES]:
                rack_of[i] = rack
            rack += 1
    return [
        {"zone": "zone-a", "spine": f"spine-{rack_of[i] // FLEET_SPINE_RACKS}", "rack": f"rack-{rack_of[i]}"}
        for i in range(len(models))
    ]


__all__ = [
    "ALIBABA_GPU_PRODUCTS",
    "DEFAULT_CPU_MILLI",
    "DEFAULT_GPU_MODEL",
    "DEFAULT_MEMORY_MIB",
    "FLEET_COLUMNS",
    "FLEET_RACK_NODES",
    "FLEET_SPINE_RACKS",
    "TOPOLOGY_KEYS",
    "TOPOLOGY_LABELS",
    "FleetError",
    "FleetNode",
    "Topology",
    "letters",
    "level_count",
    "node_names",
    "parse_topology",
    "read_fleet_csv",
    "synthesized_domains",
    "uniform_fleet",
]
