"""Node objects that look like real GPU nodes, from command-line flags or from a node file.

Three sources, one result (a list of `NodeSpec`, rendered by `node_object` into core/v1 Node JSON):

* flags: `--nodes N --gpus-per-node G --gpu-model M --topology zone=1,spine=2,rack=4,nvlink=2`. The topology
  counts are a fan-out, each level counted *per parent domain*: `zone=1,spine=2,rack=4` is 1 zone holding 2
  spines, each holding 4 racks (8 racks in all); `nvlink=2` splits each rack into 2 NVLink domains. Nodes fill
  the leaf domains in name order, in contiguous blocks as even as possible (node-000…node-003 in the first
  leaf, and so on), the way consecutive machines share a rack. A level left out has one domain per parent,
  except nvlink: left out (or 0) means no NVLink-domain label at all, as on clusters without multi-node NVLink.
* a CSV file with the columns of the Alibaba PAI fleet (`sn,cpu_milli,memory_mib,gpu,model`), optionally with
  `zone,spine,rack,nvlink` columns. Alibaba model codes are mapped to `nvidia.com/gpu.product` values by
  `ALIBABA_GPU_PRODUCTS`; any other value is used as the label value as-is.
* a YAML file of node groups (see `NodeFileModel`).

When a file gives no topology at all, one is synthesised (`synthesize_fleet_topology`): racks never mix GPU
models and hold up to 16 nodes of one model in file order; 8 consecutive racks share a spine; one zone.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import Field

from powertrain.api import constants as c
from powertrain.api.common import ApiModel
from powertrain.api.validation import InvalidObject, parse
from powertrain.core.quantity import format_amount, resource_amount

DEFAULT_GPU_MODEL: Final = "NVIDIA-H200"
DEFAULT_CPU_MILLI: Final = 128_000
DEFAULT_MEMORY_MIB: Final = 2 * 1024 * 1024
DEFAULT_MAX_PODS: Final = 110
KUBELET_VERSION: Final = "v1.32.0-sandbox"

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

FLEET_RACK_NODES: Final = 16
FLEET_SPINE_RACKS: Final = 8

TOPOLOGY_KEYS: Final = ("zone", "spine", "rack", "nvlink")
_TOPOLOGY_LABELS: Final[Mapping[str, str]] = {
    "zone": c.ZONE_LABEL,
    "spine": c.SPINE_LABEL,
    "rack": c.RACK_LABEL,
    "nvlink": c.NVLINK_DOMAIN_LABEL,
}


class NodeConfigError(ValueError):
    """A flag or node file that cannot describe nodes; the message names the field, value and what is allowed."""


@dataclass(frozen=True)
class NodeSpec:
    """One simulated node. `topology` maps zone/spine/rack/nvlink to domain names (absent: no label)."""

    name: str
    gpus: int
    gpu_product: str | None = DEFAULT_GPU_MODEL
    cpu_milli: int = DEFAULT_CPU_MILLI
    memory_bytes: int = DEFAULT_MEMORY_MIB * 1024 * 1024
    max_pods: int = DEFAULT_MAX_PODS
    topology: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()
    unschedulable: bool = False


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


def parse_topology(text: str) -> Topology:
    """`zone=1,spine=2,rack=4,nvlink=2` → Topology; every level optional, counts are whole numbers."""
    counts: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in TOPOLOGY_KEYS:
            raise NodeConfigError(
                f"--topology: {part!r} is invalid: use level=count with levels {', '.join(TOPOLOGY_KEYS)}"
                " (e.g. zone=1,spine=2,rack=4,nvlink=2)"
            )
        if key in counts:
            raise NodeConfigError(f"--topology: level {key!r} is given twice")
        try:
            count = int(value.strip())
        except ValueError:
            raise NodeConfigError(f"--topology: {key}={value!r} is invalid: the count must be a whole number") from None
        low = 0 if key == "nvlink" else 1
        if not low <= count <= 10_000:
            raise NodeConfigError(f"--topology: {key}={count} is invalid: the count must lie within {low}..10000")
        counts[key] = count
    return Topology(**counts)


def _letters(index: int) -> str:
    """0 → a, 25 → z, 26 → aa: zone names the way clouds spell them."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(ord("a") + rem) + out
    return out


