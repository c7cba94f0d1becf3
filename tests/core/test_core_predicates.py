"""The kube-scheduler filters: each one admits what kube-scheduler admits and rejects with its wording."""

from __future__ import annotations

from typing import Any

import pytest

from powertrain.core.predicates import (
    REASON_NODE_AFFINITY,
    REASON_NOT_READY,
    REASON_TOO_MANY_PODS,
    REASON_UNSCHEDULABLE,
    filter_node,
    fits,
    insufficient_resources,
    node_allocatable,
    node_ready,
    node_selector_matches,
    node_unschedulable,
    pod_requests,
    subtract,
    toleration_tolerates,
    unschedulable_message,
    untolerated_taint,
)


def node(
    name: str = "n1",
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    unschedulable: bool = False,
    ready: str | None = "True",
    allocatable: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "allocatable": allocatable or {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "8", "pods": "110"}
    }
    if ready is not None:
        status["conditions"] = [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}]
    spec: dict[str, Any] = {"taints": taints or []}
    if unschedulable:
        spec["unschedulable"] = True
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec, "status": status}


def pod(**spec: Any) -> dict[str, Any]:
    spec.setdefault("containers", [{"name": "c", "image": "i"}])
    return {"metadata": {"name": "p"}, "spec": spec}


def container(
    requests: dict[str, Any] | None = None, limits: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": "c", "image": "i", "resources": resources, **kw}


# --- resources


def test_requests_sum_containers_and_count_one_pod_slot() -> None:
    p = pod(containers=[container({"cpu": "500m", "memory": "1Gi"}), container({"cpu": "1", "nvidia.com/gpu": 8})])
    assert pod_requests(p) == {"cpu": 1500, "memory": 2**30, "nvidia.com/gpu": 8, "pods": 1}


def test_limits_stand_in_for_missing_requests() -> None:
    p = pod(containers=[container(limits={"nvidia.com/gpu": "4", "cpu": "2"}, requests={"cpu": "1"})])
    assert pod_requests(p) == {"cpu": 1000, "nvidia.com/gpu": 4, "pods": 1}


def test_init_containers_take_the_max_and_sidecars_add_up() -> None:
    p = pod(
        containers=[container({"cpu": "1", "memory": "1Gi"})],
        initContainers=[
            container({"cpu": "4"}),  # runs alone before the app: only its peak counts
            container({"memory": "512Mi"}, restartPolicy="Always"),  # a sidecar keeps running
            container({"memory": "2Gi"}),  # runs next to the sidecar: 2.5Gi at that moment
        ],
        overhead={"cpu": "100m"},
    )
    assert pod_requests(p) == {"cpu": 4100, "memory": 2560 * 2**20, "pods": 1}


def test_bad_quantity_names_the_container_field() -> None:
    p = pod(containers=[container({"cpu": "a lot"})])
    with pytest.raises(ValueError, match=r"spec\.containers\[0\]\.resources\.requests\.cpu: quantity 'a lot'"):
        pod_requests(p)


def test_allocatable_falls_back_to_capacity() -> None:
    n = {"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "8", "nvidia.com/gpu": "8"}}}
    assert node_allocatable(n) == {"cpu": 8000, "nvidia.com/gpu": 8}
    assert node_allocatable({"metadata": {"name": "bare"}}) == {}


def test_fits_reports_each_missing_resource_like_kube_scheduler() -> None:
    free = {"cpu": 1000, "memory": 2**30, "nvidia.com/gpu": 2, "pods": 0}
    requests = {"cpu": 500, "nvidia.com/gpu": 8, "memory": 2**31, "pods": 1}
    assert insufficient_resources(requests, free) == [
        "Insufficient memory",
        "Insufficient nvidia.com/gpu",
        "Too many pods",
    ]
    assert fits({"cpu": 1000, "nvidia.com/gpu": 2}, free) is None
    assert fits({"example.com/fpga": 1}, free) == "Insufficient example.com/fpga"
    assert REASON_TOO_MANY_PODS == "Too many pods"


def test_nodes_without_a_pod_count_are_not_limited_by_it() -> None:
    assert fits({"pods": 1, "cpu": 1}, {"cpu": 1}) is None


def test_subtract_tracks_what_is_left() -> None:
    assert subtract({"cpu": 1000, "nvidia.com/gpu": 8}, {"nvidia.com/gpu": 3, "pods": 1}) == {
        "cpu": 1000,
        "nvidia.com/gpu": 5,
        "pods": -1,
    }


# --- node selector and affinity


def _affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def _expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        out["values"] = list(values)
    return out


H200 = node(labels={"nvidia.com/gpu.product": "NVIDIA-H200", "rack": "r1", "gen": "5"})


def test_node_selector_needs_every_label() -> None:
    assert node_selector_matches(pod(nodeSelector={"rack": "r1"}), H200) is None
    assert node_selector_matches(pod(nodeSelector={"rack": "r1", "gen": "4"}), H200) == REASON_NODE_AFFINITY
    assert node_selector_matches(pod(), H200) is None


@pytest.mark.parametrize(
    ("expr", "matches"),
    [
        (_expr("rack", "In", "r1", "r2"), True),
        (_expr("rack", "In", "r2"), False),
        (_expr("missing", "In", "x"), False),
        (_expr("rack", "NotIn", "r2"), True),
        (_expr("rack", "NotIn", "r1"), False),
        (_expr("missing", "NotIn", "x"), True),
        (_expr("rack", "Exists"), True),
        (_expr("missing", "Exists"), False),
        (_expr("missing", "DoesNotExist"), True),
        (_expr("rack", "DoesNotExist"), False),
        (_expr("gen", "Gt", "4"), True),
        (_expr("gen", "Gt", "5"), False),
        (_expr("gen", "Lt", "6"), True),
        (_expr("gen", "Lt", "5"), False),
        (_expr("rack", "Gt", "1"), False),  # not an integer label: no match, no crash
        (_expr("gen", "Gt", "x"), False),
        (_expr("gen", "Gt", "1", "2"), False),
        (_expr("rack", "Like", "r1"), False),  # unknown operator matches nothing
    ],
)
def test_match_expressions(expr: dict[str, Any], matches: bool) -> None:
    result = node_selector_matches(pod(affinity=_affinity({"matchExpressions": [expr]})), H200)
    assert (result is None) is matches


def test_terms_are_ored_and_expressions_anded() -> None:
    both = {"matchExpressions": [_expr("rack", "In", "r1"), _expr("gen", "In", "4")]}
    assert node_selector_matches(pod(affinity=_affinity(both)), H200) == REASON_NODE_AFFINITY
    either = [{"matchExpressions": [_expr("rack", "In", "r9")]}, {"matchExpressions": [_expr("gen", "In", "5")]}]
    assert node_selector_matches(pod(affinity=_affinity(*either)), H200) is None


def test_empty_term_matches_no_node() -> None:
    assert node_selector_matches(pod(affinity=_affinity({})), H200) == REASON_NODE_AFFINITY
    assert node_selector_matches(pod(affinity=_affinity()), H200) == REASON_NODE_AFFINITY


def test_match_fields_metadata_name() -> None:
    term = {"matchFields": [_expr("metadata.name", "In", "n1")]}
    assert node_selector_matches(pod(affinity=_affinity(term)), H200) is None
    other = {"matchFields": [_expr("metadata.name", "NotIn", "n1")]}
    assert node_selector_matches(pod(affinity=_affinity(other)), H200) == REASON_NODE_AFFINITY
    bad_field = {"matchFields": [_expr("metadata.uid", "In", "n1")]}
    assert node_selector_matches(pod(affinity=_affinity(bad_field)), H200) == REASON_NODE_AFFINITY


def test_selector_and_affinity_must_both_hold() -> None:
    p = pod(nodeSelector={"rack": "r2"}, affinity=_affinity({"matchExpressions": [_expr("rack", "Exists")]}))
    assert node_selector_matches(p, H200) == REASON_NODE_AFFINITY


# --- taints and tolerations

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("toleration", "tolerated"),
    [
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, True),
        ({"key": "nvidia.com/gpu", "operator": "Exists"}, True),
        ({"key": "nvidia.com/gpu", "value": "present"}, True),  # Equal is the default operator
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "absent"}, False),
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "other", "operator": "Exists"}, False),
        ({"operator": "Exists"}, True),  # empty key + Exists tolerates everything
        ({"key": "nvidia.com/gpu", "operator": "Gte", "value": "present"}, False),
    ],
)
def test_toleration_rules(toleration: dict[str, str], tolerated: bool) -> None:
    assert toleration_tolerates(toleration, GPU_TAINT) is tolerated


