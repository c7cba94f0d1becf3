"""Elastic gangs through the real shell (reconciler + applier) over a fake API: grow into idle GPUs, shrink for
an urgent gang instead of being preempted, grow back; survivors are never recreated, no GPU is double-booked."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from test_controller_reconciler import FakeKube, node

from powertrain.api import constants as c
from powertrain.controllers.cache import ClusterCache
from powertrain.controllers.reconciler import Reconciler
from powertrain.controllers.testing import training_job
from powertrain.metrics import OperatorMetrics

T0 = datetime(2026, 1, 1, tzinfo=UTC)
JSON = dict[str, Any]


class World:
    def __init__(self, autoscaling: JSON | None = None) -> None:
        self.kube = FakeKube()
        self.cache = ClusterCache()
        for i in range(4):
            self.cache.upsert("nodes", node(f"n{i}", "r0"))
        self.cache.upsert(
            "policies",
            {
                "apiVersion": c.API_VERSION,
                "kind": "ClusterTrainingPolicy",
                "metadata": {"name": "default", "resourceVersion": "1"},
                "spec": {"autoscaling": autoscaling or {"growAfterIdleSeconds": 60, "cooldownSeconds": 0}},
            },
        )
        self.rec = Reconciler(self.kube, self.cache, OperatorMetrics())  # type: ignore[arg-type]
        self.now = T0
        self.uids: dict[str, str] = {}
        self.events: list[str] = []

    def submit(self, job: JSON) -> None:
        job["metadata"].update(
            uid=f"uid-{job['metadata']['name']}", resourceVersion="10", creationTimestamp=self.now.isoformat()
        )
        self.kube.objects[("trainingjobs", "default", job["metadata"]["name"])] = copy.deepcopy(job)
        self.cache.upsert("jobs", job)

    def job(self, name: str) -> JSON:
        return self.kube.objects[("trainingjobs", "default", name)]

    def pods(self, job: str) -> dict[str, JSON]:
        return {
            n: o
            for (plural, _, n), o in self.kube.objects.items()
            if plural == "pods" and o["metadata"]["labels"][c.JOB_NAME_LABEL] == job
        }

    async def step(self, seconds: float = 1) -> None:
        """One pass, then what the API and kubelet would do: pods run, deleted pods go, the cache catches up."""
        self.now += timedelta(seconds=seconds)
        await self.rec.run_pass(self.now)
        for pod in self.cache.items("pods"):
            meta = pod["metadata"]
            if ("pods", meta["namespace"], meta["name"]) not in self.kube.objects:
                self.cache.delete("pods", pod)
        present = {name for (plural, _, name) in self.kube.objects if plural == "pods"}
        self.uids = {n: u for n, u in self.uids.items() if n in present}  # a deleted rank may come back as a new pod
        used: dict[str, int] = {}
        for (plural, _, name), obj in self.kube.objects.items():
            if plural != "pods":
                continue
            obj.setdefault("status", {}).setdefault("phase", "Running")
            seen = self.uids.setdefault(name, obj["metadata"]["uid"])
            assert seen == obj["metadata"]["uid"], f"{name} was recreated"
            if obj["spec"].get("nodeName") and obj["status"]["phase"] == "Running":
                used[obj["spec"]["nodeName"]] = used.get(obj["spec"]["nodeName"], 0) + 8
            self.cache.upsert("pods", copy.deepcopy(obj))
        assert all(v <= 8 for v in used.values()), f"a GPU is double-booked: {used}"
        for (plural, _, _), obj in self.kube.objects.items():
            if plural == "trainingjobs":
                self.cache.upsert("jobs", copy.deepcopy(obj))

    def scale(self, job: str, replicas: int) -> None:
        """What `kubectl scale` does: spec.replicas through the scale subresource."""
        obj = self.job(job)
        obj["spec"]["replicas"] = replicas
        self.cache.upsert("jobs", self.kube._stamp(obj))

    def count(self, name: str, **labels: str) -> float:
        return self.rec.metrics.registry.get_sample_value(name, labels) or 0.0

    def finish(self, job: str) -> None:
        self.kube.objects[("pods", "default", f"{job}-worker-0")]["status"]["phase"] = "Succeeded"
        for name in list(self.pods(job)):
            self.uids.pop(name, None)


def elastic(name: str, replicas: int, lo: int, hi: int, **kw: Any) -> JSON:
    obj = training_job(name, replicas=replicas, gpus=8, level="rack", **kw)
    obj["spec"]["elastic"] = {"minReplicas": lo, "maxReplicas": hi}
    return obj


async def test_elastic_job_grows_shrinks_for_urgent_and_grows_back_without_recreating_survivors() -> None:
    w = World()
    w.submit(elastic("el", 2, 1, 4))
    w.submit(training_job("other", replicas=2, gpus=8, level="rack"))
    await w.step()
    await w.step()
    assert len(w.pods("el")) == 2
    assert len(w.pods("other")) == 2
    survivors = {n: w.pods("el")[n]["metadata"]["uid"] for n in ("el-worker-0", "el-worker-1")}
    env = {e["name"]: e["value"] for e in w.pods("el")["el-worker-0"]["spec"]["containers"][0]["env"]}
    assert env["PET_NNODES"] == "1:4"
    assert env["PET_RDZV_ENDPOINT"] == "el-worker-0.el:23456"

    w.finish("other")  # its GPUs go idle
    for _ in range(3):
        await w.step(30)
    assert w.job("el")["status"]["placement"]["nodes"].__len__() == 2, "grew before the idle time passed"
    for _ in range(3):
        await w.step(30)
    status = w.job("el")["status"]
    assert len(status["placement"]["nodes"]) == 4
    assert status["lastResize"]["fromReplicas"] == 2
    assert status["lastResize"]["toReplicas"] == 4
    assert status["lastResize"]["reason"].startswith("grew 2→4: 16 GPUs idle for ")
    assert "rack r0" in status["lastResize"]["reason"]
    assert sorted(w.pods("el")) == ["el-worker-0", "el-worker-1", "el-worker-2", "el-worker-3"]
    gen = {p["metadata"]["labels"][c.GANG_GENERATION_LABEL] for p in w.pods("el").values()}
    assert gen == {"1"}, "the new ranks belong to the same gang"
    # A grow is a resize, not a placement: two gangs were placed so far.
    assert w.count("powertrain_placements_total", queue="default") == 2
    assert w.count("powertrain_job_resizes_total", queue="default", direction="grow") == 1
    assert w.count("powertrain_job_resizes_total", queue="default", direction="shrink") == 0

    w.submit(training_job("urgent", replicas=2, gpus=8, level="rack", priority=10))
    for _ in range(4):
        await w.step()
    status = w.job("el")["status"]
    assert status["phase"] == "Running", "the elastic job was preempted instead of shrunk"
    assert len(status["placement"]["nodes"]) == 2
    assert status["lastResize"]["reason"] == "shrank 4→2 for default/urgent (priority 10, queue default)"
    assert sorted(w.pods("el")) == ["el-worker-0", "el-worker-1"]
    assert w.job("urgent")["status"]["phase"] == "Running"
    assert w.count("powertrain_job_resizes_total", queue="default", direction="shrink") == 1
    assert w.count("powertrain_preemptions_total", queue="default") == 0
    assert len(w.pods("urgent")) == 2
    for _ in range(3):
        await w.step(30)
    assert len(w.job("el")["status"]["placement"]["nodes"]) == 2, "grew back into the urgent gang's GPUs"

    w.finish("urgent")
    for _ in range(6):
        await w.step(30)
    status = w.job("el")["status"]
    assert len(status["placement"]["nodes"]) == 4
    assert status["resizes"] == 3
    assert {n: w.pods("el")[n]["metadata"]["uid"] for n in survivors} == survivors
    assert w.count("powertrain_job_resizes_total", queue="default", direction="grow") == 2
    assert w.count("powertrain_placements_total", queue="default") == 3


async def test_kubectl_scale_of_an_elastic_job_resizes_in_place_and_an_external_scaler_is_followed() -> None:
    w = World({"growAfterIdleSeconds": 0, "cooldownSeconds": 0})
    job = elastic("el", 2, 1, 4)
    job["spec"]["elastic"]["scaler"] = "External"
    w.submit(job)
    for _ in range(3):
        await w.step()
    assert len(w.pods("el")) == 2, "the operator grew a job an external autoscaler owns"
    uid0 = w.pods("el")["el-worker-0"]["metadata"]["uid"]
    w.scale("el", 3)
    for _ in range(2):
        await w.step()
    assert sorted(w.pods("el")) == ["el-worker-0", "el-worker-1", "el-worker-2"]
    assert w.job("el")["status"]["desiredReplicas"] == 3
    w.scale("el", 1)
    for _ in range(3):
        await w.step()
    assert sorted(w.pods("el")) == ["el-worker-0"]
    assert w.pods("el")["el-worker-0"]["metadata"]["uid"] == uid0
    assert w.job("el")["status"]["lastResize"]["reason"] == "shrank 3→1: spec.replicas is 1"
    assert w.job("el")["status"]["phase"] == "Running"


async def test_a_non_elastic_job_is_still_re_formed_by_a_scale() -> None:
    w = World()
    w.submit(training_job("fixed", replicas=2, gpus=8, level="rack"))
    for _ in range(2):
        await w.step()
    uid0 = w.pods("fixed")["fixed-worker-0"]["metadata"]["uid"]
    w.scale("fixed", 3)
    w.uids.clear()
    for _ in range(4):
        await w.step()
    assert len(w.pods("fixed")) == 3
    assert w.pods("fixed")["fixed-worker-0"]["metadata"]["uid"] != uid0


async def test_a_max_its_domain_can_never_hold_is_said_once_and_growth_stops_at_what_fits() -> None:
    # Rack r0 holds 4 whole-node workers; the job asks for up to 8 inside one rack.
    w = World({"growAfterIdleSeconds": 0, "cooldownSeconds": 0})
    w.submit(elastic("el", 2, 1, 8, mode="Required"))
    for _ in range(4):
        await w.step()
    status = w.job("el")["status"]
    assert len(status["placement"]["nodes"]) == 4, "did not grow to what the rack holds"
    limited = next(cd for cd in status["conditions"] if cd["type"] == "GrowthLimited")
    assert limited["status"] == "True"
    assert limited["reason"] == "MaxReplicasNeverFit"
    assert limited["message"] == (
        "elastic.maxReplicas 8 can never be reached: rack r0 holds at most 4 workers of 8 NVIDIA-H200 GPUs; "
        "the job grows to 4 at most"
    )
    warned = [o for (plural, _, _), o in w.kube.objects.items() if plural == "events"]
    assert [e["type"] for e in warned if e["reason"] == "MaxReplicasNeverFit"] == ["Warning"]
    # A scale beyond what the rack holds grows to what it holds and is not waited for.
    w.scale("el", 6)
    for _ in range(3):
        await w.step()
    status = w.job("el")["status"]
    assert len(status["placement"]["nodes"]) == 4
    assert status["desiredReplicas"] == 4
    assert status["phase"] == "Running"
    # Nothing changed about the rack: no second warning.
    warned = [o for (plural, _, _), o in w.kube.objects.items() if plural == "events"]
    assert len([e for e in warned if e["reason"] == "MaxReplicasNeverFit"]) == 1
