"""The shell writes power-limit requests into NodeTelemetry spec: only changes, creating the object if needed."""

from __future__ import annotations

import asyncio
import copy
import itertools
from typing import Any

from prometheus_client import generate_latest

from powertrain.controllers.cache import ClusterCache
from powertrain.controllers.kube import ApiError, Resource
from powertrain.controllers.power_requests import PowerRequester
from powertrain.core.power import power_limit_changes
from powertrain.core.snapshot import ClusterSnapshot
from powertrain.metrics import OperatorMetrics

JSON = dict[str, Any]


class FakeTelemetryApi:
    """NodeTelemetry objects by name; `create_race` makes the next create find the object already there."""

    def __init__(self, objects: dict[str, JSON] | None = None) -> None:
        self.objects = objects or {}
        self.calls: list[tuple[str, str]] = []
        self.create_race = False
        self.fail: ApiError | None = None
        self._rv = itertools.count(10)

    def _stamp(self, obj: JSON) -> JSON:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        return copy.deepcopy(obj)

    async def merge_patch(self, res: Resource, name: str, patch: JSON, namespace: str | None = None, **_: Any) -> JSON:
        self.calls.append(("patch", name))
        if self.fail is not None:
            raise self.fail
        if name not in self.objects:
            raise ApiError(404, "NotFound", f'nodetelemetries "{name}" not found')
        self.objects[name].setdefault("spec", {}).update(patch["spec"])
        return self._stamp(self.objects[name])

    async def create(self, res: Resource, obj: JSON, namespace: str | None = None) -> JSON:
        name = obj["metadata"]["name"]
        self.calls.append(("create", name))
        if self.create_race:
            self.objects[name] = {"metadata": {"name": name}, "spec": {}}
            raise ApiError(409, "AlreadyExists", f'nodetelemetries "{name}" already exists')
        self.objects[name] = copy.deepcopy(obj)
        return self._stamp(self.objects[name])


def reported(node: str, pods: dict[int, str], limits: dict[str, int] | None = None) -> JSON:
    gpus = [
        {"index": i, "uuid": f"GPU-{node}-{i}", **({"pod": {"namespace": "ml", "name": pods[i]}} if i in pods else {})}
        for i in range(4)
    ]
    spec = {"powerLimits": [{"uuid": u, "watts": w} for u, w in (limits or {}).items()]}
    return {"metadata": {"name": node, "resourceVersion": "1"}, "spec": spec, "status": {"gpus": gpus}}


def capped_world(limits: dict[str, int] | None = None) -> tuple[ClusterSnapshot, JSON]:
    node = {
        "metadata": {"name": "n1", "labels": {}},
        "status": {"allocatable": {"nvidia.com/gpu": "4"}, "conditions": [{"type": "Ready", "status": "True"}]},
    }
    job = {
        "metadata": {"name": "llm", "namespace": "ml", "uid": "u1", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {
            "gpusPerReplica": 2,
            "power": {"capWatts": 450},
            "template": {"spec": {"containers": [{"name": "t", "image": "i"}]}},
        },
        "status": {"phase": "Running", "placement": {"nodes": ["n1"]}},
    }
    pod = {
        "metadata": {"name": "llm-worker-0", "namespace": "ml", "labels": {"powertrain.dev/job-name": "llm"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "t", "resources": {"limits": {"nvidia.com/gpu": 2}}}]},
        "status": {"phase": "Running"},
    }
    report = reported("n1", {0: "llm-worker-0", 1: "llm-worker-0"}, limits)
    return ClusterSnapshot.build(nodes=[node], jobs=[job], pods=[pod], telemetry=[report]), report