def test_untolerated_taint_message_and_effects() -> None:
    tainted = node(taints=[{"key": "soft", "effect": "PreferNoSchedule"}, GPU_TAINT])
    assert untolerated_taint(pod(), tainted) == "node(s) had untolerated taint {nvidia.com/gpu: present}"
    assert untolerated_taint(pod(tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}]), tainted) is None
    evicting = node(taints=[{"key": "maint", "effect": "NoExecute"}])
    assert untolerated_taint(pod(), evicting) == "node(s) had untolerated taint {maint: }"
    assert untolerated_taint(pod(), node(taints=[{"key": "soft", "effect": "PreferNoSchedule"}])) is None


# --- node state


def test_cordoned_node_rejects_unless_tolerated() -> None:
    cordoned = node(unschedulable=True)
    assert node_unschedulable(pod(), cordoned) == REASON_UNSCHEDULABLE
    tolerant = pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}])
    assert node_unschedulable(tolerant, cordoned) is None
    assert node_unschedulable(pod(), node()) is None


@pytest.mark.parametrize("status", ["False", "Unknown", None])
def test_not_ready_nodes_reject_pods(status: str | None) -> None:
    assert node_ready(pod(), node(ready=status)) == REASON_NOT_READY


def test_not_ready_tolerations_mirror_the_node_controller_taints() -> None:
    tolerate_not_ready = pod(tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}])
    assert node_ready(tolerate_not_ready, node(ready="False")) is None
    assert node_ready(tolerate_not_ready, node(ready="Unknown")) == REASON_NOT_READY
    assert node_ready(pod(tolerations=[{"operator": "Exists"}]), node(ready="Unknown")) is None
    assert node_ready(pod(), node(ready="True")) is None


