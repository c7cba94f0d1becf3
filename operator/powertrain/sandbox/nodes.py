"""Node objects that look like real GPU nodes, from command-line flags or from a node file.

Three sources, one result (a list of `NodeSpec`, rendered by `node_object` into core/v1 Node JSON):

* flags: `--nodes N --gpus-per-node G --gpu-model M --topology zone=1,spine=2,rack=4,nvlink=2`; the topology is a
  fan-out counted per parent domain, nodes fill its leaves in contiguous even blocks (see `powertrain.fleet`).
* a CSV file with the columns of the Alibaba PAI fleet (`sn,cpu_milli,memory_mib,gpu,model`), optionally with
  `zone,spine,rack,nvlink` columns, read by `powertrain.fleet.read_fleet_csv` (CPU-only rows included).
* a YAML file of node groups (see `NodeFileModel`).

When a file gives no topology at all, one is synthesised (`synthesize_fleet_topology`): racks never mix GPU
models and hold up to 16 nodes of one model in file order; 8 consecutive racks share a spine; one zone.
The simulator builds its clusters from the same `powertrain.fleet` module, so both see the same layouts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import Field

from powertrain import fleet
from powertrain.api import constants as c
from powertrain.api.common import ApiModel
from powertrain.api.validation import InvalidObject, parse
from powertrain.core.quantity import format_amount, resource_amount
from powertrain.fleet import (
    ALIBABA_GPU_PRODUCTS,
    DEFAULT_CPU_MILLI,
    DEFAULT_GPU_MODEL,
    DEFAULT_MEMORY_MIB,
    FLEET_RACK_NODES,
    TOPOLOGY_KEYS,
    TOPOLOGY_LABELS,
    FleetError,
    FleetNode,
    Topology,
    node_names,
    read_fleet_csv,
    synthesized_domains,
    uniform_fleet,
)

DEFAULT_MAX_PODS: Final = 110
KUBELET_VERSION: Final = "v1.32.0-sandbox"


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


def parse_topology(text: str) -> Topology:
    """`zone=1,spine=2,rack=4,nvlink=2` → Topology; every level optional, counts are whole numbers."""
    try:
        return fleet.parse_topology(text)
    except FleetError as exc:
        raise NodeConfigError(f"--topology: {exc}") from None


def _node_spec(node: FleetNode) -> NodeSpec:
    return NodeSpec(
        name=node.name,
        gpus=node.gpus,
        gpu_product=node.gpu_model,
        cpu_milli=node.cpu_milli,
        memory_bytes=node.memory_mib * 1024 * 1024,
        topology=node.domains,
    )


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
    return [
        replace(_node_spec(node), cpu_milli=cpu_milli, memory_bytes=memory_bytes)
        for node in uniform_fleet(count, gpus_per_node, gpu_model, topology or Topology())
    ]


def synthesize_fleet_topology(nodes: Sequence[NodeSpec]) -> list[NodeSpec]:
    """Racks of ≤ 16 nodes of one GPU model (file order), 8 consecutive racks per spine, one zone."""
    domains = synthesized_domains([node.gpu_product or "none" for node in nodes])
    return [replace(node, topology=d) for node, d in zip(nodes, domains, strict=True)]


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


def nodes_from_csv(text: str, source: str = "node file") -> list[NodeSpec]:
    try:
        nodes = read_fleet_csv(text, source)
    except FleetError as exc:
        raise NodeConfigError(str(exc)) from None
    if not nodes:
        raise NodeConfigError(f"{source}: no nodes (the file has a header but no rows)")
    return [_node_spec(node) for node in nodes]


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
        labels[TOPOLOGY_LABELS[key]] = domain
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
    "DEFAULT_GPU_MODEL",
    "FLEET_RACK_NODES",
    "NodeConfigError",
    "NodeSpec",
    "Topology",
    "load_node_file",
    "node_object",
    "parse_topology",
    "ready_conditions",
    "uniform_nodes",
]