def test_a_capped_gang_is_written_once_and_the_cache_sees_the_write() -> None:
    snap, report = capped_world()
    api = FakeTelemetryApi({"n1": copy.deepcopy(report)})
    cache = ClusterCache()
    requester = PowerRequester(api, cache, OperatorMetrics())  # type: ignore[arg-type]

    changes = power_limit_changes(snap)
    assert asyncio.run(requester.apply(changes)) == set()
    assert api.objects["n1"]["spec"]["powerLimits"] == [
        {"uuid": "GPU-n1-0", "watts": 450},
        {"uuid": "GPU-n1-1", "watts": 450},
    ]
    # The next pass applies the cache's view of our own write and finds nothing left to do.
    for obj in cache.drain_changes()["telemetry"].values():
        assert obj is not None
        snap.upsert_telemetry(obj)
    assert power_limit_changes(snap) == {}
    assert api.calls == [("patch", "n1")]


def test_a_missing_object_is_created_with_the_request_and_a_create_race_patches_again() -> None:
    api = FakeTelemetryApi()
    requester = PowerRequester(api, ClusterCache(), OperatorMetrics())  # type: ignore[arg-type]
    assert asyncio.run(requester.apply({"n1": {"GPU-n1-0": 400}})) == set()
    assert api.objects["n1"]["spec"]["powerLimits"] == [{"uuid": "GPU-n1-0", "watts": 400}]

    raced = FakeTelemetryApi()
    raced.create_race = True
    requester = PowerRequester(raced, ClusterCache(), OperatorMetrics())  # type: ignore[arg-type]
    assert asyncio.run(requester.apply({"n2": {"GPU-n2-0": 400}})) == set()
    assert raced.calls == [("patch", "n2"), ("create", "n2"), ("patch", "n2")]
    assert raced.objects["n2"]["spec"]["powerLimits"] == [{"uuid": "GPU-n2-0", "watts": 400}]


def test_withdrawing_from_a_vanished_object_creates_nothing() -> None:
    api = FakeTelemetryApi()
    requester = PowerRequester(api, ClusterCache(), OperatorMetrics())  # type: ignore[arg-type]
    assert asyncio.run(requester.apply({"gone": {}})) == set()
    assert api.calls == [("patch", "gone")]
    assert api.objects == {}


def test_a_failed_write_is_counted_and_reported_for_retry() -> None:
    api = FakeTelemetryApi({"n1": reported("n1", {})})
    api.fail = ApiError(403, "Forbidden", "cannot patch nodetelemetries")
    metrics = OperatorMetrics()
    requester = PowerRequester(api, ClusterCache(), metrics)  # type: ignore[arg-type]
    assert asyncio.run(requester.apply({"n1": {"GPU-n1-0": 400}})) == {"n1"}
    text = generate_latest(metrics.registry).decode()
    assert 'powertrain_reconcile_errors_total{operation="patch_power_limits"} 1.0' in text


async def test_passes_request_a_placed_capped_gangs_gpus_once_and_withdraw_them_when_the_job_goes() -> None:
    from test_controller_reconciler import NOW, setup

    kube, cache, rec, _ = setup(replicas=2)
    job = cache.get("jobs", "default", "train")
    assert job is not None
    job = copy.deepcopy(job)
    job["spec"]["power"] = {"capWatts": 500}
    job["metadata"]["resourceVersion"] = "11"
    kube.objects[("trainingjobs", "default", "train")] = copy.deepcopy(job)
    cache.upsert("jobs", job)
    await rec.run_pass(NOW)
    placed = {p["spec"]["nodeName"]: p["metadata"]["name"] for p in cache.pods_of_job("default", "train")}
    assert len(placed) == 2
    for node, pod in placed.items():  # the agents report which GPUs the workers hold
        gpus = [{"index": i, "uuid": f"GPU-{node}-{i}", "pod": {"namespace": "default", "name": pod}} for i in range(8)]
        report = {"metadata": {"name": node, "resourceVersion": "1"}, "spec": {}, "status": {"gpus": gpus}}
        kube.objects[("nodetelemetries", "", node)] = copy.deepcopy(report)
        cache.upsert("telemetry", report)

    kube.calls.clear()
    await rec.run_pass(NOW)
    assert sorted(c for c in kube.calls if c[1] == "nodetelemetries") == [
        ("patch", "nodetelemetries", n) for n in sorted(placed)
    ]
    for node in placed:
        limits = kube.objects[("nodetelemetries", "", node)]["spec"]["powerLimits"]
        assert limits == [{"uuid": f"GPU-{node}-{i}", "watts": 500} for i in range(8)]

    kube.calls.clear()
    await rec.run_pass(NOW)
    assert [c for c in kube.calls if c[1] == "nodetelemetries"] == []  # nothing changed, nothing written

    cache.delete("jobs", job)  # the job is gone: its GPUs go back to their default limit
    await rec.run_pass(NOW)
    for node in placed:
        assert kube.objects[("nodetelemetries", "", node)]["spec"]["powerLimits"] == []