# --- everything together


def test_filter_node_lists_every_reason() -> None:
    n = node(unschedulable=True, taints=[GPU_TAINT], labels={"rack": "r1"})
    p = pod(nodeSelector={"rack": "r2"}, containers=[container({"nvidia.com/gpu": 8})])
    free = subtract(node_allocatable(n), {"nvidia.com/gpu": 4})
    assert filter_node(p, n, free) == [
        REASON_UNSCHEDULABLE,
        REASON_NODE_AFFINITY,
        "node(s) had untolerated taint {nvidia.com/gpu: present}",
        "Insufficient nvidia.com/gpu",
    ]
    assert filter_node(pod(containers=[container({"nvidia.com/gpu": 8})]), node(), node_allocatable(node())) == []


def test_unschedulable_message_matches_kube_scheduler_format() -> None:
    message = unschedulable_message(
        5,
        [
            ["Insufficient nvidia.com/gpu"],
            ["Insufficient nvidia.com/gpu", "Insufficient cpu"],
            [REASON_UNSCHEDULABLE],
            [REASON_NODE_AFFINITY],
            [REASON_NODE_AFFINITY],
        ],
    )
    assert message == (
        "0/5 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable, "
        "2 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node affinity/selector."
    )
    assert unschedulable_message(0, []) == "0/0 nodes are available."


def test_a_template_works_like_a_pod() -> None:
    template = {"spec": {"containers": [container({"nvidia.com/gpu": 2})], "nodeSelector": {"rack": "r1"}}}
    assert filter_node(template, H200, node_allocatable(H200)) == []
