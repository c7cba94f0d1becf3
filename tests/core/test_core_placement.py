"""Gang placement: where a gang lands, and why it does not when it cannot."""

from __future__ import annotations

from collections import Counter
from typing import Any

from core_builders import H100, H200, cluster, foreign_pod, job, node, policy, running, snap, telemetry, worker_pods

from powertrain.api import constants as c
from powertrain.core.placement import GangRequest, Placement, PlacementEngine, Unplaceable
from powertrain.core.snapshot import ClusterSnapshot


def place(snapshot: ClusterSnapshot, obj: dict[str, Any]) -> Placement | Unplaceable:
    snapshot.upsert_job(obj)
    info = snapshot.jobs[(obj["metadata"]["namespace"], obj["metadata"]["name"])]
    return PlacementEngine(snapshot).place(GangRequest.from_job(info))


def rack_of(name: str) -> str:
    return name.rsplit("-", 1)[0]


def test_required_rack_keeps_the_whole_gang_in_one_rack() -> None:
    busy = running(job("busy", replicas=2), ["s0-r0-n0", "s1-r0-n0"])
    s = snap(cluster(), [busy], worker_pods(busy))
    result = place(s, job("llm", replicas=4, gpus=8, level="rack", mode="Required"))
    assert isinstance(result, Placement)
    assert result.level == "rack"
    assert {rack_of(n) for n in result.nodes} == {result.domain}
    assert result.domain in ("s0-r1", "s1-r1")  # the only racks with 4 free nodes
    assert len(set(result.nodes)) == 4


def test_required_rack_impossible_says_how_big_the_largest_rack_is() -> None:
    busy = running(job("busy", replicas=1), ["s0-r0-n0"])
    s = snap(cluster(spines=1, racks=1), [busy], worker_pods(busy))
    result = place(s, job("llm", replicas=4, gpus=8, mode="Required", models=[H200]))
    assert isinstance(result, Unplaceable)
    assert "the largest rack (z1/s0/s0-r0) has 24 free NVIDIA-H200 GPUs" in result.message
    assert "the job needs 32 (4×8) inside one rack" in result.message


def test_preferred_widens_level_by_level() -> None:
    s = snap(cluster(spines=2, racks=2, nodes=4))
    result = place(s, job("wide", replicas=6, gpus=8, level="rack", mode="Preferred"))
    assert isinstance(result, Placement)
    assert result.level == "spine"
    spines = {n.split("-")[0] for n in result.nodes}
    assert len(spines) == 1
    huge = place(snap(cluster(spines=2, racks=2, nodes=4)), job("huge", replicas=14, gpus=8))
    assert isinstance(huge, Placement)
    assert huge.level == "zone"
    # Ranks stay together by rack: the fullest racks first, rank order following the racks.
    racks = [rack_of(n) for n in huge.nodes]
    assert racks == sorted(racks, key=racks.index)
    assert len(set(racks)) == 4
    two_zones = [*cluster(spines=1, racks=1, nodes=2), node("far", zone="z2", rack="x", spine="y")]
    everywhere = place(snap(two_zones), job("all", replicas=3, gpus=8))
    assert isinstance(everywhere, Placement)
    assert everywhere.level == "cluster"
    assert everywhere.domain == "cluster"


def test_preferred_uses_the_narrowest_domain_even_below_the_named_level() -> None:
    result = place(snap(cluster()), job("small", replicas=2, gpus=4, level="rack"))
    assert isinstance(result, Placement)
    assert result.level == "node"
    assert len(set(result.nodes)) == 1


def test_best_fit_prefers_the_tightest_rack() -> None:
    # Rack s0-r0 has 2 free nodes, s0-r1 has 4: a 2-node gang takes s0-r0 and keeps s0-r1 whole.
    busy = running(job("busy", replicas=2), ["s0-r0-n0", "s0-r0-n1"])
    s = snap(cluster(spines=1), [busy], worker_pods(busy))
    result = place(s, job("two", replicas=2, gpus=8, mode="Required"))
    assert isinstance(result, Placement)
    assert result.domain == "s0-r0"


def test_replicas_pack_onto_the_fewest_nodes() -> None:
    nodes = [node("a", gpus=8, rack="r"), node("b", gpus=8, rack="r"), node("c", gpus=4, rack="r")]
    result = place(snap(nodes), job("pack", replicas=5, gpus=2, level="rack", mode="Required"))
    assert isinstance(result, Placement)
    counts = Counter(result.nodes)
    assert len(counts) == 2
    assert sorted(counts.values()) == [1, 4]
    assert list(result.nodes) == sorted(result.nodes, key=lambda n: -counts[n])  # consecutive ranks share a node


