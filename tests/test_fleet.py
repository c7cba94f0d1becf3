"""One fleet builder: the sandbox and the simulator lay out the same nodes the same way."""

from __future__ import annotations

from collections import Counter

import pytest

from powertrain.data import ALIBABA_NODES as ALIBABA
from powertrain.fleet import (
    FLEET_RACK_NODES,
    FLEET_SPINE_RACKS,
    FleetError,
    parse_topology,
    read_fleet_csv,
    synthesized_domains,
    uniform_fleet,
)
from powertrain.sandbox.nodes import load_node_file, uniform_nodes
from powertrain.sandbox.nodes import parse_topology as sandbox_topology
from powertrain.sim.cluster import load_fleet, parse_cluster


@pytest.mark.parametrize("topology", ["", "rack=8", "zone=2,spine=3,rack=4,nvlink=2", "zone=1,spine=2,rack=4"])
@pytest.mark.parametrize("count", [1, 3, 50, 97])
def test_sandbox_and_simulator_place_a_uniform_cluster_identically(topology: str, count: int) -> None:
    spec = f"nodes={count},gpus-per-node=8" + (f",topology={topology}" if topology else "")
    sim = [(n.name, n.gpus, n.model, n.domains) for n in parse_cluster(spec)]
    sandbox = [
        (n.name, n.gpus, n.gpu_product, dict(n.topology))
        for n in uniform_nodes(count, 8, topology=sandbox_topology(topology))
    ]
    assert sim == sandbox


def test_many_zones_are_named_the_way_clouds_spell_them() -> None:
    nodes = uniform_fleet(28, 8, "NVIDIA-H200", parse_topology("zone=28"))
    zones = [n.domains["zone"] for n in nodes]
    assert zones[:2] == ["zone-a", "zone-b"]
    assert zones[25:] == ["zone-z", "zone-aa", "zone-ab"]


def test_nvlink_domains_split_racks_and_only_exist_when_asked_for() -> None:
    with_nvl = uniform_fleet(8, 4, "NVIDIA-GB200", parse_topology("rack=2,nvlink=2"))
    assert [n.domains["nvlink"] for n in with_nvl] == ["nvl-0"] * 2 + ["nvl-1"] * 2 + ["nvl-2"] * 2 + ["nvl-3"] * 2
    assert [n.domains["rack"] for n in with_nvl] == ["rack-0"] * 4 + ["rack-1"] * 4
    assert all("nvlink" not in n.domains for n in uniform_fleet(8, 4, "NVIDIA-H200", parse_topology("rack=2")))


def test_cpu_only_nodes_carry_no_gpu_model() -> None:
    (node,) = uniform_fleet(1, 0, "NVIDIA-H200", parse_topology(""))
    assert node.gpu_model is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("racks=4", "'racks=4' is invalid: use level=count with levels zone, spine, rack, nvlink"),
        ("rack=four", "rack='four' is invalid: must be a whole number"),
        ("rack=0", "rack=0 is invalid: must lie within 1..10000"),
        ("nvlink=-1", "nvlink=-1 is invalid: must lie within 0..10000"),
        ("rack=1,rack=2", "level 'rack' is given twice"),
    ],
)
def test_bad_topology_names_the_level_and_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(FleetError) as info:
        parse_topology(text)
    assert message in str(info.value)


def test_fleet_csv_maps_alibaba_models_and_keeps_explicit_domains() -> None:
    text = "sn,cpu_milli,memory_mib,gpu,model,rack\na,64000,262144,2,G2,r1\nb,8000,32768,0,,r2\nc,8000,32768,1,L4,r2\n"
    a, b, c = read_fleet_csv(text, "fleet.csv")
    assert (a.name, a.gpus, a.gpu_model, a.cpu_milli, a.memory_mib) == ("a", 2, "Alibaba-G2", 64000, 262144)
    assert a.domains == {"rack": "r1"}
    assert b.gpu_model is None
    assert c.gpu_model == "L4"  # not an Alibaba code: used as the label value as-is


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,gpu\n", "fleet.csv: missing column(s) sn, cpu_milli, memory_mib, model"),
        ("sn,cpu_milli,memory_mib,gpu,model\na,8,x,1,T4\n", "fleet.csv:2: cpu_milli, memory_mib and gpu must be whole"),
        ("sn,cpu_milli,memory_mib,gpu,model\na,8,8,65,T4\n", "fleet.csv:2: need cpu_milli > 0, memory_mib > 0"),
        ("sn,cpu_milli,memory_mib,gpu,model\n,8,8,1,T4\n", "fleet.csv:2: sn (the node name) is empty"),
        ("sn,cpu_milli,memory_mib,gpu,model\na,8,8,1,T4\na,8,8,1,T4\n", "fleet.csv:3: node name 'a' appears more"),
    ],
)
def test_bad_fleet_rows_name_the_line_and_field(text: str, message: str) -> None:
    with pytest.raises(FleetError) as info:
        read_fleet_csv(text, "fleet.csv")
    assert message in str(info.value)


def test_synthesized_racks_never_mix_models_and_group_into_spines() -> None:
    models = ["T4"] * 20 + ["A10"] * 3 + ["T4"] * 5 + ["G2"] * (FLEET_RACK_NODES * FLEET_SPINE_RACKS)
    domains = synthesized_domains(models)
    models_of_rack: dict[str, set[str]] = {}
    for model, d in zip(models, domains, strict=True):
        models_of_rack.setdefault(d["rack"], set()).add(model)
    assert all(len(m) == 1 for m in models_of_rack.values())
    # The 25 T4s (wherever they sit in the file) fill rack-0 then rack-1; the A10s get rack-2.
    assert Counter(d["rack"] for d in domains[:20] + domains[23:28]) == {"rack-0": 16, "rack-1": 9}
    assert {d["rack"] for d in domains[20:23]} == {"rack-2"}
    assert {d["spine"] for d in domains[:28]} == {"spine-0"}
    assert {d["spine"] for d in domains[-FLEET_RACK_NODES:]} == {"spine-1"}  # rack-8 onwards: the second spine
    assert {d["zone"] for d in domains} == {"zone-a"}


def test_sandbox_and_simulator_read_the_alibaba_fleet_into_the_same_racks() -> None:
    sim = {n.name: (n.gpus, n.model, n.domains) for n in load_fleet(ALIBABA)}
    sandbox = {n.name: (n.gpus, n.gpu_product, dict(n.topology)) for n in load_node_file(ALIBABA) if n.gpus}
    assert len(sim) == 1213
    assert sim == sandbox
