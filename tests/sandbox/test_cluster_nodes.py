"""Simulated nodes look like real GPU nodes, from flags, from our node files and from the Alibaba fleet."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from powertrain.api import constants as c
from powertrain.core.predicates import node_allocatable, node_ready_status
from powertrain.data import ALIBABA_NODES as ALIBABA
from powertrain.sandbox.nodes import (
    ALIBABA_GPU_PRODUCTS,
    FLEET_RACK_NODES,
    NodeConfigError,
    load_node_file,
    node_object,
    parse_topology,
    uniform_nodes,
)

NOW = "2026-01-01T00:00:00Z"


def test_uniform_gpu_node_has_capacity_labels_and_ready_condition() -> None:
    spec = uniform_nodes(2, 8, "NVIDIA-H200")[1]
    node = node_object(spec, 1, NOW)
    labels = node["metadata"]["labels"]
    assert node["metadata"]["name"] == "node-001"
    assert labels[c.HOSTNAME_LABEL] == "node-001"
    assert labels[c.GPU_PRODUCT_LABEL] == "NVIDIA-H200"
    assert labels[c.GPU_COUNT_LABEL] == "8"
    assert labels[c.ZONE_LABEL] == "zone-a"
    assert labels[c.SPINE_LABEL] == "spine-0"
    assert labels[c.RACK_LABEL] == "rack-0"
    assert c.NVLINK_DOMAIN_LABEL not in labels  # no nvlink level asked for
    assert node["status"]["capacity"][c.GPU_RESOURCE] == "8"
    allocatable = node_allocatable(node)
    assert allocatable[c.GPU_RESOURCE] == 8
    assert allocatable["cpu"] == 128_000
    assert allocatable["memory"] == 2 * 1024**4
    assert allocatable["pods"] == 110
    assert node_ready_status(node) == "True"
    assert "taints" not in node["spec"]


def test_nodes_get_distinct_addresses_and_pod_cidrs() -> None:
    nodes = [node_object(s, i, NOW) for i, s in enumerate(uniform_nodes(600, 8))]
    cidrs = {n["spec"]["podCIDR"] for n in nodes}
    ips = {n["status"]["addresses"][0]["address"] for n in nodes}
    assert len(cidrs) == len(ips) == 600


def test_topology_fan_out_spreads_nodes_in_contiguous_even_blocks() -> None:
    topo = parse_topology("zone=1,spine=2,rack=4,nvlink=2")
    nodes = uniform_nodes(32, 4, topology=topo)
    racks = Counter(n.topology["rack"] for n in nodes)
    nvlinks = Counter(n.topology["nvlink"] for n in nodes)
    spines = Counter(n.topology["spine"] for n in nodes)
    assert len(racks) == 8
    assert set(racks.values()) == {4}
    assert len(nvlinks) == 16
    assert set(nvlinks.values()) == {2}
    assert spines == {"spine-0": 16, "spine-1": 16}
    # Neighbours share the narrowest domain; a rack never straddles two spines.
    assert nodes[0].topology["nvlink"] == nodes[1].topology["nvlink"] != nodes[2].topology["nvlink"]
    rack_spine = {(n.topology["rack"], n.topology["spine"]) for n in nodes}
    assert len(rack_spine) == 8


def test_topology_with_fewer_nodes_than_domains_leaves_some_empty() -> None:
    nodes = uniform_nodes(3, 8, topology=parse_topology("rack=8"))
    assert [n.topology["rack"] for n in nodes] == ["rack-0", "rack-2", "rack-5"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("racks=4", "use level=count"),
        ("rack=four", "whole number"),
        ("rack=0", "within 1..10000"),
        ("rack=1,rack=2", "given twice"),
        ("rack", "use level=count"),
    ],
)
def test_bad_topology_is_refused_with_a_clear_message(text: str, fragment: str) -> None:
    with pytest.raises(NodeConfigError, match=fragment):
        parse_topology(text)


def test_bad_flags_are_refused() -> None:
    with pytest.raises(NodeConfigError, match="--gpus-per-node"):
        uniform_nodes(2, 65)
    with pytest.raises(NodeConfigError, match="--gpu-model"):
        uniform_nodes(2, 8, "NVIDIA H200")
    with pytest.raises(NodeConfigError, match="--nodes"):
        uniform_nodes(-1, 8)


def test_alibaba_fleet_maps_models_and_synthesises_homogeneous_racks() -> None:
    nodes = load_node_file(ALIBABA)
    assert len(nodes) == 1213
    products = Counter(n.gpu_product for n in nodes)
    assert products[ALIBABA_GPU_PRODUCTS["T4"]] == 404
    assert products["Alibaba-G2"] == 549
    assert products["Tesla-V100-SXM2-32GB"] == 30
    rack_models: dict[str, set[str | None]] = {}
    for n in nodes:
        rack_models.setdefault(n.topology["rack"], set()).add(n.gpu_product)
    assert all(len(models) == 1 for models in rack_models.values())
    assert max(Counter(n.topology["rack"] for n in nodes).values()) == FLEET_RACK_NODES
    first = node_object(nodes[0], 0, NOW)
    assert first["metadata"]["name"] == "openb-node-0000"
    assert node_allocatable(first) == {
        "cpu": 64_000,
        "memory": 262144 * 1024 * 1024,
        "pods": 110,
        "ephemeral-storage": 1024**4,
        c.GPU_RESOURCE: 2,
    }


def test_yaml_node_file_with_groups_taints_and_explicit_topology(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        """
nodes:
  - namePrefix: h200
    count: 2
    gpus: 8
    gpuModel: NVIDIA-H200
    cpu: 96
    memory: 1536Gi
    rack: r1
    nvlink: nvl-a
  - namePrefix: infer
    gpus: 1
    gpuModel: NVIDIA-L4
    cpu: 500m
    rack: r2
    taints: [{key: dedicated, value: inference, effect: NoSchedule}]
    unschedulable: true
    labels: {team: serving}