def test_gpu_model_list_is_respected_and_models_never_mix() -> None:
    nodes = [node("h100-a", model=H100, rack="r1"), node("h200-a", model=H200, rack="r1"), node("h200-b", rack="r2")]
    result = place(snap(nodes), job("m", replicas=2, gpus=8, models=[H200]))
    assert isinstance(result, Placement)
    assert set(result.nodes) == {"h200-a", "h200-b"}
    mixed = place(snap(nodes[:2]), job("mixed", replicas=2, gpus=8))
    assert isinstance(mixed, Unplaceable)  # one H100 + one H200 would fit by count, but models never mix
    none = place(snap(nodes), job("x", replicas=1, gpus=8, models=["NVIDIA-B200"]))
    assert isinstance(none, Unplaceable)
    assert "3 node(s) didn't have an acceptable GPU model (NVIDIA-B200)" in none.message


def test_kube_scheduler_filters_apply_to_every_node() -> None:
    gpu_taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    nodes = [
        node("cordoned", unschedulable=True),
        node("notready", ready="False"),
        node("tainted", taints=[gpu_taint]),
        node("other-pool", labels={"pool": "b"}),
        node("good", labels={"pool": "a"}),
    ]
    s = snap(nodes)
    result = place(s, job("sel", replicas=1, gpus=8, pod_spec={"nodeSelector": {"pool": "a"}}))
    assert isinstance(result, Placement)
    assert result.nodes == ("good",)
    nothing = place(s, job("sel2", replicas=1, gpus=8, pod_spec={"nodeSelector": {"pool": "c"}}))
    assert isinstance(nothing, Unplaceable)
    assert nothing.message.startswith("0/5 nodes are available: ")
    assert "1 node(s) were unschedulable" in nothing.message
    assert "1 node(s) had untolerated taint {nvidia.com/gpu: present}" in nothing.message
    tolerant = {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}], "nodeSelector": {"pool": "a"}}
    s.upsert_node(node("good", labels={"pool": "a"}, taints=[gpu_taint]))
    assert isinstance(place(s, job("tol", replicas=1, gpus=8, pod_spec=tolerant)), Placement)


def test_required_node_affinity_is_respected() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": c.RACK_LABEL, "operator": "NotIn", "values": ["s0-r0"]}]}
                ]
            }
        }
    }
    result = place(snap(cluster(spines=1)), job("aff", replicas=4, gpus=8, pod_spec={"affinity": affinity}))
    assert isinstance(result, Placement)
    assert result.domain == "s0-r1"


def test_unhealthy_gpus_are_not_free() -> None:
    s = snap([node("a", rack="r"), node("b", rack="r")], telemetry=[telemetry("a", unhealthy=[3])])
    result = place(s, job("t", replicas=2, gpus=8))
    assert isinstance(result, Unplaceable)
    assert "has 8 free NVIDIA-H200 GPUs" in result.message or "has 8 free" in result.message
    # A sick GPU that a pod holds is not subtracted twice.
    s2 = snap(
        [node("a")], pods=[foreign_pod("p", "a", gpus=1)], telemetry=[telemetry("a", [0], pods={0: ("other", "p")})]
    )
    assert s2.nodes["a"].free()[c.GPU_RESOURCE] == 7


def test_a_sick_gpu_freed_by_a_departed_pod_stays_excluded_until_a_report_says_healthy() -> None:
    # The gang was moved off GPU 3 because it is sick; the node's last report (written before the move) still
    # names the departed pod on it. The GPU must not be handed to the next gang on the strength of that report.
    holder = foreign_pod("p", "a", gpus=8)
    sick = telemetry("a", [3], pods={i: ("other", "p") for i in range(8)})
    s = snap([node("a")], pods=[holder], telemetry=[sick])
    assert s.nodes["a"].free()[c.GPU_RESOURCE] == 0
    s.remove_pod("other", "p")
    assert s.nodes["a"].free()[c.GPU_RESOURCE] == 7
    assert isinstance(place(s, job("next", replicas=1, gpus=8)), Unplaceable)
    # A pod of the same name that is not the one the report names (another uid) does not hold the sick GPU.
    sick_uid = telemetry("a", [3], pods={3: ("other", "p")})
    sick_uid["status"]["gpus"][3]["pod"]["uid"] = "old-uid"
    s.upsert_telemetry(sick_uid)
    again = foreign_pod("p", "a", gpus=1)
    again["metadata"]["uid"] = "new-uid"
    s.upsert_pod(again)
    assert s.nodes["a"].free()[c.GPU_RESOURCE] == 6
    # Only a report that says healthy gives it back.
    s.upsert_telemetry(telemetry("a", []))
    assert s.nodes["a"].free()[c.GPU_RESOURCE] == 7


