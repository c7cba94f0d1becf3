"""The real `powertrain operator` under stress: gang atomicity under contention, SIGKILL at random points, and
two replicas with kopf peering where only the leader acts."""

from __future__ import annotations

import random
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from powertrain.api import constants as c
from powertrain.controllers.testing import OperatorProcess, training_job, wait_for
from powertrain.core.workload import GANG_GENERATION_ANNOTATION
from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.peering import KOPF_PEERING_CRDS
from powertrain.sandbox.testing import FAST_KUBELET, Kubectl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(nodes=4, gpus_per_node=8, topology="zone=1,spine=1,rack=1", kubelet=FAST_KUBELET)


def all_pods(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [
        p
        for p in sandbox.api("GET", "/api/v1/namespaces/default/pods")["items"]
        if c.JOB_NAME_LABEL in (p["metadata"].get("labels") or {})
    ]


def phases(kubectl: Kubectl) -> dict[str, str]:
    return {j["metadata"]["name"]: (j.get("status") or {}).get("phase", "") for j in kubectl.json("get", "tj")["items"]}


def holds_gpus(pod: dict[str, Any]) -> bool:
    return bool(pod["spec"].get("nodeName")) and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


class GangWatcher(threading.Thread):
    """Samples the pods continuously and records every moment a job's pod was bound while a sibling was missing,
    or a node held more GPUs than it has."""

    def __init__(self, sandbox: Sandbox, replicas: dict[str, int], gpus_per_node: int) -> None:
        super().__init__(daemon=True)
        self.sandbox = sandbox
        self.replicas = replicas
        self.gpus_per_node = gpus_per_node
        self.violations: list[str] = []
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pods = all_pods(self.sandbox)
            self.samples += 1
            by_job: dict[str, list[dict[str, Any]]] = {}
            per_node: dict[str, int] = {}
            for pod in pods:
                by_job.setdefault(pod["metadata"]["labels"][c.JOB_NAME_LABEL], []).append(pod)
                if holds_gpus(pod):
                    limits = pod["spec"]["containers"][0]["resources"]["limits"]
                    node = pod["spec"]["nodeName"]
                    per_node[node] = per_node.get(node, 0) + int(limits[c.GPU_RESOURCE])
            for job, members in by_job.items():
                if any(p["metadata"].get("deletionTimestamp") for p in members):
                    continue  # a gang being stopped releases its GPUs pod by pod, as kubelets finish them
                if any(holds_gpus(p) for p in members) and len(members) < self.replicas[job]:
                    self.violations.append(f"{job}: {len(members)} of {self.replicas[job]} pods, some holding GPUs")
            for node, gpus in per_node.items():
                if gpus > self.gpus_per_node:
                    self.violations.append(f"{node}: {gpus} GPUs held")
            time.sleep(0.02)


def test_contending_gangs_never_hold_gpus_partially_and_all_finish(
    sandbox: Sandbox, kubectl: Kubectl, tmp_path: Path
) -> None:
    # 32 GPUs; each gang needs 24, so they must run one after another.
    jobs = [training_job(f"gang-{i}", replicas=3, gpus=8, level="zone", run_seconds=1) for i in range(5)]
    watcher = GangWatcher(sandbox, {j["metadata"]["name"]: 3 for j in jobs}, gpus_per_node=8)
    watcher.start()
    with OperatorProcess(sandbox.kubeconfig_path, tmp_path / "operator.log") as op:
        kubectl.apply(*jobs)
        try:
            wait_for("every gang succeeded", lambda: set(phases(kubectl).values()) == {"Succeeded"}, timeout=90)
        finally:
            watcher.stop.set()
            watcher.join(5)
            print(op.log_text()[-3000:])
    assert watcher.samples > 20
    assert watcher.violations == []
    failed = [p["metadata"]["name"] for p in all_pods(sandbox) if p["status"].get("phase") == "Failed"]
    assert failed == [], "a kubelet refused a pod: the node was over-committed"


def test_operator_killed_at_random_points_converges_without_duplicates_or_orphans(
    sandbox: Sandbox, kubectl: Kubectl, tmp_path: Path
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    print(f"seed {seed}")
    # More demand than the 32 GPUs: gangs keep being placed while the operator dies, so kills land mid-pass.
    jobs = [
        training_job(f"job-{i}", replicas=rng.choice([1, 2, 3]), gpus=rng.choice([2, 4]), level="zone", run_seconds=1)
        for i in range(20)
    ]
    replicas = {j["metadata"]["name"]: j["spec"]["replicas"] for j in jobs}
    watcher = GangWatcher(sandbox, replicas, gpus_per_node=8)
    watcher.start()
    kubectl.apply(*jobs)
    log = tmp_path / "operator.log"
    try:
        for _ in range(6):
            op = OperatorProcess(sandbox.kubeconfig_path, log).start()
            time.sleep(rng.uniform(0.8, 2.5))  # the process needs ~1 s to start; most kills land mid-pass
            op.kill()
        with OperatorProcess(sandbox.kubeconfig_path, log):
            wait_for("every job succeeded", lambda: set(phases(kubectl).values()) == {"Succeeded"}, timeout=120)
    finally:
        watcher.stop.set()
        watcher.join(5)
    print(log.read_text(errors="replace")[-3000:])
    assert watcher.violations == []
    listed = kubectl.json("get", "tj")["items"]
    assert len(listed) == len(jobs), "a job was lost"
    uids = {j["metadata"]["uid"] for j in listed}
    for pod in all_pods(sandbox):
        owners = {ref["uid"] for ref in pod["metadata"].get("ownerReferences", [])}
        assert owners & uids, f"orphan pod {pod['metadata']['name']}"
    for job in listed:
        name = job["metadata"]["name"]
        generation = job["metadata"]["annotations"][GANG_GENERATION_ANNOTATION]
        members = [p for p in all_pods(sandbox) if p["metadata"]["labels"][c.JOB_NAME_LABEL] == name]
        assert len(members) <= replicas[name], f"{name}: duplicate workers"
        assert {p["metadata"]["labels"][c.GANG_GENERATION_LABEL] for p in members} <= {generation}


def metric(op: OperatorProcess, name: str) -> float | None:
    try:
        text = op.metrics()
    except OSError:
        return None  # not serving yet
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def leader_value(op: OperatorProcess) -> float | None:
    return metric(op, "powertrain_leader")


def passes(op: OperatorProcess) -> float:
    return metric(op, "powertrain_scheduling_passes_total") or 0.0


def test_two_replicas_with_peering_only_the_leader_acts_and_the_other_takes_over(
    sandbox: Sandbox, kubectl: Kubectl, tmp_path: Path
) -> None:
    for crd in KOPF_PEERING_CRDS:
        sandbox.api("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    leader = OperatorProcess(sandbox.kubeconfig_path, tmp_path / "leader.log", peering="e2e", priority=20)
    follower = OperatorProcess(sandbox.kubeconfig_path, tmp_path / "follower.log", peering="e2e", priority=10)
    with leader:
        wait_for("the first replica leading", lambda: leader_value(leader) == 1.0, timeout=30)
        with follower:
            wait_for("the second replica following", lambda: leader_value(follower) == 0.0, timeout=30)
            kubectl.apply(training_job("first", replicas=2, gpus=8, run_seconds=1))
            wait_for("first succeeded", lambda: phases(kubectl).get("first") == "Succeeded", timeout=30)
            assert leader_value(follower) == 0.0
            assert passes(follower) == 0.0, "the follower ran scheduling passes"
            assert passes(leader) > 0
            peers = sandbox.api("GET", "/apis/kopf.dev/v1/clusterkopfpeerings/e2e")["status"]
            assert len(peers) == 2
            leader.kill()
            # After the dead leader's peering lifetime (5 s here) and the takeover delay, the follower acts.
            kubectl.apply(training_job("second", replicas=2, gpus=8, run_seconds=1))
            wait_for("second succeeded under the new leader", lambda: phases(kubectl).get("second") == "Succeeded", 60)
            assert leader_value(follower) == 1.0
            print(follower.log_text()[-2000:])


def test_api_errors_and_dropped_watches_only_slow_the_operator_down(
    sandbox: Sandbox, kubectl: Kubectl, tmp_path: Path
) -> None:
    assert sandbox.server is not None
    faults = sandbox.server.faults
    jobs = [training_job(f"faulty-{i}", replicas=2, gpus=4, level="zone", run_seconds=1) for i in range(6)]
    replicas = {j["metadata"]["name"]: 2 for j in jobs}
    watcher = GangWatcher(sandbox, replicas, gpus_per_node=8)
    with OperatorProcess(sandbox.kubeconfig_path, tmp_path / "operator.log") as op:
        wait_for("the operator acting", lambda: metric(op, "powertrain_leader") == 1.0, timeout=30)
        # One in five writes fails (500, 429 with Retry-After, or a spurious 409), and watches drop every second.
        faults.configure(
            error_rate=0.2,
            codes=(500, 429, 409),
            retry_after_seconds=0,
            verbs={"create", "patch"},  # also hits bindings and the sandbox kubelet's pod status patches
            resources={"trainingjobs.powertrain.dev", "services", "events", "pods"},
            seed=11,
        )
        watcher.start()
        kubectl.apply(*jobs)
        deadline = time.monotonic() + 90
        try:
            while set(phases(kubectl).values()) != {"Succeeded"}:
                assert time.monotonic() < deadline, f"not converged: {phases(kubectl)}"
                faults.drop_watches()
                time.sleep(1.0)
        finally:
            faults.clear()
            watcher.stop.set()
            watcher.join(5)
            print(op.log_text()[-3000:])
        assert faults.injected > 0
    assert watcher.violations == []
    for job in kubectl.json("get", "tj")["items"]:
        assert not job["status"].get("restarts"), f"{job['metadata']['name']} restarted"
