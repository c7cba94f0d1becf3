"""The filters kube-scheduler runs, as pure functions over core/v1 JSON (plain dicts) of pods and nodes.

Each predicate returns None when the node passes and otherwise the reason kube-scheduler itself prints, so
"0/8 nodes are available: 3 Insufficient nvidia.com/gpu, 5 node(s) were unschedulable." reads the same
whether Powertrain or the default scheduler wrote it. A pod *template* ({"spec": ...}) works wherever a pod
does: only `spec` is read.

Malformed selectors (an unknown operator, a Gt value that is not an integer) make their term match nothing,
as in kube-scheduler, instead of raising: a bad pod must never stop scheduling of the others. Malformed
quantities raise ValueError naming the field, because there is no safe guess for how much a pod needs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from powertrain.core.quantity import PODS, resource_list

Obj = Mapping[str, Any]

REASON_NODE_AFFINITY: Final = "node(s) didn't match Pod's node affinity/selector"
REASON_UNSCHEDULABLE: Final = "node(s) were unschedulable"
REASON_NOT_READY: Final = "node(s) were not ready"
REASON_TOO_MANY_PODS: Final = "Too many pods"

TAINT_UNSCHEDULABLE: Final = "node.kubernetes.io/unschedulable"
TAINT_NOT_READY: Final = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE: Final = "node.kubernetes.io/unreachable"

NO_SCHEDULE: Final = "NoSchedule"
NO_EXECUTE: Final = "NoExecute"
PREFER_NO_SCHEDULE: Final = "PreferNoSchedule"
_FILTERING_EFFECTS: Final = frozenset({NO_SCHEDULE, NO_EXECUTE})


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _labels(node: Obj) -> Mapping[str, str]:
    meta = node.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


def _name(obj: Obj) -> str:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return str(name) if name is not None else ""


# --- resources -------------------------------------------------------------------------------------------


def _add(into: dict[str, int], more: Mapping[str, int]) -> None:
    for key, amount in more.items():
        into[key] = into.get(key, 0) + amount


def _max(into: dict[str, int], other: Mapping[str, int]) -> None:
    for key, amount in other.items():
        if amount > into.get(key, 0):
            into[key] = amount


def container_requests(container: Obj, field: str = "container") -> dict[str, int]:
    """What one container requests. Unset requests default to the limits, as the API server defaults them."""
    resources = container.get("resources")
    if not isinstance(resources, Mapping):
        return {}
    out = resource_list(resources.get("limits"), f"{field}.resources.limits")
    out.update(resource_list(resources.get("requests"), f"{field}.resources.requests"))
    return out


def pod_requests(pod: Obj) -> dict[str, int]:
    """What a pod needs on a node, computed as kube-scheduler does, plus one `pods` slot.

    Containers run together, so their requests add up; init containers run one after another before them, so
    the pod needs the larger of the two. Sidecars (init containers with restartPolicy Always) keep running, so
    they add to both. RuntimeClass overhead comes on top.
    """
    spec = _spec(pod)
    total: dict[str, int] = {}
    for i, container in enumerate(_list(spec.get("containers"))):
        if isinstance(container, Mapping):
            _add(total, container_requests(container, f"spec.containers[{i}]"))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for i, container in enumerate(_list(spec.get("initContainers"))):
        if not isinstance(container, Mapping):
            continue
        own = container_requests(container, f"spec.initContainers[{i}]")
        if container.get("restartPolicy") == "Always":
            _add(total, own)
            _add(sidecars, own)
            running = dict(sidecars)
        else:
            running = dict(own)
            _add(running, sidecars)
        _max(init_peak, running)
    _max(total, init_peak)
    _add(total, resource_list(spec.get("overhead"), "spec.overhead"))
    total[PODS] = 1
    return {k: v for k, v in total.items() if v > 0}


def node_allocatable(node: Obj) -> dict[str, int]:
    """What the node offers pods: status.allocatable, falling back to status.capacity when it is unset."""
    status = node.get("status")
    if not isinstance(status, Mapping):
        return {}
    allocatable = status.get("allocatable")
    if not allocatable:
        allocatable = status.get("capacity")
    return resource_list(allocatable if isinstance(allocatable, Mapping) else None, "status.allocatable")


def subtract(free: Mapping[str, int], used: Mapping[str, int]) -> dict[str, int]:
    """`free` minus `used`, resource by resource (may go negative when a node is over-committed)."""
    out = dict(free)
    for key, amount in used.items():
        out[key] = out.get(key, 0) - amount
    return out


def insufficient_resources(requests: Mapping[str, int], free: Mapping[str, int]) -> list[str]:
    """Every resource the node lacks, as kube-scheduler words it ("Insufficient cpu", "Too many pods").

    A node that does not list `pods` at all is not limited in pod count (test and sandbox nodes often omit it);
    a node that does not list any other requested resource has none of it.
    """
    reasons: list[str] = []
    for key in sorted(requests):
        amount = requests[key]
        if amount <= 0:
            continue
        if key == PODS:
            if PODS in free and free[PODS] < amount:
                reasons.append(REASON_TOO_MANY_PODS)
        elif free.get(key, 0) < amount:
            reasons.append(f"Insufficient {key}")
    return reasons


def fits(requests: Mapping[str, int], free: Mapping[str, int]) -> str | None:
    """None when `requests` fit into `free`, else the first missing resource's reason."""
    reasons = insufficient_resources(requests, free)
    return reasons[0] if reasons else None