def test_other_schedulers_pods_hold_resources() -> None:
    s = snap([node("a"), node("b")], pods=[foreign_pod("x", "a", gpus=2)])
    result = place(s, job("j", replicas=1, gpus=8))
    assert isinstance(result, Placement)
    assert result.nodes == ("b",)


def test_cpu_and_memory_requests_limit_replicas_per_node() -> None:
    resources = {"requests": {"cpu": "40", "memory": "100Gi"}}
    pod_spec = {"containers": [{"name": "trainer", "image": "img", "resources": resources}]}
    s = snap([node("a", cpu="96", rack="r"), node("b", cpu="96", rack="r")])
    result = place(s, job("cpu", replicas=4, gpus=1, pod_spec=pod_spec))
    assert isinstance(result, Placement)
    assert Counter(result.nodes) == {"a": 2, "b": 2}


def test_required_level_the_policy_does_not_define() -> None:
    levels = [{"name": "node", "nodeLabel": c.HOSTNAME_LABEL}, {"name": "rack", "nodeLabel": c.RACK_LABEL}]
    s = snap(cluster(), policy=policy(topology=levels))
    result = place(s, job("nv", replicas=2, gpus=8, level="nvlink", mode="Required"))
    assert isinstance(result, Unplaceable)
    assert "'nvlink' is Required but the ClusterTrainingPolicy does not define that level (levels: node, rack)" in (
        result.message
    )


def test_alternate_labels_define_domains() -> None:
    nodes = [node(f"n{i}", labels={c.NVLINK_CLIQUE_LABEL: f"clique-{i // 2}"}) for i in range(4)]
    result = place(snap(nodes), job("nv", replicas=2, gpus=8, level="nvlink", mode="Required"))
    assert isinstance(result, Placement)
    assert result.level == "nvlink"
    assert result.domain == "clique-0"


def test_a_rack_name_reused_under_two_spines_is_two_racks() -> None:
    nodes = [node("a", rack="r1", spine="s1"), node("b", rack="r1", spine="s2")]
    result = place(snap(nodes), job("x", replicas=2, gpus=8, mode="Required"))
    assert isinstance(result, Unplaceable)  # same label value, but the racks hang off different spines


def test_committed_gangs_are_accounted_within_a_pass() -> None:
    s = snap(cluster(spines=1, racks=1))
    engine = PlacementEngine(s)
    for name in ("a", "b"):
        s.upsert_job(job(name, replicas=2, gpus=8, mode="Required"))
    first = engine.place(GangRequest.from_job(s.jobs[("default", "a")]))
    second = engine.place(GangRequest.from_job(s.jobs[("default", "b")]))
    assert isinstance(first, Placement)
    assert isinstance(second, Placement)
    assert not set(first.nodes) & set(second.nodes)
    s.upsert_job(job("c", replicas=1, gpus=1))
    assert isinstance(engine.place(GangRequest.from_job(s.jobs[("default", "c")])), Unplaceable)


def test_required_never_uses_a_node_without_the_level_label() -> None:
    nodes = [node("unlabelled", zone=None), node("racked", rack="r1", zone=None)]
    s = snap(nodes, pods=[foreign_pod("x", "racked", gpus=4)])
    result = place(s, job("one", replicas=1, gpus=8, mode="Required"))
    # The unlabelled node is the only one with 8 free GPUs, but it belongs to no rack.
    assert isinstance(result, Unplaceable)
    preferred = place(s, job("pref", replicas=1, gpus=8))
    assert isinstance(preferred, Placement)
    assert preferred.nodes == ("unlabelled",)
    small = place(s, job("small", replicas=1, gpus=4, mode="Required"))
    assert isinstance(small, Placement)
    assert small.nodes == ("racked",)
