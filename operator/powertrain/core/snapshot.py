"""The in-memory cluster the decisions are made over: nodes, what holds their resources, jobs, the policy.

Built from the plain dicts the shell already has (kopf indexes, a cache, the simulator) and updated one
object at a time; every update is O(1) in the size of the cluster except a policy change (which re-derives
the topology of every node). What holds a node's resources:

- every pod bound to it that has not finished, whoever scheduled it (other schedulers' pods count too);
- the ranks of a placed gang whose pods are not bound yet (a reservation, so a gang being created is never
  placed over);
- GPUs its agent reports unhealthy and that no pod holds (they cannot be allocated).

Resources held by terminating pods are tracked separately as "releasing": they still block placement, but
preemption counts them as already freed, so it never preempts twice for the same gang.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from powertrain.api import constants as c
from powertrain.api.policy import ClusterTrainingPolicy, ClusterTrainingPolicySpec
from powertrain.api.telemetry import NodeTelemetry, PodRef
from powertrain.api.trainingjob import TERMINAL_PHASES, Phase, TrainingJob, TrainingJobSpec
from powertrain.api.validation import InvalidObject, parse
from powertrain.core.podsecurity import pod_security_problems, service_account_problem
from powertrain.core.predicates import node_allocatable, node_ready_status, pod_requests
from powertrain.core.quantity import PODS
from powertrain.core.telemetry import JobTelemetry, TelemetryHistory, Worker, job_window
from powertrain.core.topology import TopologyIndex, levels_from_policy
from powertrain.core.workload import GANG_GENERATION_ANNOTATION, check_job_name, replica_spec

JobKey = tuple[str, str]
"""(namespace, name) of a TrainingJob."""
PodKey = tuple[str, str]

FAR_FUTURE: Final = datetime.max.replace(tzinfo=UTC)
_FINISHED_POD_PHASES: Final = frozenset({"Succeeded", "Failed"})
MAX_CACHED_SHAPES: Final = 512


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (as the API server writes them) or a datetime; None when absent or unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _add(into: dict[str, int], more: Mapping[str, int], sign: int = 1) -> None:
    for key, amount in more.items():
        into[key] = into.get(key, 0) + sign * amount


@dataclass
class NodeInfo:
    name: str
    obj: Mapping[str, Any]
    labels: Mapping[str, str]
    allocatable: dict[str, int]
    gpu_model: str
    ready: bool
    unschedulable: bool
    used: dict[str, int] = field(default_factory=dict)
    releasing: dict[str, int] = field(default_factory=dict)
    unhealthy_gpus: int = 0
    """GPUs reported unhealthy that no pod holds."""

    def free(self) -> dict[str, int]:
        out = dict(self.allocatable)
        for key, amount in self.used.items():
            out[key] = out.get(key, 0) - amount
        if self.unhealthy_gpus:
            out[c.GPU_RESOURCE] = out.get(c.GPU_RESOURCE, 0) - self.unhealthy_gpus
        if PODS not in self.allocatable:
            out.pop(PODS, None)  # a node that does not count pods is not limited by them
        return out

    @property
    def gpus(self) -> int:
        return self.allocatable.get(c.GPU_RESOURCE, 0)


@dataclass
class PodInfo:
    key: PodKey
    node: str | None
    requests: dict[str, int]
    job: JobKey | None
    rank: int | None
    generation: int | None
    terminating: bool
    phase: str
    obj: Mapping[str, Any]

    @property
    def holds_resources(self) -> bool:
        return self.node is not None and self.phase not in _FINISHED_POD_PHASES


@dataclass
class JobInfo:
    """A TrainingJob as the scheduler sees it (parsed once per resourceVersion)."""

    key: JobKey
    job: TrainingJob
    resource_version: str | None
    per_replica: dict[str, int]
    template: Mapping[str, Any]
    """{"spec": the worker pod spec}, what the kube-scheduler filters read."""
    filter_shape: str
    submit_time: datetime
    placement_nodes: tuple[str, ...]
    placement_level: str | None
    placement_domain: str | None
    generation: int
    # Derived once at construction (a JobInfo is built per resourceVersion and never changed): a pass reads
    # these for every job, and plain attributes are the cheapest reads.
    priority: int = field(init=False, compare=False, repr=False)
    queue: str = field(init=False, compare=False, repr=False)
    phase: str | None = field(init=False, compare=False, repr=False)
    suspended: bool = field(init=False, compare=False, repr=False)
    placed: bool = field(init=False, compare=False, repr=False)
    """The gang holds its nodes: placed and running (or being started)."""
    derived: dict[str, object] = field(init=False, compare=False, repr=False)
    """What other core modules derive from this JobInfo, kept with it (e.g. its GangRequest)."""

    def __post_init__(self) -> None:
        spec, status = self.job.spec, self.job.status
        self.priority = spec.priority
        self.queue = spec.queue
        self.phase = str(status.phase) if status and status.phase else None
        self.suspended = spec.run_policy.suspend
        self.placed = bool(self.placement_nodes) and self.phase == Phase.RUNNING.value and not self.suspended
        self.derived = {}

    @property
    def spec_replicas(self) -> int:
        return self.job.spec.replicas

    @property
    def gpus_per_replica(self) -> int:
        return self.job.spec.gpus_per_replica

    @property
    def start_time(self) -> datetime | None:
        status = self.job.status
        return parse_time(status.start_time) if status and status.start_time else None

    @property
    def finished(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @property
    def held_gpus(self) -> int:
        return len(self.placement_nodes) * self.gpus_per_replica if self.placed else 0


class KeptViews:
    """Work the placement engine keeps across passes (placement.py decides what is in it): per-shape capacity
    counts and the nodes eligible for each pod shape. The snapshot says what changed since: `touch(node)` when a
    node's free resources change (the counts refresh just that node on their next use), `clear()` when kept work
    is void as a whole (a node added, removed or rewritten, the topology or policy replaced)."""

    def __init__(self) -> None:
        self.entries: dict[object, object] = {}
        self.stale: dict[object, set[str]] = {}
        """Per entry, the nodes whose free resources changed since it was last brought up to date."""
        self.eligible: dict[str, dict[str, list[str]]] = {}

    def touch(self, node: str) -> None:
        for nodes in self.stale.values():
            nodes.add(node)

    def clear(self) -> None:
        self.entries.clear()
        self.stale.clear()
        self.eligible.clear()


@dataclass
class ClusterSnapshot:
    policy: ClusterTrainingPolicySpec
    topology: TopologyIndex
    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    pods: dict[PodKey, PodInfo] = field(default_factory=dict)
    jobs: dict[JobKey, JobInfo] = field(default_factory=dict)
    invalid_jobs: dict[JobKey, str] = field(default_factory=dict)
    """Jobs that cannot be scheduled as written, with the reason (for an Invalid condition)."""
    job_objects: dict[JobKey, Mapping[str, Any]] = field(default_factory=dict)
    telemetry: dict[str, NodeTelemetry] = field(default_factory=dict)
    job_pods: dict[JobKey, dict[PodKey, PodInfo]] = field(default_factory=dict)
    node_job_usage: dict[str, dict[JobKey, dict[str, int]]] = field(default_factory=dict)
    """Per node, what each of our gangs holds there (bound pods and reservations), for preemption."""
    reservations: dict[JobKey, dict[int, str]] = field(default_factory=dict)
    operator_account: tuple[str, str] | None = None
    """(namespace, name) of the operator's own service account, which no job may use (see set_operator_account)."""
    create_backoff: dict[JobKey, tuple[datetime, str]] = field(default_factory=dict)
    """Jobs whose gang could not be created (set by the shell): not placed again before the time, and why."""
    history: TelemetryHistory = field(default_factory=TelemetryHistory)
    """Per-pod telemetry points from the reports, for windows over a job's workers (see core/telemetry.py)."""
    version: int = 0
    kept: KeptViews = field(default_factory=KeptViews, repr=False, compare=False)
    _filter_cache: dict[str, dict[str, bool]] = field(default_factory=dict)
    _queue_gpus: dict[str, int] = field(default_factory=dict)
    """GPUs held by placed gangs per queue, kept as jobs come and go (a pass reads it; walking every job cost more)."""
    _placed_priorities: dict[int, int] = field(default_factory=dict)
    """Placed gangs per priority, for the lowest priority a preemption could free."""
    _parsed_specs: dict[JobKey, tuple[TrainingJobSpec, dict[str, Any], dict[str, int], str]] = field(
        default_factory=dict
    )
    """Per job fed through `upsert_job(parsed=...)`: the accepted spec object and what was derived from it."""
    _spec_facts: dict[int, tuple[TrainingJobSpec, dict[str, Any], dict[str, int], str]] = field(default_factory=dict)
    """By id of a spec object given through `parsed` (held here, so the id stays its own): what was derived from
    it, for other jobs given the same object (read only, like every JobInfo)."""

    # --- construction -----------------------------------------------------------------------------------

    @classmethod
    def empty(cls, policy: ClusterTrainingPolicySpec | None = None) -> ClusterSnapshot:
        spec = policy or ClusterTrainingPolicySpec()
        return cls(policy=spec, topology=TopologyIndex.empty(levels_from_policy(spec)))

    @classmethod
    def build(
        cls,
        nodes: Iterable[Mapping[str, Any]] = (),
        pods: Iterable[Mapping[str, Any]] = (),
        telemetry: Iterable[Mapping[str, Any]] = (),
        jobs: Iterable[Mapping[str, Any]] = (),
        policy: Mapping[str, Any] | ClusterTrainingPolicySpec | None = None,
    ) -> ClusterSnapshot:
        """A snapshot from core/v1 and powertrain.dev objects as plain dicts (e.g. kopf index contents)."""
        snap = cls.empty()
        snap.set_policy(policy)
        for node in nodes:
            snap.upsert_node(node)
        for report in telemetry:
            snap.upsert_telemetry(report)
        for job in jobs:
            snap.upsert_job(job)
        for pod in pods:
            snap.upsert_pod(pod)
        return snap

    # --- policy -----------------------------------------------------------------------------------------

    def set_policy(self, policy: Mapping[str, Any] | ClusterTrainingPolicySpec | None) -> str | None:
        """Use this policy (None: the defaults). A policy that does not parse is refused with the reason and
        the current one is kept."""
        if isinstance(policy, ClusterTrainingPolicySpec):
            spec = policy
        elif policy is None:
            spec = ClusterTrainingPolicySpec()
        else:
            try:
                spec = parse(ClusterTrainingPolicy, policy).spec
            except InvalidObject as exc:
                return str(exc)
        security_changed = spec.pod_security != self.policy.pod_security
        self.policy = spec
        if security_changed:
            self._recheck_jobs()
        levels = levels_from_policy(spec)
        if levels != self.topology.levels:
            self.topology = TopologyIndex.empty(levels)
            for node in self.nodes.values():
                self.topology.upsert(node.name, node.labels)
        self.kept.clear()
        self.version += 1
        return None

    def set_operator_account(self, namespace: str | None, name: str | None) -> None:
        """The operator's own service account (from its pod, via the downward API); None when unknown."""
        account = (namespace, name) if namespace and name else None
        if account != self.operator_account:
            self.operator_account = account
            self._recheck_jobs()

    def _recheck_jobs(self) -> None:
        # What a job may use depends on the policy and the operator's identity: decide every job again.
        self._parsed_specs.clear()
        self._spec_facts.clear()
        for obj in list(self.job_objects.values()):
            self.upsert_job(obj, force=True)

    # --- nodes ------------------------------------------------------------------------------------------

    def upsert_node(self, obj: Mapping[str, Any]) -> None:
        name = str(_meta(obj).get("name") or "")
        if not name:
            return
        labels_raw = _meta(obj).get("labels")
        labels: Mapping[str, str] = labels_raw if isinstance(labels_raw, Mapping) else {}
        try:
            allocatable = node_allocatable(obj)
        except ValueError:
            allocatable = {}  # an unreadable node offers nothing rather than stopping scheduling
        spec = obj.get("spec")
        old = self.nodes.get(name)
        info = NodeInfo(
            name=name,
            obj=obj,
            labels=labels,
            allocatable=allocatable,
            gpu_model=str(labels.get(c.GPU_PRODUCT_LABEL, "")),
            ready=node_ready_status(obj) == "True",
            unschedulable=bool(spec.get("unschedulable")) if isinstance(spec, Mapping) else False,
            used=old.used if old else {},
            releasing=old.releasing if old else {},
        )
        self.nodes[name] = info
        self.topology.upsert(name, labels)
        self._apply_telemetry(name)
        for cache in self._filter_cache.values():
            cache.pop(name, None)
        self.kept.clear()
        self.version += 1

    def remove_node(self, name: str) -> None:
        if self.nodes.pop(name, None) is not None:
            self.topology.remove(name)
            for cache in self._filter_cache.values():
                cache.pop(name, None)
            self.kept.clear()
            self.version += 1

    # --- telemetry --------------------------------------------------------------------------------------

    def upsert_telemetry(self, obj: Mapping[str, Any] | NodeTelemetry) -> None:
        if isinstance(obj, NodeTelemetry):
            report = obj
        else:
            try:
                report = NodeTelemetry.model_validate(obj)
            except ValueError:
                return  # a malformed report says nothing reliable about health: keep the last one
        name = str(report.metadata.get("name") or "")
        if not name:
            return
        self.telemetry[name] = report
        self.history.record(name, report)
        self._apply_telemetry(name)
        self.version += 1

    def remove_telemetry(self, name: str) -> None:
        if self.telemetry.pop(name, None) is not None:
            self.history.forget_node(name)
            self._apply_telemetry(name)
            self.version += 1

    def _apply_telemetry(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is None:
            return
        report = self.telemetry.get(name)
        gpus = report.status.gpus if report is not None and report.status is not None else []
        # A sick GPU held by a pod is already counted as used; every other sick GPU is taken off the free count.
        # "Held" means the pod the report names still holds resources on this node: a report written before the
        # pod left (a gang moved off the sick GPU) still names it, and must not make the GPU look free.
        unhealthy = sum(1 for g in gpus if not g.healthy and (g.pod is None or not self._holds_gpu_here(name, g.pod)))
        if unhealthy != node.unhealthy_gpus:
            node.unhealthy_gpus = unhealthy
            self.kept.touch(name)

    def _holds_gpu_here(self, node: str, ref: PodRef) -> bool:
        pod = self.pods.get((ref.namespace, ref.name))
        if pod is None or pod.node != node or not pod.holds_resources:
            return False
        uid = _meta(pod.obj).get("uid")
        return ref.uid is None or uid is None or str(uid) == ref.uid

    def _reapply_sick_gpus(self, node: str | None) -> None:
        """After a pod change on `node`: recount its sick GPUs when its report has any (cheap otherwise)."""
        if node is None or node not in self.nodes:
            return
        report = self.telemetry.get(node)
        if report is not None and report.status is not None and any(not g.healthy for g in report.status.gpus):
            self._apply_telemetry(node)

    def unhealthy_gpus_by_pod(self, node: str) -> dict[PodKey, int]:
        """GPUs reported unhealthy per pod that holds them (for moving gangs off sick GPUs)."""
        report = self.telemetry.get(node)
        out: dict[PodKey, int] = {}
        if report is None or report.status is None:
            return out
        for gpu in report.status.gpus:
            if not gpu.healthy and gpu.pod is not None:
                key = (gpu.pod.namespace, gpu.pod.name)
                out[key] = out.get(key, 0) + 1
        return out

    # --- pods -------------------------------------------------------------------------------------------

    def upsert_pod(self, obj: Mapping[str, Any]) -> None:
        meta = _meta(obj)
        key: PodKey = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        self._forget_pod(key)
        spec = obj.get("spec")
        spec = spec if isinstance(spec, Mapping) else {}
        status = obj.get("status")
        phase = str(status.get("phase") or "Pending") if isinstance(status, Mapping) else "Pending"
        try:
            requests = pod_requests(obj)
        except Exception:  # an unreadable pod still takes a slot; it never stops the snapshot
            requests = {PODS: 1}
        labels = meta.get("labels")
        labels = labels if isinstance(labels, Mapping) else {}
        job_name = labels.get(c.JOB_NAME_LABEL)
        job: JobKey | None = (key[0], str(job_name)) if job_name else None
        info = PodInfo(
            key=key,
            node=str(spec["nodeName"]) if spec.get("nodeName") else None,
            requests=requests,
            job=job,
            rank=_int_or_none(labels.get(c.REPLICA_INDEX_LABEL)),
            generation=_int_or_none(labels.get(c.GANG_GENERATION_LABEL)),
            terminating=bool(meta.get("deletionTimestamp")),
            phase=phase,
            obj=obj,
        )
        self.pods[key] = info
        if job is not None:
            self.job_pods.setdefault(job, {})[key] = info
        if info.holds_resources and info.node is not None:
            node_used = self._node_used(info.node)
            _add(node_used, requests)
            if info.terminating:
                _add(self._node_releasing(info.node), requests)
            elif job is not None:
                self._drop_reservation(job, info.rank, info.node)
                usage = self.node_job_usage.setdefault(info.node, {}).setdefault(job, {})
                _add(usage, requests)
        self._reapply_sick_gpus(info.node)
        self.version += 1

    def remove_pod(self, namespace: str, name: str) -> None:
        self._forget_pod((namespace, name))
        self.version += 1

    def _forget_pod(self, key: PodKey) -> None:
        info = self.pods.pop(key, None)
        if info is None:
            return
        if info.job is not None:
            group = self.job_pods.get(info.job)
            if group is not None:
                group.pop(key, None)
                if not group:
                    del self.job_pods[info.job]
        if info.holds_resources and info.node is not None:
            _add(self._node_used(info.node), info.requests, -1)
            if info.terminating:
                _add(self._node_releasing(info.node), info.requests, -1)
            elif info.job is not None:
                self._subtract_job_usage(info.node, info.job, info.requests)
                self._restore_reservation(info.job, info.rank, info.node)
        self._reapply_sick_gpus(info.node)

    def _node_used(self, node: str) -> dict[str, int]:
        """The node's used resources, for a change to them (every change goes through here)."""
        info = self.nodes.get(node)
        if info is not None:
            self.kept.touch(node)
            return info.used
        # Pods can arrive before their node (watch order is not guaranteed); keep the count for when it does.
        placeholder = NodeInfo(node, {}, {}, {}, "", ready=False, unschedulable=True)
        self.nodes[node] = placeholder
        self.kept.clear()
        return placeholder.used

    def _node_releasing(self, node: str) -> dict[str, int]:
        self._node_used(node)
        return self.nodes[node].releasing

    def _subtract_job_usage(self, node: str, job: JobKey, requests: Mapping[str, int]) -> None:
        per_job = self.node_job_usage.get(node)
        if per_job is None or job not in per_job:
            return
        usage = per_job[job]
        _add(usage, requests, -1)
        if all(v <= 0 for v in usage.values()):
            del per_job[job]
            if not per_job:
                del self.node_job_usage[node]

    # --- jobs -------------------------------------------------------------------------------------------

    def upsert_job(self, obj: Mapping[str, Any], *, force: bool = False, parsed: TrainingJob | None = None) -> None:
        """Add or replace a TrainingJob. `parsed`: what `parse(TrainingJob, obj)` gives, when the caller already
        has it (the simulator builds its objects from models it validated once); a job whose spec is the very
        object accepted for it before skips the checks of that spec, which depend on nothing else that changed
        (a policy or operator-account change re-checks every job from its object)."""
        meta = _meta(obj)
        key: JobKey = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        rv = meta.get("resourceVersion")
        old = self.jobs.get(key)
        if not force and old is not None and rv is not None and old.resource_version == str(rv):
            return
        self._release_reservations(key)
        self._drop_job(key)
        self.invalid_jobs.pop(key, None)
        self.job_objects[key] = obj
        self.version += 1
        known = self._parsed_specs.get(key) if parsed is not None and not force else None
        if parsed is not None and known is not None and known[0] is parsed.spec:
            job = parsed
            _, template, per_replica, shape = known
        else:
            facts = self._spec_facts.get(id(parsed.spec)) if parsed is not None else None
            try:
                job = parsed if parsed is not None else parse(TrainingJob, obj)
                if facts is not None and facts[0] is job.spec:
                    _, template, per_replica, shape = facts
                else:
                    template = {"spec": replica_spec(job.spec)}
                    per_replica = pod_requests(template)
                    shape = filter_shape(template)
            except (InvalidObject, ValueError) as exc:
                self.invalid_jobs[key] = str(exc)
                return
            except Exception as exc:  # an object nobody foresaw must not stop the snapshot
                self.invalid_jobs[key] = f"cannot be read: {type(exc).__name__}: {exc}"
                return
            problem = check_job_name(key[1], job.spec.replicas)
            if problem is None:
                pod_spec = template["spec"]
                refused = pod_security_problems(pod_spec, self.policy.pod_security)
                account = service_account_problem(pod_spec, key[0], self.operator_account)
                if account is not None:
                    refused.insert(0, account)
                problem = "; ".join(refused) if refused else None
            if problem is not None:
                self.invalid_jobs[key] = problem
                return
            if parsed is not None:
                self._parsed_specs[key] = self._spec_facts[id(job.spec)] = (job.spec, template, per_replica, shape)
        status = job.status
        placement = status.placement if status else None
        submit = (status.submit_time if status else None) or parse_time(meta.get("creationTimestamp")) or FAR_FUTURE
        annotations = meta.get("annotations")
        generation = (
            _int_or_none(annotations.get(GANG_GENERATION_ANNOTATION)) if isinstance(annotations, Mapping) else None
        )
        info = JobInfo(
            key=key,
            job=job,
            resource_version=str(rv) if rv is not None else None,
            per_replica=per_replica,
            template=template,
            filter_shape=shape,
            submit_time=parse_time(submit) or FAR_FUTURE,
            placement_nodes=tuple(placement.nodes) if placement else (),
            placement_level=placement.level if placement else None,
            placement_domain=placement.domain if placement else None,
            generation=generation or 0,
        )
        self.jobs[key] = info
        if info.placed:
            self._count_placed(info, 1)
            self._reserve(info)

    def remove_job(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._release_reservations(key)
        self._drop_job(key)
        self.invalid_jobs.pop(key, None)
        self.job_objects.pop(key, None)
        self.version += 1

    def _drop_job(self, key: JobKey) -> None:
        info = self.jobs.pop(key, None)
        if info is not None and info.placed:
            self._count_placed(info, -1)

    def _count_placed(self, info: JobInfo, sign: int) -> None:
        queue = info.queue
        held = self._queue_gpus.get(queue, 0) + sign * info.held_gpus
        if held:
            self._queue_gpus[queue] = held
        else:
            self._queue_gpus.pop(queue, None)
        count = self._placed_priorities.get(info.priority, 0) + sign
        if count:
            self._placed_priorities[info.priority] = count
        else:
            del self._placed_priorities[info.priority]

    def _bound_ranks(self, key: JobKey) -> dict[int, str]:
        out: dict[int, str] = {}
        for pod in self.job_pods.get(key, {}).values():
            if pod.rank is not None and pod.node is not None and pod.holds_resources and not pod.terminating:
                out[pod.rank] = pod.node
        return out

    def _reserve(self, info: JobInfo) -> None:
        bound = self._bound_ranks(info.key)
        held: dict[int, str] = {}
        for rank, node in enumerate(info.placement_nodes):
            if bound.get(rank) == node:
                continue
            held[rank] = node
            _add(self._node_used(node), info.per_replica)
            usage = self.node_job_usage.setdefault(node, {}).setdefault(info.key, {})
            _add(usage, info.per_replica)
        if held:
            self.reservations[info.key] = held

    def _release_reservations(self, key: JobKey) -> None:
        held = self.reservations.pop(key, None)
        info = self.jobs.get(key)
        if not held or info is None:
            return
        for node in held.values():
            _add(self._node_used(node), info.per_replica, -1)
            self._subtract_job_usage(node, key, info.per_replica)

    def _drop_reservation(self, job: JobKey, rank: int | None, node: str) -> None:
        held = self.reservations.get(job)
        info = self.jobs.get(job)
        if held is None or info is None or rank is None or held.get(rank) != node:
            return
        del held[rank]
        if not held:
            del self.reservations[job]
        _add(self._node_used(node), info.per_replica, -1)
        self._subtract_job_usage(node, job, info.per_replica)

    def _restore_reservation(self, job: JobKey, rank: int | None, node: str) -> None:
        info = self.jobs.get(job)
        if info is None or rank is None or not info.placed:
            return
        if rank >= len(info.placement_nodes) or info.placement_nodes[rank] != node:
            return
        self.reservations.setdefault(job, {})[rank] = node
        _add(self._node_used(node), info.per_replica)
        _add(self.node_job_usage.setdefault(node, {}).setdefault(job, {}), info.per_replica)

    # --- queries ----------------------------------------------------------------------------------------

    def live_pods(self, key: JobKey) -> list[PodInfo]:
        """The job's pods that still exist (any phase), rank order."""
        pods = list(self.job_pods.get(key, {}).values())
        pods.sort(key=lambda p: (p.rank if p.rank is not None else 1 << 30, p.key))
        return pods

    def job_telemetry(self, key: JobKey, now: datetime, seconds: float) -> JobTelemetry:
        """The telemetry window of the job's bound, unfinished workers (see core/telemetry.py)."""
        workers = [
            Worker(p.key, p.node, p.rank, str(uid) if (uid := _meta(p.obj).get("uid")) else None)
            for p in self.live_pods(key)
            if p.node is not None and p.holds_resources and not p.terminating
        ]
        return job_window(self.history, workers, now, seconds)

    def filter_cache(self, shape: str) -> dict[str, bool]:
        """Per pod shape (its scheduling-relevant fields), which nodes pass the non-resource filters."""
        cache = self._filter_cache.get(shape)
        if cache is None:
            if len(self._filter_cache) >= MAX_CACHED_SHAPES:
                self._filter_cache.clear()  # many one-off shapes: start over rather than grow without bound
            cache = self._filter_cache[shape] = {}
        return cache

    def queue_usage(self) -> dict[str, int]:
        """GPUs held by placed gangs, per queue (a copy: a pass charges its own placements to it)."""
        return dict(self._queue_gpus)

    def lowest_placed_priority(self) -> int | None:
        """The lowest priority of a placed gang (None: none is placed)."""
        return min(self._placed_priorities, default=None)


def filter_shape(template: Mapping[str, Any]) -> str:
    """The fields the non-resource filters read, as a cache key shared by pods that look alike."""
    spec = template.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    relevant = {k: spec.get(k) for k in ("nodeSelector", "affinity", "tolerations")}
    return json.dumps(relevant, sort_keys=True, default=str)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None
