"""The shell's pass against an in-memory fake API: order of writes, gang atomicity, teardown, idempotence."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from powertrain.api import constants as c
from powertrain.controllers import reconciler
from powertrain.controllers.apply import FINALIZER
from powertrain.controllers.cache import ClusterCache
from powertrain.controllers.kube import ApiError, Resource
from powertrain.controllers.reconciler import Reconciler
from powertrain.controllers.testing import training_job
from powertrain.metrics import OperatorMetrics

NOW = datetime(2026, 1, 1, tzinfo=UTC)
JSON = dict[str, Any]


class FakeKube:
    """Just enough of the API for the applier: objects by (plural, namespace, name), and a log of writes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], JSON] = {}
        self.calls: list[tuple[str, str, str]] = []  # (verb, plural[/sub], name)
        self.fail_bind: set[str] = set()
        self.reject_create: set[str] = set()
        self.forbid_create: set[str] = set()
        self.conflict_create: set[str] = set()
        self._rv = itertools.count(100)
        self._uid = itertools.count(1)

    def _key(self, res: Resource, name: str, namespace: str | None) -> tuple[str, str, str]:
        return (res.plural, namespace or "", name)

    def _stamp(self, obj: JSON) -> JSON:
        obj.setdefault("metadata", {})["resourceVersion"] = str(next(self._rv))
        return copy.deepcopy(obj)

    async def create_or_get(self, res: Resource, obj: JSON, namespace: str | None = None) -> tuple[JSON, bool]:
        key = self._key(res, obj["metadata"]["name"], namespace)
        self.calls.append(("create", res.plural, key[2]))
        if key[2] in self.conflict_create:
            raise ApiError(409, "Conflict", "the object has been modified; please apply your changes")
        if key[2] in self.forbid_create:
            raise ApiError(403, "Forbidden", f'pods "{key[2]}" is forbidden: exceeded quota: gpus')
        if key[2] in self.reject_create:
            raise ApiError(422, "Invalid", f'Pod "{key[2]}" is invalid: spec.containers[0].image: Required value')
        if key in self.objects:
            return copy.deepcopy(self.objects[key]), False
        stored = copy.deepcopy(obj)
        stored["metadata"].setdefault("uid", f"uid-{next(self._uid)}")
        stored["metadata"]["namespace"] = namespace or ""
        self.objects[key] = stored
        return self._stamp(stored), True

    async def create(self, res: Resource, obj: JSON, namespace: str | None = None) -> JSON:
        return (await self.create_or_get(res, obj, namespace))[0]

    async def merge_patch(
        self, res: Resource, name: str, patch: JSON, namespace: str | None = None, *, sub: str | None = None
    ) -> JSON:
        key = self._key(res, name, namespace)
        self.calls.append(("patch", res.plural + (f"/{sub}" if sub else ""), name))
        obj = self.objects[key]
        for field, value in patch.items():
            if field == "metadata":
                for mk, mv in value.items():
                    if mk == "annotations":
                        obj["metadata"].setdefault("annotations", {}).update(mv)
                    elif mk != "resourceVersion":
                        obj["metadata"][mk] = mv
            else:
                obj[field] = {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value
        return self._stamp(obj)

    async def delete(self, res: Resource, name: str, namespace: str | None = None, **_: Any) -> bool:
        self.calls.append(("delete", res.plural, name))
        return self.objects.pop(self._key(res, name, namespace), None) is not None

    async def bind(self, namespace: str, pod: str, node: str, uid: str | None = None) -> None:
        self.calls.append(("bind", "pods", pod))
        if pod in self.fail_bind:
            raise ApiError(500, "InternalError", "node is on fire")
        self.objects[("pods", namespace, pod)]["spec"]["nodeName"] = node

    async def list(self, res: Resource, namespace: str | None = None, **_: Any) -> list[JSON]:
        return [copy.deepcopy(o) for (plural, _, _), o in self.objects.items() if plural == res.plural]

    def writes(self) -> list[tuple[str, str, str]]:
        return [call for call in self.calls if call[1] != "events"]


def node(name: str, rack: str) -> JSON:
    return {
        "metadata": {"name": name, "uid": f"node-{name}", "resourceVersion": "1",
                     "labels": {c.HOSTNAME_LABEL: name, c.RACK_LABEL: rack, c.GPU_PRODUCT_LABEL: "NVIDIA-H200"}},
        "status": {"allocatable": {"cpu": "64", "memory": "512Gi", "pods": "110", c.GPU_RESOURCE: "8"},
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }  # fmt: skip


def setup(replicas: int = 2) -> tuple[FakeKube, ClusterCache, Reconciler, OperatorMetrics]:
    kube = FakeKube()
    cache = ClusterCache()
    metrics = OperatorMetrics()
    for i in range(4):
        cache.upsert("nodes", node(f"n{i}", "r0" if i < 2 else "r1"))
    job = training_job("train", replicas=replicas, gpus=8, level="rack", mode="Required")
    job["metadata"].update(uid="job-uid", resourceVersion="10", creationTimestamp="2026-01-01T00:00:00Z")
    kube.objects[("trainingjobs", "default", "train")] = copy.deepcopy(job)
    cache.upsert("jobs", job)
    return kube, cache, Reconciler(kube, cache, metrics), metrics  # type: ignore[arg-type]


async def test_a_placed_gang_is_created_whole_then_bound_then_reported() -> None:
    kube, _cache, rec, metrics = setup()
    await rec.run_pass(NOW)
    writes = kube.writes()
    kinds = [(verb, plural) for verb, plural, _ in writes]
    first_bind = kinds.index(("bind", "pods"))
    assert kinds.count(("create", "pods")) == 2
    assert max(i for i, k in enumerate(kinds) if k == ("create", "pods")) < first_bind  # every pod exists first
    assert kinds.index(("patch", "trainingjobs/status")) > max(i for i, k in enumerate(kinds) if k[0] == "bind")
    job = kube.objects[("trainingjobs", "default", "train")]
    assert FINALIZER in job["metadata"]["finalizers"]
    assert job["status"]["phase"] == "Running"
    nodes = job["status"]["placement"]["nodes"]
    assert len(set(nodes)) == 2
    assert {kube.objects[("pods", "default", f"train-worker-{r}")]["spec"]["nodeName"] for r in (0, 1)} == set(nodes)
    assert any(call == ("create", "events", call[2]) for call in kube.calls)
    assert metrics.placements.labels("default")._value.get() == 1


async def test_a_failed_bind_deletes_the_whole_gang_and_reports_nothing_running() -> None:
    kube, _cache, rec, metrics = setup()
    kube.fail_bind = {"train-worker-1"}
    await rec.run_pass(NOW)
    assert not any(key[0] == "pods" for key in kube.objects), "a partial gang was left behind"
    assert ("delete", "pods", "train-worker-0") in kube.calls
    job = kube.objects[("trainingjobs", "default", "train")]
    assert (job.get("status") or {}).get("phase") != "Running"
    assert metrics.reconcile_errors.labels("bind_pod")._value.get() == 1


async def test_passes_converge_to_no_writes_at_all() -> None:
    kube, _cache, rec, _ = setup()
    for step in range(3):
        await rec.run_pass(NOW + timedelta(seconds=step))
    kube.calls.clear()
    await rec.run_pass(NOW + timedelta(seconds=3))
    assert kube.writes() == []


async def test_a_deleted_job_loses_its_pods_before_its_finalizer() -> None:
    kube, cache, rec, _ = setup()
    await rec.run_pass(NOW)
    job = copy.deepcopy(kube.objects[("trainingjobs", "default", "train")])
    job["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:05Z"
    job["metadata"]["resourceVersion"] = "100000"
    cache.upsert("jobs", job)
    kube.calls.clear()
    await rec.run_pass(NOW + timedelta(seconds=5))
    assert {call[2] for call in kube.calls if call[:2] == ("delete", "pods")} == {"train-worker-0", "train-worker-1"}
    assert FINALIZER in kube.objects[("trainingjobs", "default", "train")]["metadata"]["finalizers"]
    for rank in (0, 1):
        cache.delete("pods", {"metadata": {"name": f"train-worker-{rank}", "namespace": "default"}})
    await rec.run_pass(NOW + timedelta(seconds=6))
    assert FINALIZER not in kube.objects[("trainingjobs", "default", "train")]["metadata"]["finalizers"]


async def test_pods_that_do_not_fit_anywhere_are_never_created() -> None:
    kube, _cache, rec, _ = setup(replicas=3)  # Required rack, but a rack has 2 nodes
    await rec.run_pass(NOW)
    assert not any(key[0] == "pods" for key in kube.objects)
    status = kube.objects[("trainingjobs", "default", "train")]["status"]
    unschedulable = next(cond for cond in status["conditions"] if cond["type"] == "Unschedulable")
    assert "24" in unschedulable["message"]
    assert status["phase"] == "Queued"


async def test_pods_the_api_server_rejects_fail_the_job_with_its_message_once() -> None:
    kube, _cache, rec, _ = setup()
    kube.reject_create = {"train-worker-1"}
    await rec.run_pass(NOW)
    assert not any(key[0] == "pods" for key in kube.objects), "the accepted pod of the gang was left behind"
    status = kube.objects[("trainingjobs", "default", "train")]["status"]
    assert status["phase"] == "Failed"
    assert "spec.containers[0].image: Required value" in status["message"]
    kube.calls.clear()
    await rec.run_pass(NOW + timedelta(seconds=1))
    assert not any(verb == "create" and plural == "pods" for verb, plural, _ in kube.calls), "it retried"


async def test_a_failing_pod_create_is_retried_with_backoff_a_condition_and_an_event() -> None:
    kube, _cache, rec, _ = setup()
    kube.forbid_create = {"train-worker-1"}
    await rec.run_pass(NOW)
    creates = [call for call in kube.calls if call[:2] == ("create", "pods")]
    assert creates, "the gang was never tried"
    assert not any(key[0] == "pods" for key in kube.objects), "a partial gang was left behind"
    kube.calls.clear()
    for second in range(1, 9):  # the shell runs a pass every second or on any change: none may retry yet
        await rec.run_pass(NOW + timedelta(seconds=second))
    assert not any(call[:2] == ("create", "pods") for call in kube.calls), "retried in a tight loop"
    status = kube.objects[("trainingjobs", "default", "train")]["status"]
    unschedulable = next(c for c in status["conditions"] if c["type"] == "Unschedulable")
    assert unschedulable["reason"] == "PodCreateFailed"
    assert "exceeded quota: gpus" in unschedulable["message"]
    assert status["phase"] == "Queued"
    events = [o for (plural, _, _), o in kube.objects.items() if plural == "events"]
    assert any(e.get("reason") == "PodCreateFailed" for e in events)
    kube.forbid_create = set()
    await rec.run_pass(NOW + timedelta(seconds=11))
    assert kube.objects[("trainingjobs", "default", "train")]["status"]["phase"] == "Running"


async def test_the_operators_service_account_comes_from_its_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "default")
    monkeypatch.setenv("POWERTRAIN_SERVICE_ACCOUNT", "powertrain-operator")
    kube, cache, _rec, metrics = setup()
    job = copy.deepcopy(kube.objects[("trainingjobs", "default", "train")])
    job["spec"]["template"]["spec"]["serviceAccountName"] = "powertrain-operator"
    kube.objects[("trainingjobs", "default", "train")] = copy.deepcopy(job)
    cache.upsert("jobs", job)
    rec = Reconciler(kube, cache, metrics)  # type: ignore[arg-type]
    await rec.run_pass(NOW)
    assert not any(key[0] == "pods" for key in kube.objects)
    status = kube.objects[("trainingjobs", "default", "train")]["status"]
    assert "the operator's own service account" in status["message"]


async def test_a_job_whose_pods_cannot_be_rendered_is_set_aside_and_others_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube, cache, rec, metrics = setup(replicas=1)
    other = training_job("other", replicas=1, gpus=8)
    other["metadata"].update(uid="other-uid", resourceVersion="11", creationTimestamp="2026-01-01T00:00:00Z")
    kube.objects[("trainingjobs", "default", "other")] = copy.deepcopy(other)
    cache.upsert("jobs", other)
    real = reconciler.render_gang

    def render(job: Any, *args: Any) -> Any:
        if job.metadata["name"] == "train":
            raise OverflowError("date value out of range")
        return real(job, *args)

    monkeypatch.setattr(reconciler, "render_gang", render)
    await rec.run_pass(NOW)
    assert ("pods", "default", "other-worker-0") in kube.objects
    assert ("pods", "default", "train-worker-0") not in kube.objects
    status = kube.objects[("trainingjobs", "default", "train")]["status"]
    invalid = next(c for c in status["conditions"] if c["type"] == "Invalid")
    assert invalid["reason"] == "EvaluationFailed"
    assert "OverflowError: date value out of range" in invalid["message"]
    assert metrics.reconcile_errors.labels("translate")._value.get() == 1
    assert metrics.reconcile_errors.labels("evaluate")._value.get() == 1


async def test_a_transient_create_failure_is_retried_soon_then_less_and_less_often() -> None:
    kube, _cache, rec, _ = setup()
    kube.conflict_create = {"train-worker-0"}
    tries: list[float] = []
    for tenth in range(0, 200, 5):  # passes every half second for 20 s
        before = sum(1 for call in kube.calls if call == ("create", "pods", "train-worker-0"))
        await rec.run_pass(NOW + timedelta(seconds=tenth / 10))
        if sum(1 for call in kube.calls if call == ("create", "pods", "train-worker-0")) > before:
            tries.append(tenth / 10)
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert tries[:2] == [0.0, 1.0]  # a conflict is tried again after 1 s, not after a restart's 10 s
    assert gaps == sorted(gaps)
    assert gaps[-1] >= 8  # 1, 2, 4, 8 s …: never a tight loop
    status = kube.objects[("trainingjobs", "default", "train")]["status"]
    assert next(c for c in status["conditions"] if c["type"] == "Unschedulable")["reason"] == "PodCreateFailed"
    kube.conflict_create = set()
    await rec.run_pass(NOW + timedelta(seconds=60))
    assert kube.objects[("trainingjobs", "default", "train")]["status"]["phase"] == "Running"


def _idle_report(node: str, pod: str, at: datetime) -> JSON:
    gpus = [
        {"index": i, "uuid": f"GPU-{node}-{i}", "smActivityPercent": 0.5, "pod": {"namespace": "default", "name": pod}}
        for i in range(8)
    ]
    return {"metadata": {"name": node, "resourceVersion": at.isoformat()},
            "status": {"timestamp": at.isoformat(), "windowSeconds": 20, "gpus": gpus}}  # fmt: skip


async def test_an_idle_gang_under_idle_act_gets_its_verdict_metrics_and_is_suspended_through_its_spec() -> None:
    kube, cache, rec, metrics = setup()
    policy = {"metadata": {"name": "default", "resourceVersion": "1"},
              "spec": {"rescheduling": {"idle": "Act", "idleWindowSeconds": 60}}}  # fmt: skip
    cache.upsert("policies", policy)
    await rec.run_pass(NOW)
    nodes = kube.objects[("trainingjobs", "default", "train")]["status"]["placement"]["nodes"]
    now = NOW
    for _ in range(6):
        now += timedelta(seconds=20)
        for rank, name in enumerate(nodes):
            cache.upsert("telemetry", _idle_report(name, f"train-worker-{rank}", now))
        await rec.run_pass(now)
        if "runPolicy" in kube.objects[("trainingjobs", "default", "train")]["spec"]:
            break
    job = kube.objects[("trainingjobs", "default", "train")]
    assert job["spec"]["runPolicy"] == {"suspend": True}
    idle = next(c for c in job["status"]["conditions"] if c["type"] == "Idle")
    assert idle["reason"] == "IdleSuspended"
    assert metrics.reschedules.labels("default", "IdleSuspended")._value.get() == 1
    assert metrics.job_efficiency.labels("default", "train", "Idle")._value.get() == 1
