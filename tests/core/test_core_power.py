"""Which GPU gets which power limit: a job's capWatts on the GPUs the agents attribute to its live pods."""

from __future__ import annotations

from typing import Any

from core_builders import cluster, job, policy, running, snap, telemetry, worker_pods

from powertrain.core.power import (
    desired_power_limits,
    job_caps,
    power_budgets,
    power_limit_changes,
    power_limits_wire,
)
from powertrain.core.topology import node_domain_rows

NODES = cluster(spines=1, racks=1, nodes=2)
A, B = NODES[0]["metadata"]["name"], NODES[1]["metadata"]["name"]


def capped(name: str, nodes: list[str], cap: int | None, gpus: int = 4, **status: Any) -> dict[str, Any]:
    obj = running(job(name, replicas=len(nodes), gpus=gpus), nodes, **status)
    if cap is not None:
        obj["spec"]["power"] = {"mode": "Efficiency", "capWatts": cap}
    return obj


def report(node: str, held: dict[int, str], limits: dict[str, int] | None = None) -> dict[str, Any]:
    obj = telemetry(node, [], pods={i: ("default", pod) for i, pod in held.items()})
    if limits:
        obj["spec"] = {"powerLimits": [{"uuid": u, "watts": w} for u, w in limits.items()]}
    return obj


def uuid(node: str, i: int) -> str:
    return f"GPU-{node}-{i}"


def test_each_gpu_of_a_capped_gang_gets_the_cap_and_other_jobs_gpus_get_none() -> None:
    big = capped("big", [A, B], 400)
    free = capped("free", [A], None)
    reports = [
        report(A, {0: "big-worker-0", 1: "big-worker-0", 2: "big-worker-0", 3: "big-worker-0", 4: "free-worker-0"}),
        report(B, {0: "big-worker-1", 1: "big-worker-1", 2: "big-worker-1", 3: "big-worker-1"}),
    ]
    s = snap(NODES, [big, free], worker_pods(big) + worker_pods(free), telemetry=reports)
    changes = power_limit_changes(s)
    assert changes == {A: {uuid(A, i): 400 for i in range(4)}, B: {uuid(B, i): 400 for i in range(4)}}


def test_two_capped_jobs_on_one_node_are_merged_into_one_request() -> None:
    one, two = capped("one", [A], 400), capped("two", [A], 550)
    held = {0: "one-worker-0", 1: "one-worker-0", 2: "two-worker-0", 3: "two-worker-0"}
    s = snap(NODES, [one, two], worker_pods(one) + worker_pods(two), telemetry=[report(A, held)])
    assert power_limit_changes(s) == {A: {uuid(A, 0): 400, uuid(A, 1): 400, uuid(A, 2): 550, uuid(A, 3): 550}}


def test_a_node_already_carrying_the_request_is_not_written_again() -> None:
    big = capped("big", [A], 400)
    held = {i: "big-worker-0" for i in range(4)}
    s = snap(NODES, [big], worker_pods(big), telemetry=[report(A, held, {uuid(A, i): 400 for i in range(4)})])
    assert power_limit_changes(s) == {}


def test_a_changed_cap_rewrites_the_node() -> None:
    big = capped("big", [A], 300)
    held = {i: "big-worker-0" for i in range(4)}
    s = snap(NODES, [big], worker_pods(big), telemetry=[report(A, held, {uuid(A, i): 400 for i in range(4)})])
    assert power_limit_changes(s) == {A: {uuid(A, i): 300 for i in range(4)}}


def test_the_request_is_withdrawn_when_the_job_finishes() -> None:
    done = capped("done", [A], 400)
    done["status"]["phase"] = "Succeeded"
    held = {i: "done-worker-0" for i in range(4)}
    current = {uuid(A, i): 400 for i in range(4)}
    s = snap(NODES, [done], worker_pods(done, phase="Succeeded"), telemetry=[report(A, held, current)])
    assert job_caps(s) == {}
    assert power_limit_changes(s) == {A: {}}


def test_the_request_is_withdrawn_when_the_gang_leaves_even_if_the_report_is_stale() -> None:
    gone = capped("gone", [A], 400)
    gone["status"] = {"phase": "Queued"}  # restarted: its pods are deleted, it waits to be placed again
    held = {i: "gone-worker-0" for i in range(4)}  # the agent has not noticed yet
    s = snap(NODES, [gone], [], telemetry=[report(A, held, {uuid(A, i): 400 for i in range(4)})])
    assert power_limit_changes(s) == {A: {}}


def test_a_terminating_gang_keeps_its_cap_while_it_checkpoints() -> None:
    big = capped("big", [A], 400)
    pods = worker_pods(big)
    pods[0]["metadata"]["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    s = snap(NODES, [big], pods, telemetry=[report(A, {0: "big-worker-0"})])
    assert desired_power_limits(s, A, job_caps(s)) == {uuid(A, 0): 400}


def test_gpus_of_unknown_pods_and_nodes_without_a_report_get_nothing() -> None:
    big = capped("big", [A, B], 400)
    s = snap(NODES, [big], worker_pods(big), telemetry=[report(A, {0: "someone-else"})])
    assert power_limit_changes(s) == {}


def test_a_pod_of_another_namespace_with_the_same_name_is_not_capped() -> None:
    big = capped("big", [A], 400)
    rep = report(A, {})
    rep["status"]["gpus"][0]["pod"] = {"namespace": "elsewhere", "name": "big-worker-0"}
    s = snap(NODES, [big], worker_pods(big), telemetry=[rep])
    assert power_limit_changes(s) == {}


def test_the_wire_form_is_sorted_so_equal_requests_are_equal_writes() -> None:
    assert power_limits_wire({"GPU-b": 300, "GPU-a": 400}) == [
        {"uuid": "GPU-a", "watts": 400},
        {"uuid": "GPU-b", "watts": 300},
    ]


def test_budgets_cover_the_cluster_every_rack_and_overrides_replace_the_default() -> None:
    overrides = [{"domain": "s0-r1", "watts": 45000}, {"domain": "empty", "watts": 1000}]
    power = {"clusterWatts": 400000, "budgetLevel": "rack", "domainWatts": 60000, "overrides": overrides}
    s = snap(cluster(spines=1, racks=3, nodes=1), policy=policy(power=power))
    assert power_budgets(s.policy, s.topology) == {
        ("cluster", "cluster"): 400000,
        ("rack", "s0-r0"): 60000,
        ("rack", "s0-r1"): 45000,
        ("rack", "s0-r2"): 60000,
        ("rack", "empty"): 1000,
    }


def test_no_budgets_configured_means_no_budget_series() -> None:
    s = snap(cluster(spines=1, racks=2, nodes=1))
    assert power_budgets(s.policy, s.topology) == {}


def test_every_node_has_one_domain_row_per_level_it_is_labelled_for() -> None:
    s = snap(cluster(spines=1, racks=1, nodes=2))
    rows = set(node_domain_rows(s.topology))
    assert rows == {
        (n, level, domain)
        for n in ("s0-r0-n0", "s0-r0-n1")
        for level, domain in (("node", n), ("rack", "s0-r0"), ("spine", "s0"), ("zone", "z1"))
    }


def test_only_the_named_nodes_are_looked_at_when_the_caller_knows_what_changed() -> None:
    big = capped("big", [A, B], 400)
    reports = [report(A, {0: "big-worker-0"}), report(B, {0: "big-worker-1"})]
    s = snap(NODES, [big], worker_pods(big), telemetry=reports)
    assert power_limit_changes(s, only=[B]) == {B: {uuid(B, 0): 400}}
    assert power_limit_changes(s, only=[]) == {}