def topology_domains(index: int, count: int, topology: Topology) -> dict[str, str]:
    """The domains of node `index` of `count` under a fan-out topology (contiguous, even blocks)."""
    leaves = topology.leaves
    leaf = index * leaves // count if count else 0
    nvl = max(topology.nvlink, 1)
    rack = leaf // nvl
    spine = rack // topology.rack
    zone = spine // topology.spine
    out = {"zone": f"zone-{_letters(zone)}", "spine": f"spine-{spine}", "rack": f"rack-{rack}"}
    if topology.nvlink:
        out["nvlink"] = f"nvl-{leaf}"
    return out


def node_names(count: int, prefix: str = "node") -> list[str]:
    width = max(3, len(str(count - 1)))
    return [f"{prefix}-{i:0{width}d}" for i in range(count)]


def uniform_nodes(
    count: int,
    gpus_per_node: int,
    gpu_model: str = DEFAULT_GPU_MODEL,
    topology: Topology | None = None,
    *,
    cpu_milli: int = DEFAULT_CPU_MILLI,
    memory_bytes: int = DEFAULT_MEMORY_MIB * 1024 * 1024,
) -> list[NodeSpec]:
    """`count` identical GPU nodes spread over `topology` (default: one zone, one spine, one rack)."""
    if count < 0 or count > 100_000:
        raise NodeConfigError(f"--nodes: {count} is invalid: must lie within 0..100000")
    if gpus_per_node < 0 or gpus_per_node > 64:
        raise NodeConfigError(f"--gpus-per-node: {gpus_per_node} is invalid: must lie within 0..64")
    if not gpu_model or any(ch.isspace() for ch in gpu_model) or len(gpu_model) > 63:
        raise NodeConfigError(
            f"--gpu-model: {gpu_model!r} is invalid: must be a label value such as NVIDIA-H200 (no spaces, ≤ 63 chars)"
        )
    topo = topology or Topology()
    return [
        NodeSpec(
            name=name,
            gpus=gpus_per_node,
            gpu_product=gpu_model if gpus_per_node else None,
            cpu_milli=cpu_milli,
            memory_bytes=memory_bytes,
            topology=topology_domains(i, count, topo),
        )
        for i, name in enumerate(node_names(count))
    ]


def synthesize_fleet_topology(nodes: Sequence[NodeSpec]) -> list[NodeSpec]:
    """Racks of ≤ 16 nodes of one GPU model (file order), 8 consecutive racks per spine, one zone."""
    by_model: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        by_model.setdefault(node.gpu_product or "none", []).append(i)
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
        out.append(replace(node, topology=domains))
    return out


# --- node files ----------------------------------------------------------------------------------------------


