"""A simulated kubelet for every node of the sandbox, plus the node-lifecycle and pod-GC duties of
kube-controller-manager that only make sense together with it. It is a plain REST client of the API server:
one pod watch and one node watch for all nodes.

A pod whose containers all use Powertrain's own image is handed, once admitted, to `kubelet.runner`
(powertrain.sandbox.process_runner), which runs it as real processes; on deletion the runner stops them within the
grace period. Every other pod is simulated.

What a simulated pod goes through (all status writes are strategic-merge patches of pods/status):

1. Bound to a Ready node (spec.nodeName set): admission. The pod's requests (powertrain.core.predicates'
   pod_requests: containers summed, init containers maxed, a `pods` slot) must fit the node's allocatable
   minus what its admitted, unfinished pods hold; and its nodeSelector/required node affinity must match.
   Otherwise the pod fails as a kubelet fails it: phase Failed, reason `OutOf<resource>` (`OutOfnvidia.com/gpu`,
   `OutOfcpu`, `OutOfpods`) or `NodeAffinity`. Admitted pods are Pending/ContainerCreating at once, holding GPU
   device IDs (the node's lowest free indices, as NVIDIA's device plugin with --device-id-strategy=index) that
   `pod_resources` lists for the per-node pod-resources gRPC servers (sandbox/podresources.py).
2. After `start_delay` seconds: Running, with podIP (from the node's podCIDR), hostIP, containerStatuses
   (running, ready), conditions PodReadyToStartContainers/Initialized/ContainersReady/Ready/PodScheduled.
3. It runs until deleted, or, with the sandbox-only annotation `sandbox.powertrain.dev/run-seconds: "S"`, its
   containers exit after S seconds with `sandbox.powertrain.dev/exit-code` (default 0). restartPolicy decides
   what follows, as in Kubernetes: Never → Succeeded (0) or Failed; OnFailure → Succeeded on 0, else the
   containers restart; Always → they restart. A restart happens after `start_delay` (no crash-loop back-off)
   and bumps restartCount.
4. Deleted (deletionTimestamp set): the containers get the grace period (deletionGracePeriodSeconds, capped
   to `max_grace_seconds`), are then terminated (exit code 143), and the pod is removed with
   DELETE gracePeriodSeconds=0. Finished or rejected pods are removed at once.

Node faults (see ops.py): while a node is not Ready its kubelet counts as down, so nothing on it progresses.
As the node lifecycle controller does, its pods' Ready condition turns False at once, and a pod is evicted
when its toleration of the node.kubernetes.io/not-ready (or /unreachable, for Ready=Unknown) NoExecute taint
runs out: `tolerationSeconds` of a matching toleration, else `not_ready_eviction_seconds` (Kubernetes' default
toleration is 300 s; the sandbox default is shorter). A pod that tolerates the taint without a limit stays.
Eviction here marks the pod Failed (reason `NodeLost`, condition DisruptionTarget/DeletionByTaintManager,
containers terminated as ContainerStatusUnknown) instead of deleting it, so its owner sees why it went;
its resources are released. When the node turns Ready again, its pods carry on where they stopped. When a
node is deleted, the pods bound to it are force-deleted, as pod GC does.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from powertrain.api.constants import GPU_RESOURCE
from powertrain.core.predicates import (
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    node_allocatable,
    node_ready_status,
    node_selector_matches,
    pod_requests,
)
from powertrain.core.quantity import PODS
from powertrain.sandbox.restclient import (
    STRATEGIC_MERGE_PATCH,
    TERMINAL_PHASES,
    Informer,
    Obj,
    RestClient,
    RestError,
    api_path,
    meta_of,
    obj_key,
    phase_of,
    spec_of,
)

if TYPE_CHECKING:
    from powertrain.sandbox.process_runner import ProcessRunner

log = logging.getLogger(__name__)

RUN_SECONDS_ANNOTATION: Final = "sandbox.powertrain.dev/run-seconds"
EXIT_CODE_ANNOTATION: Final = "sandbox.powertrain.dev/exit-code"
SIGTERM_EXIT: Final = 143
DEFAULT_GRACE_SECONDS: Final = 30


def rfc3339(at: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class KubeletConfig:
    """Timings of the simulated kubelet and node lifecycle, in seconds."""

    start_delay: float = 0.2
    max_grace_seconds: float = 2.0
    not_ready_eviction_seconds: float = 30.0

    def __post_init__(self) -> None:
        for name in ("start_delay", "max_grace_seconds", "not_ready_eviction_seconds"):
            value = getattr(self, name)
            if not 0 <= value <= 86_400:
                raise ValueError(f"kubelet {name}: {value!r} is invalid: must lie within 0..86400 seconds")


class Stage(enum.Enum):
    WAITING = "waiting"  # bound, but its node is unknown or not Ready: not admitted yet
    ADMITTED = "admitted"  # holds resources, containers being created
    RUNNING = "running"
    TERMINATING = "terminating"
    DONE = "done"  # rejected, finished, evicted: holds nothing
    REMOVING = "removing"  # DELETE with grace 0 sent


HOLDS_RESOURCES: Final = frozenset({Stage.ADMITTED, Stage.RUNNING, Stage.TERMINATING})


@dataclass
class PodRecord:
    uid: str
    namespace: str
    name: str
    node: str
    stage: Stage = Stage.WAITING
    requests: dict[str, int] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    eviction: asyncio.Task[None] | None = None
    ip: str = ""
    run_started: float | None = None  # monotonic time the current container run began
    restarts: int = 0
    start_time: str = ""
    last_state: Obj | None = None
    devices: tuple[str, ...] = ()
    """GPU device IDs (indices, as NVIDIA's device plugin with --device-id-strategy=index) given at admission."""

    @property
    def path(self) -> str:
        return api_path("pods", self.namespace, self.name)


def run_seconds(pod: Mapping[str, Any]) -> float | None:
    """The sandbox-only run time of the pod's containers; None (run until deleted) when absent or invalid."""
    raw = (meta_of(pod).get("annotations") or {}).get(RUN_SECONDS_ANNOTATION)
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        log.warning("%s=%r on pod %s is not a number; it runs until deleted", RUN_SECONDS_ANNOTATION, raw, obj_key(pod))
        return None
    return max(value, 0.0)


def exit_code(pod: Mapping[str, Any]) -> int:
    raw = (meta_of(pod).get("annotations") or {}).get(EXIT_CODE_ANNOTATION, "0")
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 1


def _containers(pod: Mapping[str, Any], key: str = "containers") -> list[Mapping[str, Any]]:
    items = spec_of(pod).get(key)
    return [c for c in items if isinstance(c, Mapping)] if isinstance(items, list) else []


def _container_status(
    container: Mapping[str, Any], state: Obj, *, ready: bool, restarts: int, last: Obj | None = None
) -> Obj:
    name = str(container.get("name") or "")
    image = str(container.get("image") or "")
    full: Obj = {"waiting": None, "running": None, "terminated": None, **state}
    out: Obj = {
        "name": name,
        "image": image,
        "imageID": f"sandbox://{image}",
        "ready": ready,
        "started": "running" in state,
        "restartCount": restarts,
        "state": full,
        "lastState": last or {},
    }
    if "waiting" not in state:
        out["containerID"] = f"sandbox://{name}-{restarts}"
    return out


def _condition(kind: str, ok: bool, now: str, reason: str | None = None) -> Obj:
    cond: Obj = {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": now, "lastProbeTime": None}
    if reason:
        cond["reason"] = reason
    return cond


def _qos_class(pod: Mapping[str, Any]) -> str:
    containers = _containers(pod)
    limits_all = True
    any_set = False
    for container in containers:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        any_set = any_set or bool(requests) or bool(limits)
        for name in ("cpu", "memory"):
            if name not in limits or (name in requests and requests[name] != limits[name]):
                limits_all = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if limits_all else "Burstable"


def toleration_seconds(pod: Mapping[str, Any], taint_key: str, default: float) -> float | None:
    """How long the pod stays on a node with this NoExecute taint; None means forever."""
    best: float | None = default
    matched = False
    for tol in spec_of(pod).get("tolerations") or []:
        if not isinstance(tol, Mapping):
            continue
        if tol.get("effect") not in (None, "", "NoExecute"):
            continue
        key = tol.get("key") or ""
        if key and key != taint_key:
            continue
        if (tol.get("operator") or "Equal") == "Equal" and key != taint_key:
            continue
        seconds = tol.get("tolerationSeconds")
        if seconds is None:
            return None
        value = max(float(seconds), 0.0)
        best = value if not matched or best is None else max(best, value)
        matched = True
    return best


class Kubelet:
    """All nodes' kubelets in one object, fed by one pod informer and one node informer."""

    def __init__(self, client: RestClient, pods: Informer, nodes: Informer, config: KubeletConfig) -> None:
        self.client = client
        self.pods = pods
        self.nodes = nodes
        self.config = config
        self.records: dict[str, PodRecord] = {}
        self._ip_counter: dict[str, int] = {}
        self._ready: dict[str, bool] = {}
        self._by_node: dict[str, set[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Pods whose image the runner owns run as real processes (powertrain.sandbox.process_runner).
        self.runner: ProcessRunner | None = None
        pods.add_handler(self.on_pod)
        nodes.add_handler(self.on_node)

    # --- bookkeeping -------------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sandbox kubelet task failed", exc_info=task.exception())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.runner is not None:
            await self.runner.close()

    def used(self, node: str) -> dict[str, int]:
        """What the node's admitted, unfinished pods hold."""
        out: dict[str, int] = {}
        for rec in self._on_node(node):
            if rec.stage in HOLDS_RESOURCES:
                for key, amount in rec.requests.items():
                    out[key] = out.get(key, 0) + amount
        return out

    def _allocate_devices(self, rec: PodRecord) -> None:
        """The lowest free GPU indices of the node, as the device manager hands them out at admission."""
        want = rec.requests.get(GPU_RESOURCE, 0)
        taken = {d for other in self._on_node(rec.node) if other.stage in HOLDS_RESOURCES for d in other.devices}
        node = self._node(rec.node)
        try:
            total = node_allocatable(node).get(GPU_RESOURCE, 0) if node is not None else 0
        except ValueError:
            total = 0
        free = [str(i) for i in range(max(total, want)) if str(i) not in taken]
        rec.devices = tuple(free[:want])

    def pod_resources(self, node: str) -> list[tuple[str, str, tuple[str, ...]]]:
        """(namespace, name, GPU device IDs) of the pods holding resources on `node`, as the kubelet's
        pod-resources List answers (pods without devices included)."""
        return [
            (rec.namespace, rec.name, rec.devices)
            for rec in sorted(self._on_node(node), key=lambda r: (r.namespace, r.name))
            if rec.stage in HOLDS_RESOURCES
        ]

    def _node(self, name: str) -> Obj | None:
        return self.nodes.cache.get(name)

    def _pod(self, rec: PodRecord) -> Obj | None:
        return self.pods.cache.get(f"{rec.namespace}/{rec.name}")

    def _replace_task(self, rec: PodRecord, coro: Coroutine[Any, Any, None] | None) -> None:
        if rec.task is not None and rec.task is not asyncio.current_task():
            rec.task.cancel()
        rec.task = self._spawn(coro) if coro is not None else None

    # --- events ------------------------------------------------------------------------------------------

    def on_node(self, kind: str, node: Obj) -> None:
        name = str(meta_of(node).get("name"))
        if kind == "DELETED":
            self._ready.pop(name, None)
            self._spawn(self._collect_pods_of(name))
            return
        ready = node_ready_status(node) == "True"
        was = self._ready.get(name)
        self._ready[name] = ready
        if was == ready:
            return
        if ready:
            self._node_back(name)
        elif was is not None:
            self._node_lost(name, node_ready_status(node))

    def on_pod(self, kind: str, pod: Obj) -> None:
        meta = meta_of(pod)
        uid = str(meta.get("uid") or "")
        if kind == "DELETED":
            rec = self.records.pop(uid, None)
            if self.runner is not None:
                self.runner.forget(uid)
            if rec is not None:
                self._by_node.get(rec.node, set()).discard(uid)
                self._replace_task(rec, None)
                if rec.eviction is not None:
                    rec.eviction.cancel()
            return
        node = str(spec_of(pod).get("nodeName") or "")
        if not node or not uid:
            return
        deleting = bool(meta.get("deletionTimestamp"))
        rec = self.records.get(uid)
        if rec is None:
            rec = PodRecord(uid, str(meta.get("namespace") or "default"), str(meta.get("name")), node)
            self.records[uid] = rec
            self._by_node.setdefault(node, set()).add(uid)
            self._first_sight(rec, pod, admit=not deleting)
        if deleting and rec.stage not in (Stage.TERMINATING, Stage.REMOVING):
            self._begin_termination(rec, pod)

    def _first_sight(self, rec: PodRecord, pod: Obj, *, admit: bool) -> None:
        phase = phase_of(pod)
        if phase in TERMINAL_PHASES:
            rec.stage = Stage.DONE
            return
        if phase == "Running":
            # A pod a previous kubelet started: adopt it, with its resources and remaining run time.
            rec.stage = Stage.RUNNING
            rec.requests = self._requests_or_empty(pod)
            self._allocate_devices(rec)
            status = pod.get("status") or {}
            rec.ip = str(status.get("podIP") or "")
            rec.start_time = str(status.get("startTime") or rfc3339())
            rec.run_started = time.monotonic()
            if self._ready.get(rec.node):
                self._replace_task(rec, self._run(rec))
            return
        if admit and self._ready.get(rec.node):
            self._admit(rec, pod)

    def _requests_or_empty(self, pod: Obj) -> dict[str, int]:
        try:
            return pod_requests(pod)
        except ValueError:
            return {}

    # --- admission and running -----------------------------------------------------------------------------

    def _admit(self, rec: PodRecord, pod: Obj) -> None:
        node = self._node(rec.node)
        if node is None:
            return
        try:
            requests = pod_requests(pod)
        except ValueError as exc:
            self._reject(rec, "UnexpectedAdmissionError", f"Pod was rejected: {exc}")
            return
        if node_selector_matches(pod, node) is not None:
            self._reject(rec, "NodeAffinity", "Pod was rejected: Predicate NodeAffinity failed")
            return
        try:
            allocatable = node_allocatable(node)
        except ValueError:
            allocatable = {}
        used = self.used(rec.node)
        for key in sorted(requests):
            need = requests[key]
            if key == PODS and key not in allocatable:
                continue
            have = allocatable.get(key, 0)
            if need > have - used.get(key, 0):
                self._reject(
                    rec,
                    f"OutOf{key}",
                    f"Pod was rejected: Node didn't have enough resource: {key}, requested: {need}, "
                    f"used: {used.get(key, 0)}, capacity: {have}",
                )
                return
        rec.requests = requests
        self._allocate_devices(rec)
        rec.stage = Stage.ADMITTED
        rec.start_time = rfc3339()
        self._replace_task(rec, self._start(rec))

    def _reject(self, rec: PodRecord, reason: str, message: str) -> None:
        rec.stage = Stage.DONE
        now = rfc3339()
        patch = {
            "status": {
                "phase": "Failed",
                "reason": reason,
                "message": message,
                "startTime": now,
                "hostIP": self._host_ip(rec.node),
                "conditions": [_condition("PodScheduled", True, now)],
            }
        }
        self._replace_task(rec, self._patch_status(rec, patch))

    def _host_ip(self, node_name: str) -> str:
        node = self._node(node_name) or {}
        for address in (node.get("status") or {}).get("addresses") or []:
            if address.get("type") == "InternalIP":
                return str(address.get("address"))
        return "127.0.0.1"

    def _pod_ip(self, node_name: str) -> str:
        node = self._node(node_name) or {}
        cidr = str(spec_of(node).get("podCIDR") or "10.244.0.0/24")
        base = cidr.split("/")[0].rsplit(".", 1)[0]
        count = self._ip_counter.get(node_name, 0)
        self._ip_counter[node_name] = count + 1
        return f"{base}.{2 + count % 253}"

    async def _patch_status(self, rec: PodRecord, patch: Obj) -> None:
        try:
            await self.client.patch(rec.path + "/status", patch, STRATEGIC_MERGE_PATCH, retry_conflicts=True)
        except RestError as exc:
            if exc.code != 404:
                log.warning("status of pod %s/%s not written: %s", rec.namespace, rec.name, exc)

    def _status(self, rec: PodRecord, pod: Obj, phase: str, state: Obj, *, ready: bool, last: Obj | None = None) -> Obj:
        now = rfc3339()
        init_done = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}
        running = phase == "Running" or phase in TERMINAL_PHASES
        status: Obj = {
            "phase": phase,
            "hostIP": self._host_ip(rec.node),
            "hostIPs": [{"ip": self._host_ip(rec.node)}],
            "startTime": rec.start_time,
            "qosClass": _qos_class(pod),
            "conditions": [
                _condition("PodReadyToStartContainers", running, now),
                _condition("Initialized", True, now),
                _condition("Ready", ready, now, None if ready else _not_ready_reason(phase)),
                _condition("ContainersReady", ready, now, None if ready else _not_ready_reason(phase)),
                _condition("PodScheduled", True, now),
            ],
            "containerStatuses": [
                _container_status(c, state, ready=ready, restarts=rec.restarts, last=last) for c in _containers(pod)
            ],
        }
        inits = _containers(pod, "initContainers")
        if inits:
            status["initContainerStatuses"] = [_container_status(c, init_done, ready=False, restarts=0) for c in inits]
        if rec.ip:
            status["podIP"] = rec.ip
            status["podIPs"] = [{"ip": rec.ip}]
        return {"status": status}

    async def _start(self, rec: PodRecord) -> None:
        pod = self._pod(rec)
        if pod is None:
            return
        creating = {"waiting": {"reason": "ContainerCreating"}}
        await self._patch_status(rec, self._status(rec, pod, "Pending", creating, ready=False))
        await asyncio.sleep(self.config.start_delay)
        if self.runner is not None and self.runner.owns(pod):
            await self.runner.run(self, rec)
            return
        await self._run(rec)

    async def _run(self, rec: PodRecord) -> None:
        """Running until the sandbox run time is over (if any), then exit and maybe restart, per restartPolicy."""
        while True:
            pod = self._pod(rec)
            if pod is None:
                return
            if not rec.ip:
                rec.ip = self._pod_ip(rec.node)
            now = rfc3339()
            if rec.stage != Stage.RUNNING or rec.run_started is None:
                rec.stage = Stage.RUNNING
                rec.run_started = time.monotonic()
            await self._patch_status(
                rec, self._status(rec, pod, "Running", {"running": {"startedAt": now}}, ready=True, last=rec.last_state)
            )
            seconds = run_seconds(pod)
            if seconds is None:
                return
            remaining = seconds - (time.monotonic() - rec.run_started)
            if remaining > 0:
                await asyncio.sleep(remaining)
            pod = self._pod(rec) or pod
            code = exit_code(pod)
            policy = str(spec_of(pod).get("restartPolicy") or "Always")
            finished = rfc3339()
            terminated = {
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": now,
                    "finishedAt": finished,
                }
            }
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                rec.stage = Stage.DONE
                phase = "Succeeded" if code == 0 else "Failed"
                await self._patch_status(rec, self._status(rec, pod, phase, terminated, ready=False))
                return
            # Restarted in place, as the kubelet does for Always / OnFailure.
            rec.restarts += 1
            rec.run_started = None
            rec.last_state = terminated
            await asyncio.sleep(self.config.start_delay)

    # --- deletion ------------------------------------------------------------------------------------------

    def _begin_termination(self, rec: PodRecord, pod: Obj) -> None:
        if rec.eviction is not None:
            rec.eviction.cancel()
            rec.eviction = None
        if not self._ready.get(rec.node) and rec.stage != Stage.DONE:
            return  # the node's kubelet is down: the pod stays Terminating until it comes back (or the node goes)
        if rec.stage in (Stage.WAITING, Stage.DONE):
            rec.stage = Stage.REMOVING
            self._replace_task(rec, self._remove(rec))
            return
        rec.stage = Stage.TERMINATING
        meta = meta_of(pod)
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec_of(pod).get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
        try:
            wait = min(float(grace), self.config.max_grace_seconds)
        except (TypeError, ValueError):
            wait = self.config.max_grace_seconds
        self._replace_task(rec, self._terminate(rec, max(wait, 0.0)))

    async def _terminate(self, rec: PodRecord, wait: float) -> None:
        if self.runner is not None and self.runner.has(rec.uid):
            code = await self.runner.stop(rec.uid, wait)
        else:
            await asyncio.sleep(wait)
            code = SIGTERM_EXIT
        pod = self._pod(rec)
        if pod is not None:
            now = rfc3339()
            state = {"terminated": {"exitCode": code, "reason": "Error", "startedAt": now, "finishedAt": now}}
            await self._patch_status(rec, self._status(rec, pod, "Failed", state, ready=False))
        rec.stage = Stage.REMOVING
        await self._remove(rec)

    async def _remove(self, rec: PodRecord) -> None:
        await force_delete(self.client, rec.namespace, rec.name, rec.uid)

    # --- node lifecycle ----------------------------------------------------------------------------------

    def _on_node(self, node: str) -> list[PodRecord]:
        return [self.records[uid] for uid in self._by_node.get(node, ()) if uid in self.records]

    def _node_lost(self, node: str, ready_status: str) -> None:
        taint_key = TAINT_NOT_READY if ready_status == "False" else TAINT_UNREACHABLE
        for rec in self._on_node(node):
            if rec.stage in (Stage.DONE, Stage.REMOVING):
                continue
            self._replace_task(rec, None)  # the kubelet is down: nothing on the node progresses
            pod = self._pod(rec)
            if pod is None or rec.stage == Stage.WAITING:
                continue
            if rec.stage == Stage.RUNNING:
                self._spawn(self._mark_not_ready(rec))
            seconds = toleration_seconds(pod, taint_key, self.config.not_ready_eviction_seconds)
            if seconds is not None:
                rec.eviction = self._spawn(self._evict_after(rec, seconds))

    async def _mark_not_ready(self, rec: PodRecord) -> None:
        now = rfc3339()
        patch = {"status": {"conditions": [_condition("Ready", False, now), _condition("ContainersReady", False, now)]}}
        await self._patch_status(rec, patch)

    async def _evict_after(self, rec: PodRecord, seconds: float) -> None:
        await asyncio.sleep(seconds)
        pod = self._pod(rec)
        rec.eviction = None
        if pod is None or rec.stage in (Stage.DONE, Stage.REMOVING):
            return
        rec.stage = Stage.DONE
        now = rfc3339()
        lost = {
            "terminated": {
                "exitCode": 137,
                "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the pod was terminated",
                "startedAt": rec.start_time or now,
                "finishedAt": now,
            }
        }
        patch = self._status(rec, pod, "Failed", lost, ready=False)
        patch["status"]["reason"] = "NodeLost"
        patch["status"]["message"] = f"Node {rec.node} which was running pod {rec.name} is unresponsive"
        disruption = _condition("DisruptionTarget", True, now, "DeletionByTaintManager")
        disruption["message"] = "Taint manager: deleting due to NoExecute taint"
        patch["status"]["conditions"].append(disruption)
        await self._patch_status(rec, patch)

    def _node_back(self, node: str) -> None:
        for rec in self._on_node(node):
            if rec.eviction is not None:
                rec.eviction.cancel()
                rec.eviction = None
            pod = self._pod(rec)
            if pod is None:
                continue
            if meta_of(pod).get("deletionTimestamp"):
                if rec.stage not in (Stage.TERMINATING, Stage.REMOVING):
                    self._begin_termination(rec, pod)
                elif rec.stage == Stage.TERMINATING and rec.task is None:
                    self._replace_task(rec, self._terminate(rec, 0.0))
                elif rec.stage == Stage.REMOVING and rec.task is None:
                    self._replace_task(rec, self._remove(rec))
                continue
            if rec.stage == Stage.WAITING:
                self._admit(rec, pod)
            elif rec.stage == Stage.ADMITTED:
                self._replace_task(rec, self._start(rec))
            elif rec.stage == Stage.RUNNING:
                self._replace_task(rec, self._run(rec))

    async def _collect_pods_of(self, node: str) -> None:
        """Pod GC: pods bound to a node that no longer exists are force-deleted."""
        for rec in self._on_node(node):
            self._replace_task(rec, None)
            rec.stage = Stage.REMOVING
        for pod in list(self.pods.cache.values()):
            if spec_of(pod).get("nodeName") == node:
                meta = meta_of(pod)
                await force_delete(self.client, str(meta.get("namespace")), str(meta.get("name")), str(meta.get("uid")))


def _not_ready_reason(phase: str) -> str:
    return "PodCompleted" if phase in TERMINAL_PHASES else "ContainersNotReady"


async def force_delete(client: RestClient, namespace: str, name: str, uid: str, attempts: int = 10) -> None:
    """DELETE with grace 0 for this very pod (uid precondition); done when it is gone or replaced by another."""
    path = api_path("pods", namespace, name)
    for _ in range(attempts):
        try:
            await client.delete(path, grace_seconds=0, uid=uid)
            return
        except RestError as exc:
            if exc.code == 404:
                return
            if exc.code != 409:
                log.warning("pod %s/%s not removed: %s", namespace, name, exc)
                return
        # 409: a pod of that name with another uid, or a conflict injected by the sandbox's fault injection.
        try:
            current = await client.get(path)
        except RestError:
            return
        if (current.get("metadata") or {}).get("uid") != uid:
            return
        await asyncio.sleep(0.05)
