"""The snapshot's accounting: what holds each node's resources, kept right one event at a time."""

from __future__ import annotations

from core_builders import cluster, foreign_pod, job, node, policy, running, snap, worker_pods

from powertrain.api import constants as c
from powertrain.core.snapshot import ClusterSnapshot
from powertrain.core.topology import levels_from_policy, node_domains

GPU = c.GPU_RESOURCE


def test_foreign_and_finished_pods() -> None:
    s = snap([node("a")], pods=[foreign_pod("x", "a", gpus=3)])
    assert s.nodes["a"].free()[GPU] == 5
    done = foreign_pod("x", "a", gpus=3)
    done["status"]["phase"] = "Succeeded"
    s.upsert_pod(done)  # a finished pod holds nothing
    assert s.nodes["a"].free()[GPU] == 8
    s.remove_pod("other", "x")
    assert s.nodes["a"].free()[GPU] == 8


def test_pods_may_arrive_before_their_node() -> None:
    s = ClusterSnapshot.empty()
    s.upsert_pod(foreign_pod("x", "late", gpus=2))
    assert not s.nodes["late"].ready  # a placeholder is never schedulable
    s.upsert_node(node("late"))
    assert s.nodes["late"].ready
    assert s.nodes["late"].free()[GPU] == 6


def test_a_placed_gang_reserves_its_nodes_until_its_pods_are_bound() -> None:
    obj = running(job("g", replicas=2), ["a", "b"])
    s = snap([node("a"), node("b")], [obj])
    assert s.nodes["a"].free()[GPU] == 0
    assert s.nodes["b"].free()[GPU] == 0
    pods = worker_pods(obj)
    s.upsert_pod(pods[0])  # bound pod replaces the reservation: counted once
    assert s.nodes["a"].free()[GPU] == 0
    assert s.reservations[("default", "g")] == {1: "b"}
    s.remove_pod("default", "g-worker-0")  # gone again while the job still holds the placement
    assert s.nodes["a"].free()[GPU] == 0
    s.remove_job("default", "g")
    assert s.nodes["b"].free()[GPU] == 8


def test_terminating_pods_are_releasing() -> None:
    obj = running(job("g"), ["a"])
    pod = worker_pods(obj)[0]
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    s = snap([node("a")], pods=[pod])
    assert s.nodes["a"].free()[GPU] == 0
    assert s.nodes["a"].releasing[GPU] == 8


def test_unchanged_resource_version_is_not_reparsed() -> None:
    s = snap([node("a")], [job("g", rv="5")])
    first = s.jobs[("default", "g")]
    s.upsert_job(job("g", rv="5"))
    assert s.jobs[("default", "g")] is first
    s.upsert_job(job("g", rv="6", replicas=2))
    assert s.jobs[("default", "g")].spec_replicas == 2


def test_bad_policy_is_refused_and_the_old_one_kept() -> None:
    s = snap(cluster())
    problem = s.set_policy(policy(queues=[{"name": "Bad Name"}]))
    assert problem is not None
    assert "spec.queues[0].name" in problem
    assert [q.name for q in s.policy.queues] == ["default"]


def test_policy_change_rederives_topology() -> None:
    s = snap([node("a", labels={"my/rack": "x"}), node("b", labels={"my/rack": "x"})])
    assert s.topology.level_index("rack") is not None
    assert not s.topology.members[s.topology.level_index("rack") or 0]  # no default rack labels on these nodes
    s.set_policy(policy(topology=[{"name": "rack", "nodeLabel": "my/rack"}]))
    rack = s.topology.level_index("rack")
    assert rack is not None
    assert s.topology.nodes_in(rack, ("x",)) == {"a", "b"}


def test_domain_keys_are_paths_from_the_widest_level() -> None:
    levels = levels_from_policy(None)
    labels = {c.RACK_LABEL: "r1", c.ZONE_LABEL: "z"}
    keys = node_domains(levels, "n1", labels)
    assert [lv.name for lv in levels] == ["node", "nvlink", "rack", "spine", "zone"]
    assert keys == (("z", "", "r1", "", "n1"), None, ("z", "", "r1"), None, ("z",))


def test_unreadable_objects_do_not_break_the_snapshot() -> None:
    s = ClusterSnapshot.empty()
    s.upsert_node({"metadata": {"name": "weird"}, "status": {"allocatable": {"cpu": "lots"}}})
    assert s.nodes["weird"].allocatable == {}
    s.upsert_telemetry({"metadata": {"name": "weird"}, "status": {"gpus": "nope"}})
    assert "weird" not in s.telemetry
    bad_pod = foreign_pod("p", "weird")
    bad_pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "?"}}
    s.upsert_pod(bad_pod)
    assert ("other", "p") in s.pods


def _walked_queue_usage(s: ClusterSnapshot) -> dict[str, int]:
    out: dict[str, int] = {}
    for info in s.jobs.values():
        if info.placed:
            out[info.queue] = out.get(info.queue, 0) + info.held_gpus
    return out


def test_queue_usage_and_lowest_priority_follow_every_job_change() -> None:
    s = snap([node("a"), node("b"), node("c")])
    assert s.queue_usage() == {}
    assert s.lowest_placed_priority() is None
    s.upsert_job(running(job("g", replicas=2, queue="x", priority=3), ["a", "b"]))
    s.upsert_job(running(job("h", gpus=4, queue="y", priority=1), ["c"]))
    s.upsert_job(job("w", queue="x", priority=0))  # waiting: holds nothing
    assert s.queue_usage() == _walked_queue_usage(s) == {"x": 16, "y": 4}
    assert s.lowest_placed_priority() == 1
    s.upsert_job(job("h", gpus=4, queue="y", priority=1))  # preempted: queued again
    assert s.queue_usage() == {"x": 16}
    assert s.lowest_placed_priority() == 3
    s.upsert_job(running(job("g", replicas=2, queue="z", priority=5), ["a", "b"]))  # queue and priority changed
    assert s.queue_usage() == _walked_queue_usage(s) == {"z": 16}
    assert s.lowest_placed_priority() == 5
    s.upsert_job({**job("g"), "spec": {"replicas": "many"}})  # now invalid: no longer placed
    assert s.queue_usage() == {}
    assert s.lowest_placed_priority() is None
    s.upsert_job(running(job("g", replicas=2, queue="z", priority=5), ["a", "b"]))
    s.remove_job("default", "g")
    assert s.queue_usage() == {}
    assert s.lowest_placed_priority() is None
    usage = s.queue_usage()
    usage["z"] = 99  # the pass charges its own placements to its copy
    assert s.queue_usage() == {}