async def _placed_world(power: dict[str, Any], policy_spec: dict[str, Any] | None = None) -> Any:
    """A placed 2×8-GPU gang whose agents report every GPU drawing 680 W at its 700 W limit."""
    from test_controller_reconciler import NOW, setup

    kube, cache, rec, metrics = setup(replicas=2)
    job = copy.deepcopy(cache.get("jobs", "default", "train"))
    assert job is not None
    job["spec"]["power"] = power
    job["metadata"]["resourceVersion"] = "11"
    kube.objects[("trainingjobs", "default", "train")] = copy.deepcopy(job)
    cache.upsert("jobs", job)
    if policy_spec is not None:
        policy = {"metadata": {"name": "default", "resourceVersion": "1"}, "spec": policy_spec}
        kube.objects[("clustertrainingpolicies", "", "default")] = copy.deepcopy(policy)
        cache.upsert("policies", policy)
    await rec.run_pass(NOW)
    placed = {p["spec"]["nodeName"]: p["metadata"]["name"] for p in cache.pods_of_job("default", "train")}
    for node, pod in placed.items():
        gpus = [
            {
                "index": i,
                "uuid": f"GPU-{node}-{i}",
                "pod": {"namespace": "default", "name": pod},
                "powerWatts": 680.0,
                "powerLimitWatts": 700.0,
                "defaultPowerLimitWatts": 700.0,
                "minPowerLimitWatts": 200.0,
                "maxPowerLimitWatts": 700.0,
                "smClockMhz": 1463.0,
                "tensorActivityPercent": 92.0,
                "smActivityPercent": 95.0,
                "clockEventReasons": ["SwPowerCap"],
            }
            for i in range(8)
        ]
        status = {"timestamp": "2026-01-01T00:00:30Z", "windowSeconds": 20.0, "gpus": gpus}
        report = {"metadata": {"name": node, "resourceVersion": "1"}, "spec": {}, "status": status}
        kube.objects[("nodetelemetries", "", node)] = copy.deepcopy(report)
        cache.upsert("telemetry", report)
    return kube, cache, rec, metrics, placed, NOW


async def test_requests_carry_an_expiry_that_later_passes_renew_before_it_lapses() -> None:
    from datetime import timedelta

    kube, _cache, rec, _, placed, now = await _placed_world({"capWatts": 500})
    await rec.run_pass(now)
    node = next(iter(placed))
    spec = kube.objects[("nodetelemetries", "", node)]["spec"]
    assert spec["powerLimitsExpireAt"] == "2026-01-01T00:01:00Z"
    kube.calls.clear()
    await rec.run_pass(now + timedelta(seconds=20))  # more than half of the minute left: no write
    assert [c for c in kube.calls if c[1] == "nodetelemetries"] == []
    await rec.run_pass(now + timedelta(seconds=40))
    assert kube.objects[("nodetelemetries", "", node)]["spec"]["powerLimitsExpireAt"] == "2026-01-01T00:01:40Z"