"""
    )
    nodes = load_node_file(path)
    assert [n.name for n in nodes] == ["h200-000", "h200-001", "infer-000"]
    h200 = node_object(nodes[0], 0, NOW)
    assert node_allocatable(h200)["memory"] == 1536 * 1024**3
    assert h200["metadata"]["labels"][c.NVLINK_DOMAIN_LABEL] == "nvl-a"
    assert h200["metadata"]["labels"][c.RACK_LABEL] == "r1"
    assert c.ZONE_LABEL not in h200["metadata"]["labels"]  # explicit topology: only what the file says
    infer = node_object(nodes[2], 2, NOW)
    assert infer["spec"]["taints"] == [{"key": "dedicated", "value": "inference", "effect": "NoSchedule"}]
    assert infer["spec"]["unschedulable"] is True
    assert infer["metadata"]["labels"]["team"] == "serving"
    assert node_allocatable(infer)["cpu"] == 500


def test_csv_node_file_without_topology_gets_one(tmp_path: Path) -> None:
    path = tmp_path / "fleet.csv"
    path.write_text("sn,cpu_milli,memory_mib,gpu,model\na,8000,32768,1,T4\nb,8000,32768,0,\n")
    a, b = load_node_file(path)
    assert a.gpu_product == "Tesla-T4"
    assert a.topology["rack"] == "rack-0"
    assert b.gpu_product is None
    assert c.GPU_RESOURCE not in node_object(b, 1, NOW)["status"]["capacity"]


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("x.yaml", "nodes: [{namePrefix: a, gpus: 100}]", r"nodes\[0\].gpus: 100 is invalid"),
        ("x.yaml", "nodes: [{namePrefix: a, gpu: 1}]", "did you mean 'gpus'"),
        ("x.yaml", "nodes: [{namePrefix: a, memory: lots}]", "memory: quantity 'lots' is invalid"),
        ("x.yaml", "nodes: [", "not valid YAML"),
        ("x.csv", "name,gpu\n", "missing column"),
        ("x.csv", "sn,cpu_milli,memory_mib,gpu,model\na,8000,x,1,T4\n", "whole numbers"),
        ("x.csv", "sn,cpu_milli,memory_mib,gpu,model\na,8,8,1,T4\na,8,8,1,T4\n", "more than once"),
        ("x.json", "{}", "must end in .csv, .yaml or .yml"),
    ],
)
def test_bad_node_files_are_refused_with_the_field(tmp_path: Path, name: str, text: str, fragment: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(NodeConfigError, match=fragment):
        load_node_file(path)


def test_missing_node_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NodeConfigError, match="cannot read"):
        load_node_file(tmp_path / "nope.yaml")
