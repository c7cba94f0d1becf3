"""Elastic jobs on the sandbox with the real operator and kubectl: grow, shrink before preempt, grow back, scale."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from powertrain.api import constants as c
from powertrain.controllers.testing import OperatorProcess, condition, training_job, wait_for
from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.testing import FAST_KUBELET, Kubectl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

GPUS_PER_NODE = 8

# Short guards so a grow follows idle GPUs within seconds (the defaults are minutes).
POLICY = {
    "apiVersion": "powertrain.dev/v1alpha1",
    "kind": "ClusterTrainingPolicy",
    "metadata": {"name": "default"},
    "spec": {
        "autoscaling": {
            "growAfterIdleSeconds": 2,
            "cooldownSeconds": 0,
            "maxResizesPerHour": 60,
            "gracePeriodSeconds": 1,
        }
    },
}


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    # 4 nodes x 8 GPUs in one rack: an elastic job of 1..4 whole-node workers can hold the whole cluster.
    return SandboxConfig(nodes=4, gpus_per_node=GPUS_PER_NODE, topology="zone=1,spine=1,rack=1", kubelet=FAST_KUBELET)


def elastic_job(name: str, *, replicas: int, low: int, high: int, **kw: Any) -> dict[str, Any]:
    manifest = training_job(name, replicas=replicas, gpus=GPUS_PER_NODE, **kw)
    manifest["spec"]["elastic"] = {"minReplicas": low, "maxReplicas": high}
    return manifest


def job(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return dict(kubectl.json("get", "tj", name))


def workers(kubectl: Kubectl, name: str) -> list[dict[str, Any]]:
    items = kubectl.json("get", "pods", "-l", f"{c.JOB_NAME_LABEL}={name}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def running_workers(kubectl: Kubectl, name: str, n: int) -> list[dict[str, Any]] | None:
    live = [p for p in workers(kubectl, name) if (p.get("status") or {}).get("phase") == "Running"]
    return live if len(live) == n and len(workers(kubectl, name)) == n else None


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env") or []}


class PodWatch:
    """`kubectl get pods -w` for the whole test: every version of every pod, checked as it arrives."""

    def __init__(self, kubectl: Kubectl, capacity: dict[str, int]) -> None:
        self.capacity = capacity
        self.pods: dict[str, dict[str, Any]] = {}
        self.uids: dict[str, list[str]] = {}
        self.problems: list[str] = []
        self.proc = subprocess.Popen(
            [*kubectl.argv(), "get", "pods", "-w", "-o", "json", "--output-watch-events"],
            env=kubectl.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        decoder = json.JSONDecoder()
        buffer = ""
        for line in self.proc.stdout:
            buffer += line
            while buffer.strip():
                try:
                    event, end = decoder.raw_decode(buffer.lstrip())
                except ValueError:
                    break
                buffer = buffer.lstrip()[end:]
                self._see(event)

    def _see(self, event: dict[str, Any]) -> None:
        pod = event["object"]
        name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
        seen = self.uids.setdefault(name, [])
        if uid not in seen:
            seen.append(uid)
        if event["type"] == "DELETED":
            self.pods.pop(name, None)
        else:
            self.pods[name] = pod
        self._check_gpus()

    def _check_gpus(self) -> None:
        # A pod holds its node's GPUs from binding until it is gone or finished (terminating pods included).
        held: dict[str, int] = {}
        for pod in self.pods.values():
            node = pod["spec"].get("nodeName")
            if not node or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            limits = pod["spec"]["containers"][0].get("resources", {}).get("limits", {})
            held[node] = held.get(node, 0) + int(limits.get(c.GPU_RESOURCE, 0))
        for node, gpus in held.items():
            if gpus > self.capacity[node]:
                names = sorted(n for n, p in self.pods.items() if p["spec"].get("nodeName") == node)
                self.problems.append(f"{node}: {gpus} GPUs held by {names}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def pod_watch(kubectl: Kubectl, sandbox: Sandbox) -> Iterator[PodWatch]:
    capacity = {n: GPUS_PER_NODE for n in sandbox.node_names}
    watch = PodWatch(kubectl, capacity)
    yield watch
    watch.stop()


def metrics_or_nothing(operator: OperatorProcess) -> str:
    try:
        return operator.metrics()
    except OSError:  # not serving yet
        return ""


def events_of(kubectl: Kubectl, name: str) -> str:
    return str(kubectl("get", "events", "--field-selector", f"involvedObject.name={name}").stdout)


def test_elastic_job_grows_shrinks_for_an_urgent_job_and_grows_back_without_recreating_survivors(
    kubectl: Kubectl, operator: OperatorProcess, pod_watch: PodWatch, tmp_path: Path
) -> None:
    kubectl.apply(POLICY)
    kubectl.apply(training_job("filler", replicas=2, gpus=GPUS_PER_NODE, run_seconds=8))
    wait_for("filler running", lambda: running_workers(kubectl, "filler", 2), timeout=60)
    kubectl.apply(elastic_job("elastic", replicas=2, low=1, high=4, run_seconds=600))
    first = wait_for("elastic running at 2", lambda: running_workers(kubectl, "elastic", 2), timeout=60)
    survivors = {p["metadata"]["name"]: p["metadata"]["uid"] for p in first}

    # The filler finishes: its two nodes stay idle, so the elastic job grows into them.
    grown = wait_for("elastic grown to 4", lambda: running_workers(kubectl, "elastic", 4), timeout=90)
    status = job(kubectl, "elastic")["status"]
    assert status["desiredReplicas"] == 4
    assert status["lastResize"]["fromReplicas"] == 2
    assert status["lastResize"]["toReplicas"] == 4
    assert "idle" in status["lastResize"]["reason"]
    assert len(status["placement"]["nodes"]) == 4
    assert "grew 2→4" in events_of(kubectl, "elastic")

    # An urgent job needs two nodes: the elastic job gives them back (4→2) instead of being preempted whole.
    kubectl.apply(training_job("urgent", replicas=2, gpus=GPUS_PER_NODE, priority=10, run_seconds=8))
    wait_for("urgent running", lambda: running_workers(kubectl, "urgent", 2), timeout=60)
    shrunk = job(kubectl, "elastic")
    assert shrunk["status"]["phase"] == "Running"
    assert len(shrunk["status"]["placement"]["nodes"]) == 2
    assert shrunk["status"]["lastResize"]["toReplicas"] == 2
    assert "default/urgent" in shrunk["status"]["lastResize"]["reason"]
    preempted = condition(shrunk, "Preempted")
    assert preempted is None or preempted["status"] != "True"
    events = events_of(kubectl, "elastic")
    assert "shrank 4→2 for default/urgent" in events
    assert "Preempted" not in events

    # The urgent job ends: the elastic job grows back to 4.
    wait_for("urgent succeeded", lambda: job(kubectl, "urgent").get("status", {}).get("phase") == "Succeeded", 60)
    final = wait_for("elastic grown back to 4", lambda: running_workers(kubectl, "elastic", 4), timeout=90)
    status = job(kubectl, "elastic")["status"]
    assert status["resizes"] == 3
    assert status.get("restarts") in (None, 0)

    # Survivors (ranks 0 and 1) are the very pods first created: never deleted, never recreated.
    now = {p["metadata"]["name"]: p["metadata"]["uid"] for p in final}
    for name, uid in survivors.items():
        assert now[name] == uid
        assert pod_watch.uids[name] == [uid], f"{name} was recreated: {pod_watch.uids[name]}"
    # Ranks 2 and 3 were created by the grow, removed by the shrink, created again by the grow back.
    grown_uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in grown}
    for name in set(now) - set(survivors):
        assert now[name] != grown_uids[name]
        assert len(pod_watch.uids[name]) == 2
    assert pod_watch.problems == [], pod_watch.problems

    # Every pod of the gang has the same elastic rendezvous env, whatever size it joined at.
    uid = job(kubectl, "elastic")["metadata"]["uid"]
    envs = [env_of(p) for p in final]
    assert all(e == envs[0] for e in envs)
    assert envs[0][c.ENV_PET_NNODES] == "1:4"
    assert envs[0][c.ENV_PET_RDZV_ID] == uid
    assert envs[0][c.ENV_PET_RDZV_BACKEND] == "c10d"
    assert envs[0][c.ENV_PET_RDZV_ENDPOINT].startswith("elastic-worker-0.elastic:")
    nodes = [p["spec"]["nodeName"] for p in final]
    assert len(set(nodes)) == 4


def test_an_elastic_job_started_smaller_survives_an_operator_restart_and_kubectl_scale_is_bounded(
    kubectl: Kubectl, operator: OperatorProcess, pod_watch: PodWatch
) -> None:
    kubectl.apply(training_job("filler", replicas=2, gpus=GPUS_PER_NODE, run_seconds=600))
    wait_for("filler running", lambda: running_workers(kubectl, "filler", 2), timeout=60)
    kubectl.apply(elastic_job("elastic", replicas=4, low=1, high=4, run_seconds=600))
    # Only two nodes are free: it starts with the 2 workers that fit instead of waiting for 4.
    first = wait_for("elastic running at 2", lambda: running_workers(kubectl, "elastic", 2), timeout=60)
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in first}
    assert "started with 2 of 4 workers" in events_of(kubectl, "elastic")

    operator.kill()
    operator.start()
    # The new operator takes the smaller gang over as it is: nothing deleted, nothing recreated.
    wait_for(
        "the new operator reconciled the job",
        lambda: 'phase="Running",queue="default",training_job="elastic"} 1.0' in metrics_or_nothing(operator),
        timeout=60,
    )
    status = job(kubectl, "elastic")["status"]
    assert status["phase"] == "Running"
    assert len(status["placement"]["nodes"]) == 2
    assert status.get("restarts") in (None, 0)
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in workers(kubectl, "elastic")} == uids

    # kubectl scale outside [minReplicas, maxReplicas] is refused by the API server, naming the rule; nothing moves.
    too_many = kubectl("scale", "tj", "elastic", "--replicas=5", check=False)
    assert too_many.returncode != 0
    assert "replicas must lie within elastic.minReplicas and elastic.maxReplicas" in too_many.stderr
    assert "spec.replicas" in too_many.stderr
    zero = kubectl("scale", "tj", "elastic", "--replicas=0", check=False)
    assert zero.returncode != 0
    assert "spec.replicas" in zero.stderr
    assert job(kubectl, "elastic")["spec"]["replicas"] == 4

    # Inside the bounds it resizes in place: rank 1 goes, rank 0 stays the same pod.
    kubectl("scale", "tj", "elastic", "--replicas=1")
    left = wait_for("elastic shrunk to 1", lambda: running_workers(kubectl, "elastic", 1), timeout=60)
    assert left[0]["metadata"]["uid"] == uids["elastic-worker-0"]
    status = job(kubectl, "elastic")["status"]
    assert status["lastResize"]["toReplicas"] == 1
    assert "spec.replicas is 1" in status["lastResize"]["reason"]
    assert pod_watch.uids["elastic-worker-0"] == [uids["elastic-worker-0"]]
    assert pod_watch.problems == [], pod_watch.problems


def test_a_fixed_size_job_scaled_past_its_required_domain_says_it_cannot_fit_there(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(training_job("fixed", replicas=2, gpus=GPUS_PER_NODE, level="rack", mode="Required"))
    wait_for("fixed running", lambda: running_workers(kubectl, "fixed", 2), timeout=60)
    # The one rack holds 4 nodes x 8 GPUs = 32; 5 workers x 8 = 40 GPUs can never fit inside it.
    kubectl("scale", "tj", "fixed", "--replicas=5")
    unschedulable = wait_for(
        "an Unschedulable condition",
        lambda: (cd := condition(job(kubectl, "fixed"), "Unschedulable")) and cd["status"] == "True" and cd,
        timeout=60,
    )
    message = unschedulable["message"]
    assert "rack" in message, message
    assert "40" in message, message
    assert "32" in message, message
    assert job(kubectl, "fixed")["status"]["phase"] == "Queued"
    wait_for("the old gang gone", lambda: workers(kubectl, "fixed") == [], timeout=30)
