"""Reading traces, cluster specs and fleets: real files load; bad input gets a message naming what is wrong."""

from __future__ import annotations

from collections import Counter

import pytest
from sim_fixtures import ALIBABA_NODES, SENSITIVE_TRACE, job

from powertrain.api import constants as c
from powertrain.sim.cluster import ClusterError, load_fleet, parse_cluster
from powertrain.sim.runtime import run_seconds
from powertrain.sim.trace import TraceError, load_trace, parse_trace

HEADER = "job_id,submit_time_s,gpus,model,duration_packed_s,duration_spread_s\n"


def test_real_trace_loads_in_submission_order() -> None:
    jobs = load_trace(SENSITIVE_TRACE)
    assert len(jobs) == 984
    assert [j.submit_s for j in jobs] == sorted(j.submit_s for j in jobs)
    assert {j.gpus for j in jobs} == {1, 2, 4, 8}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\n1,2\n", "missing column(s) job_id"),
        (HEADER, "no jobs"),
        (HEADER + "j,0,three,LM,1,2\n", "trace:2: gpus='three' is not a number"),
        (HEADER + "j,0,0,LM,1,2\n", "gpus=0 is invalid: must lie within 1..4096"),
        (HEADER + "j,0,1.5,LM,1,2\n", "gpus='1.5' is invalid: must be a whole number"),
        (HEADER + "j,-5,1,LM,1,2\n", "submit_time_s='-5' is invalid"),
        (HEADER + "j,0,1,LM,0,2\n", "durations must be > 0"),
        (HEADER + "j,0,1,LM,nan,2\n", "duration_packed_s='nan' is invalid"),
    ],
)
def test_bad_trace_is_refused_with_the_field(text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        parse_trace(text)


def test_cluster_spec_builds_racks_in_spines() -> None:
    nodes = parse_cluster("nodes=32,gpus-per-node=8,topology=zone=1,spine=2,rack=4")
    assert len(nodes) == 32
    assert all(n.gpus == 8 for n in nodes)
    racks = Counter(n.domains["rack"] for n in nodes)
    assert len(racks) == 8
    assert set(racks.values()) == {4}
    spine_of = {n.domains["rack"]: n.domains["spine"] for n in nodes}
    assert Counter(spine_of.values()) == {"spine-0": 4, "spine-1": 4}
    labels = nodes[0].to_object()["metadata"]["labels"]
    assert labels[c.RACK_LABEL] == "rack-0"
    assert labels[c.SPINE_LABEL] == "spine-0"
    assert labels[c.GPU_PRODUCT_LABEL] == "NVIDIA-H200"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nodes=x", "nodes='x' is invalid: must be a whole number"),
        ("nodes=0", "nodes=0 is invalid: must lie within 1..100000"),
        ("gpus=8", "'gpus=8' is invalid: use key=value with keys nodes, gpus-per-node"),
        ("nodes=4,nodes=5", "'nodes' is given twice"),
        ("topology=rack=0", "rack=0 is invalid: must lie within 1..10000"),
        ("model=has space", "model='has space' is invalid"),
    ],
)
def test_bad_cluster_spec_is_refused(spec: str, message: str) -> None:
    with pytest.raises(ClusterError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        parse_cluster(spec)


def test_alibaba_fleet_gets_racks_of_one_gpu_model() -> None:
    nodes = load_fleet(ALIBABA_NODES)
    assert len(nodes) == 1213
    models_per_rack: dict[str, set[str]] = {}
    for n in nodes:
        models_per_rack.setdefault(n.domains["rack"], set()).add(n.model)
    assert all(len(models) == 1 for models in models_per_rack.values())
    assert max(Counter(n.domains["rack"] for n in nodes).values()) == 16
    assert "Tesla-V100-SXM2-32GB" in {n.model for n in nodes}


def test_run_time_interpolates_between_the_measured_points() -> None:
    lm = job("lm", 0, 8, 100.0, 900.0)
    assert [run_seconds(lm, k) for k in (1, 2, 4, 8)] == [100.0, 300.0, 500.0, 900.0]
    single = job("one", 0, 1, 50.0)
    assert run_seconds(single, 1) == 50.0