async def test_an_efficiency_job_starts_its_search_in_status_and_then_asks_for_a_cap() -> None:
    from datetime import timedelta

    kube, _, rec, _, placed, now = await _placed_world({"mode": "Efficiency"})
    await rec.run_pass(now)
    status = kube.objects[("trainingjobs", "default", "train")]["status"]
    assert status["power"]["state"] == "Baseline"
    assert status["power"]["since"] == "2026-01-01T00:00:00Z"
    # The report window (00:00:10-00:00:30) ran wholly after the baseline began: the first step is taken.
    await rec.run_pass(now + timedelta(seconds=31))
    status = kube.objects[("trainingjobs", "default", "train")]["status"]
    assert status["power"]["state"] == "Exploring"
    assert status["power"]["capWatts"] == 650
    node = next(iter(placed))
    assert {r["watts"] for r in kube.objects[("nodetelemetries", "", node)]["spec"]["powerLimits"]} == {650}


async def test_a_rack_budget_caps_the_gang_and_the_policy_status_says_so() -> None:
    spec = {"power": {"budgetLevel": "rack", "domainWatts": 6000, "nodeOverheadWatts": 500}}
    kube, _, rec, _, placed, now = await _placed_world({"mode": "Performance"}, spec)
    await rec.run_pass(now)
    # Both workers share one rack (the gang is rack-Required): its 16 GPUs share 6000 W − 2 nodes × 500 W.
    limits = [r["watts"] for n in placed for r in kube.objects[("nodetelemetries", "", n)]["spec"]["powerLimits"]]
    assert len(limits) == 16
    assert sum(limits) <= 6000 - 2 * 500
    status = kube.objects[("clustertrainingpolicies", "", "default")]["status"]
    racks = {b["domain"]: b for b in status["budgets"]}
    busy = [b for b in racks.values() if b["drawWatts"] > 6000]
    assert busy
    assert all(b["cappedGpus"] > 0 and b["headroomWatts"] < 0 for b in busy)
    condition = status["conditions"][0]
    assert condition["type"] == "BudgetExceeded"
    assert condition["status"] == "True"
    job = kube.objects[("trainingjobs", "default", "train")]["status"]
    assert job["power"]["budgetCapWatts"] < 700


async def test_a_search_that_ends_without_a_cap_leaves_no_cap_behind_in_status() -> None:
    from datetime import timedelta

    kube, cache, rec, _, placed, now = await _placed_world({"mode": "Efficiency"})
    await rec.run_pass(now)
    await rec.run_pass(now + timedelta(seconds=31))
    assert kube.objects[("trainingjobs", "default", "train")]["status"]["power"]["capWatts"] == 650
    for node in placed:  # at 650 W the clock falls so far that the job is 5.5 % slower: past the 5 % bound
        report = copy.deepcopy(kube.objects[("nodetelemetries", "", node)])
        report["status"]["timestamp"] = "2026-01-01T00:01:10Z"
        report["metadata"]["resourceVersion"] = "100000"
        for g in report["status"]["gpus"]:
            g["smClockMhz"] = 1380.0
        kube.objects[("nodetelemetries", "", node)] = copy.deepcopy(report)
        cache.upsert("telemetry", report)
    await rec.run_pass(now + timedelta(seconds=71))
    power = kube.objects[("trainingjobs", "default", "train")]["status"]["power"]
    assert power["state"] == "Settled", power
    assert power.get("capWatts") is None
    for node in placed:
        assert kube.objects[("nodetelemetries", "", node)]["spec"]["powerLimits"] == []


def test_a_status_patch_removes_nested_fields_the_new_status_no_longer_has() -> None:
    """A merge patch keeps what it does not mention: a cap the search dropped must be sent as null."""
    from powertrain.controllers.reconciler import _with_removals

    old = {"phase": "Running", "power": {"state": "Exploring", "capWatts": 650}, "placement": {"nodes": ["a"]}}
    new = {"phase": "Running", "power": {"state": "Settled"}}
    assert _with_removals(new, old) == {
        "phase": "Running",
        "power": {"state": "Settled", "capWatts": None},
        "placement": None,
    }