# --- node selector and required node affinity ------------------------------------------------------------


def _int(text: Any) -> int | None:
    try:
        return int(str(text), 10)
    except ValueError:
        return None


def _requirement_matches(requirement: Any, value: str | None) -> bool:
    """One NodeSelectorRequirement against the label (or field) value, None when absent."""
    if not isinstance(requirement, Mapping):
        return False
    operator = requirement.get("operator")
    values = [str(v) for v in _list(requirement.get("values"))]
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt"):
        if value is None or len(values) != 1:
            return False
        have, bound = _int(value), _int(values[0])
        if have is None or bound is None:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def node_selector_term_matches(term: Any, node: Obj) -> bool:
    """A NodeSelectorTerm: all matchExpressions (labels) and matchFields (metadata.name) hold; empty matches none."""
    if not isinstance(term, Mapping):
        return False
    expressions = _list(term.get("matchExpressions"))
    fields = _list(term.get("matchFields"))
    if not expressions and not fields:
        return False
    labels = _labels(node)
    for req in expressions:
        key = req.get("key") if isinstance(req, Mapping) else None
        if not isinstance(key, str) or not _requirement_matches(req, labels.get(key)):
            return False
    for req in fields:
        key = req.get("key") if isinstance(req, Mapping) else None
        if key != "metadata.name" or req.get("operator") not in ("In", "NotIn"):
            return False
        if not _requirement_matches(req, _name(node)):
            return False
    return True


def required_node_selector_terms(pod: Obj) -> list[Any] | None:
    """The pod's required node affinity terms (ORed), or None when it has none."""
    affinity = _spec(pod).get("affinity")
    node_affinity = affinity.get("nodeAffinity") if isinstance(affinity, Mapping) else None
    required = (
        node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        if isinstance(node_affinity, Mapping)
        else None
    )
    if not isinstance(required, Mapping):
        return None
    return _list(required.get("nodeSelectorTerms"))


def node_selector_matches(pod: Obj, node: Obj) -> str | None:
    """spec.nodeSelector (every label equal) and the required node affinity (any term matches)."""
    selector = _spec(pod).get("nodeSelector")
    if isinstance(selector, Mapping) and selector:
        labels = _labels(node)
        for key, value in selector.items():
            if labels.get(key) != value:
                return REASON_NODE_AFFINITY
    terms = required_node_selector_terms(pod)
    if terms is not None and not any(node_selector_term_matches(t, node) for t in terms):
        return REASON_NODE_AFFINITY
    return None