class TaintModel(ApiModel):
    key: str = Field(min_length=1, max_length=317, description="Taint key.")
    value: str = Field(default="", max_length=63, description="Taint value.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(description="Taint effect.")


class NodeGroupModel(ApiModel):
    """`count` nodes alike, named `<namePrefix>-000`…; topology keys set their domains explicitly."""

    name_prefix: str = Field(min_length=1, max_length=50, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    count: int = Field(default=1, ge=1, le=100_000)
    gpus: int = Field(default=0, ge=0, le=64)
    gpu_model: str | None = Field(default=None, min_length=1, max_length=63, pattern=r"^\S+$")
    cpu: str | int = Field(default="128", description="cpu quantity, e.g. 96 or 500m")
    memory: str | int = Field(default="2Ti", description="memory quantity, e.g. 768Gi")
    max_pods: int = Field(default=DEFAULT_MAX_PODS, ge=1, le=10_000)
    zone: str | None = None
    spine: str | None = None
    rack: str | None = None
    nvlink: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[TaintModel] = Field(default_factory=list)
    unschedulable: bool = False


class NodeFileModel(ApiModel):
    """A YAML node file: `nodes:` is a list of node groups."""

    nodes: list[NodeGroupModel] = Field(min_length=1, max_length=10_000)


def _quantity(name: str, value: str | int, where: str) -> int:
    try:
        return resource_amount(name, value)
    except ValueError as exc:
        raise NodeConfigError(f"{where}.{exc}") from None


def nodes_from_yaml(text: str, source: str = "node file") -> list[NodeSpec]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise NodeConfigError(f"{source}: not valid YAML: {exc}") from None
    try:
        model = parse(NodeFileModel, data, kind=f"node file {source}")
    except InvalidObject as exc:
        raise NodeConfigError(str(exc)) from None
    out: list[NodeSpec] = []
    for g, group in enumerate(model.nodes):
        where = f"{source}: nodes[{g}]"
        cpu = _quantity("cpu", group.cpu, where)
        memory = _quantity("memory", group.memory, where)
        topo = {k: v for k in TOPOLOGY_KEYS if (v := getattr(group, k)) is not None}
        taints = tuple(t.model_dump(by_alias=True, exclude_defaults=False) for t in group.taints)
        for name in node_names(group.count, group.name_prefix):
            out.append(
                NodeSpec(
                    name=name,
                    gpus=group.gpus,
                    gpu_product=(group.gpu_model or DEFAULT_GPU_MODEL) if group.gpus else None,
                    cpu_milli=cpu,
                    memory_bytes=memory,
                    max_pods=group.max_pods,
                    topology=topo,
                    labels=dict(group.labels),
                    taints=taints,
                    unschedulable=group.unschedulable,
                )
            )
    return out


CSV_REQUIRED: Final = ("sn", "cpu_milli", "memory_mib", "gpu", "model")


def nodes_from_csv(text: str, source: str = "node file") -> list[NodeSpec]:
    reader = csv.DictReader(io.StringIO(text))
    columns = [col.strip() for col in reader.fieldnames or []]
    missing = [col for col in CSV_REQUIRED if col not in columns]
    if missing:
        raise NodeConfigError(
            f"{source}: missing column(s) {', '.join(missing)}; a CSV node file needs the header "
            f"{','.join(CSV_REQUIRED)} (optionally zone,spine,rack,nvlink)"
        )
    out: list[NodeSpec] = []
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        where = f"{source}:{line}"
        try:
            cpu_milli = int(row["cpu_milli"])
            memory_mib = int(row["memory_mib"])
            gpus = int(row["gpu"])
        except ValueError:
            raise NodeConfigError(f"{where}: cpu_milli, memory_mib and gpu must be whole numbers, got {row}") from None
        if cpu_milli <= 0 or memory_mib <= 0 or not 0 <= gpus <= 64:
            raise NodeConfigError(f"{where}: need cpu_milli > 0, memory_mib > 0 and 0 ≤ gpu ≤ 64, got {row}")
        name = row["sn"]
        if not name:
            raise NodeConfigError(f"{where}: sn (the node name) is empty")
        model = row["model"]
        product = ALIBABA_GPU_PRODUCTS.get(model, model) if gpus else None
        out.append(
            NodeSpec(
                name=name,
                gpus=gpus,
                gpu_product=product or None,
                cpu_milli=cpu_milli,
                memory_bytes=memory_mib * 1024 * 1024,
                topology={k: row[k] for k in TOPOLOGY_KEYS if row.get(k)},
            )
        )
    if not out:
        raise NodeConfigError(f"{source}: no nodes (the file has a header but no rows)")
    return out


def load_node_file(path: Path) -> list[NodeSpec]:
    """Nodes from a `.csv` or `.yaml`/`.yml` file, with a synthesised topology when the file gives none."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise NodeConfigError(f"--cluster: cannot read {path}: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        nodes = nodes_from_csv(text, str(path))
    elif suffix in (".yaml", ".yml"):
        nodes = nodes_from_yaml(text, str(path))
    else:
        raise NodeConfigError(f"--cluster: {path} is invalid: the file must end in .csv, .yaml or .yml")
    check_unique_names(nodes, str(path))
    if not any(node.topology for node in nodes):
        nodes = synthesize_fleet_topology(nodes)
    return nodes


def check_unique_names(nodes: Iterable[NodeSpec], source: str) -> None:
    seen: set[str] = set()
    for node in nodes:
        if node.name in seen:
            raise NodeConfigError(f"{source}: node name {node.name!r} appears more than once")
        seen.add(node.name)


# --- rendering -----------------------------------------------------------------------------------------------


def _address(index: int) -> str:
    """Node addresses from 10.64.0.0/10, skipping .0 (a network address would look wrong in `kubectl get -o wide`)."""
    n = index + 1
    return f"10.{64 + (n >> 16) % 64}.{(n >> 8) & 255}.{n & 255}"


def pod_cidr(index: int) -> str:
    """A /24 per node from 10.128.0.0/9 (room for 32,768 nodes), as the node IPAM controller would give."""
    return f"10.{128 + (index >> 8) % 128}.{index & 255}.0/24"


def node_object(spec: NodeSpec, index: int, now: str) -> dict[str, Any]:
    """core/v1 Node JSON for `spec`, Ready as of `now` (RFC 3339); `index` makes addresses and pod CIDRs unique."""
    labels: dict[str, str] = {
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": f"sandbox-{spec.gpus}gpu" if spec.gpus else "sandbox-cpu",
        c.HOSTNAME_LABEL: spec.name,
    }
    if spec.gpus:
        labels[c.GPU_PRODUCT_LABEL] = spec.gpu_product or DEFAULT_GPU_MODEL
        labels[c.GPU_COUNT_LABEL] = str(spec.gpus)
        labels["nvidia.com/gpu.present"] = "true"
    for key, domain in spec.topology.items():
        labels[_TOPOLOGY_LABELS[key]] = domain
    labels.update(spec.labels)
    capacity = {
        "cpu": format_amount("cpu", spec.cpu_milli),
        "memory": f"{math.ceil(spec.memory_bytes / 1024)}Ki",
        "pods": str(spec.max_pods),
        "ephemeral-storage": "1Ti",
    }
    if spec.gpus:
        capacity[c.GPU_RESOURCE] = str(spec.gpus)
    spec_obj: dict[str, Any] = {
        "podCIDR": pod_cidr(index),
        "podCIDRs": [pod_cidr(index)],
        "providerID": f"sandbox://{spec.name}",
    }
    if spec.taints:
        spec_obj["taints"] = [dict(t) for t in spec.taints]
    if spec.unschedulable:
        spec_obj["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": spec.name, "labels": labels},
        "spec": spec_obj,
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": ready_conditions(now),
            "addresses": [
                {"type": "InternalIP", "address": _address(index)},
                {"type": "Hostname", "address": spec.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "osImage": "Powertrain sandbox",
                "kernelVersion": "6.8.0-sandbox",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "containerRuntimeVersion": "sandbox://1.0",
                "machineID": f"{index:032x}",
                "systemUUID": f"00000000-0000-0000-0000-{index:012x}",
                "bootID": f"{index:08x}-0000-0000-0000-000000000000",
            },
        },
    }


def ready_conditions(now: str, ready: bool = True) -> list[dict[str, str]]:
    """The conditions a healthy kubelet reports; `ready=False` is what the node controller writes when it goes."""
    pressure = [
        ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ]
    out = [
        {
            "type": kind,
            "status": "False",
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        for kind, reason, message in pressure
    ]
    out.append(
        {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady",
            "message": "kubelet is posting ready status" if ready else "kubelet stopped posting ready status",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
    )
    return out


__all__ = [
    "ALIBABA_GPU_PRODUCTS",
    "NodeConfigError",
    "NodeSpec",
    "Topology",
    "load_node_file",
    "node_object",
    "parse_topology",
    "ready_conditions",
    "uniform_nodes",
]