# --- taints and tolerations ------------------------------------------------------------------------------


def tolerations_of(pod: Obj) -> list[Mapping[str, Any]]:
    return [t for t in _list(_spec(pod).get("tolerations")) if isinstance(t, Mapping)]


def taints_of(node: Obj) -> list[Mapping[str, Any]]:
    return [t for t in _list(_spec(node).get("taints")) if isinstance(t, Mapping)]


def toleration_tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """One toleration against one taint, by the rules of core/v1 Toleration.ToleratesTaint.

    An empty effect matches every effect; an empty key with operator Exists matches every taint; Equal (the
    default operator) also needs equal values. Unknown operators tolerate nothing.
    """
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    return any(toleration_tolerates(t, taint) for t in tolerations)


def untolerated_taint(pod: Obj, node: Obj) -> str | None:
    """The first NoSchedule/NoExecute taint the pod does not tolerate; PreferNoSchedule never filters."""
    tolerations = tolerations_of(pod)
    for taint in taints_of(node):
        if taint.get("effect") not in _FILTERING_EFFECTS:
            continue
        if not tolerates(tolerations, taint):
            return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value') or ''}}}"
    return None


# --- node state -------------------------------------------------------------------------------------------


def node_unschedulable(pod: Obj, node: Obj) -> str | None:
    """A cordoned node takes only pods that tolerate the node.kubernetes.io/unschedulable:NoSchedule taint."""
    if not _spec(node).get("unschedulable"):
        return None
    taint = {"key": TAINT_UNSCHEDULABLE, "effect": NO_SCHEDULE}
    return None if tolerates(tolerations_of(pod), taint) else REASON_UNSCHEDULABLE


def node_ready_status(node: Obj) -> str:
    """The node's Ready condition status: "True", "False" or "Unknown" (also when the condition is missing)."""
    status = node.get("status")
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    for condition in _list(conditions):
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return str(condition.get("status", "Unknown"))
    return "Unknown"


def node_ready(pod: Obj, node: Obj) -> str | None:
    """Only Ready nodes take pods, except pods that tolerate the taint the node controller would set.

    Ready=False corresponds to node.kubernetes.io/not-ready and Unknown (or no condition at all: a node that
    never reported) to node.kubernetes.io/unreachable, both NoSchedule.
    """
    ready = node_ready_status(node)
    if ready == "True":
        return None
    key = TAINT_NOT_READY if ready == "False" else TAINT_UNREACHABLE
    taint = {"key": key, "effect": NO_SCHEDULE}
    return None if tolerates(tolerations_of(pod), taint) else REASON_NOT_READY


def node_filters(pod: Obj, node: Obj) -> list[str]:
    """Every failing non-resource filter (cheap to cache per pod shape and node)."""
    reasons: list[str] = []
    for check in (node_unschedulable, node_ready, node_selector_matches, untolerated_taint):
        reason = check(pod, node)
        if reason is not None:
            reasons.append(reason)
    return reasons


def filter_node(pod: Obj, node: Obj, free: Mapping[str, int], requests: Mapping[str, int] | None = None) -> list[str]:
    """Every reason the pod cannot go onto the node given its `free` resources; empty means it fits."""
    needed = pod_requests(pod) if requests is None else requests
    return node_filters(pod, node) + insufficient_resources(needed, free)


def unschedulable_message(node_count: int, reasons_per_node: Iterable[Sequence[str]]) -> str:
    """kube-scheduler's FitError text: "0/N nodes are available: 2 Insufficient cpu, 1 node(s) were …"."""
    histogram: Counter[str] = Counter()
    for reasons in reasons_per_node:
        histogram.update(set(reasons))
    parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
    if not parts:
        return f"0/{node_count} nodes are available."
    return f"0/{node_count} nodes are available: {', '.join(parts)}."
