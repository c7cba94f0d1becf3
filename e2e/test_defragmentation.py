"""Defragmentation end to end: a gang that needs a whole node waits while two nodes each have half their GPUs
free; the real operator (policy defragmentation: Act) moves one small gang next to the other, not counted as a
restart, and the blocked gang then starts on the freed node. kubectl watches that no node ever holds more GPUs
than it has, terminating pods included."""

from __future__ import annotations

import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from chaos_support import holds_gpus, pod_gpus
from powertrain.controllers.testing import OperatorProcess, training_job
from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.testing import FAST_KUBELET, Kubectl, wait_for
from test_reschedule import policy, status

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

GPUS_PER_NODE = 8
JOB_LABEL = "powertrain.dev/job-name"


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(nodes=3, gpus_per_node=GPUS_PER_NODE, kubelet=FAST_KUBELET, pod_resources=True)


def gpus_per_node(pods: list[dict[str, Any]]) -> Counter[str]:
    """GPUs held on each node: every bound pod that has not finished, terminating ones included."""
    held: Counter[str] = Counter()
    for pod in pods:
        if holds_gpus(pod):
            held[pod["spec"]["nodeName"]] += pod_gpus(pod)
    return held


class AllocationWatch:
    """Polls `kubectl get pods -o json` in the background and keeps every over-allocated node it saw, and every
    pod the kubelet failed for lack of GPUs."""

    def __init__(self, kubectl: Kubectl) -> None:
        self.kubectl = kubectl
        self.samples = 0
        self.over: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pods = self.kubectl.json("get", "pods", "-A")["items"]
            except (AssertionError, subprocess.TimeoutExpired, ValueError):
                self._stop.wait(0.2)
                continue
            self.samples += 1
            for node, gpus in gpus_per_node(pods).items():
                if gpus > GPUS_PER_NODE:
                    self.over.append(f"{node}: {gpus} GPUs held")
            for pod in pods:
                if "OutOf" in str((pod.get("status") or {}).get("reason", "")):
                    self.over.append(f"pod {pod['metadata']['name']} failed: {pod['status']['reason']}")
            self._stop.wait(0.2)

    def __enter__(self) -> AllocationWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def job_nodes(kubectl: Kubectl) -> dict[str, str]:
    """Job name → the node of its (single) worker pod."""
    pods = kubectl.json("get", "pods", "-l", JOB_LABEL)["items"]
    return {p["metadata"]["labels"][JOB_LABEL]: p["spec"].get("nodeName", "") for p in pods}


def events_for(kubectl: Kubectl, reason: str) -> list[tuple[str, str]]:
    items = kubectl.json("get", "events", "--field-selector", f"reason={reason}")["items"]
    return [(e["involvedObject"]["name"], str(e.get("message", ""))) for e in items]


def running(kubectl: Kubectl, name: str) -> dict[str, Any] | None:
    s = status(kubectl, name)
    return s if s.get("phase") == "Running" and s.get("readyReplicas") == 1 else None


@pytest.fixture
def watch(kubectl: Kubectl) -> Iterator[AllocationWatch]:
    with AllocationWatch(kubectl) as w:
        yield w


def test_a_small_gang_moves_so_a_blocked_whole_node_gang_starts(
    sandbox: Sandbox,
    kubectl: Kubectl,
    agent_processes: list[subprocess.Popen[str]],
    operator: OperatorProcess,
    watch: AllocationWatch,
) -> None:
    defrag = {"mode": "Act", "minWaitSeconds": 5, "gracePeriodSeconds": 1}
    kubectl.apply(policy(straggler="Off", idle="Off", defragmentation=defrag))
    # One 8-GPU gang first, so the four 4-GPU gangs can only pair up on the two other nodes.
    kubectl.apply(training_job("full", gpus=8, run_seconds=900))
    wait_for(lambda: running(kubectl, "full"), timeout=60, what="the 8-GPU gang running")
    small = [f"s{i}" for i in range(4)]
    kubectl.apply(*(training_job(name, gpus=4, run_seconds=900) for name in small))
    for name in small:
        wait_for(lambda n=name: running(kubectl, n), timeout=60, what=f"{name} running")
    placed = job_nodes(kubectl)
    full_node = placed["full"]
    halves = sorted({placed[n] for n in small})
    assert len(halves) == 2, placed
    assert full_node not in halves, placed
    # Finish one small gang on each shared node: each keeps 4 GPUs busy and 4 free, 8 free in all.
    leaving = [next(n for n in small if placed[n] == node) for node in halves]
    kubectl("delete", "tj", *leaving, "--wait=false")
    wait_for(lambda: not set(leaving) & set(job_nodes(kubectl)), timeout=60, what="the finished gangs' pods gone")
    staying = [n for n in small if n not in leaving]

    kubectl.apply(training_job("big", gpus=8, level="node", mode="Required", run_seconds=900))
    wait_for(lambda: any(status(kubectl, n).get("moves") == 1 for n in staying), timeout=60, what="a gang moved")
    moved = next(n for n in staying if status(kubectl, n).get("moves") == 1)
    kept = next(n for n in staying if n != moved)
    from_node, to_node = placed[moved], placed[kept]

    moved_events = events_for(kubectl, "MovedForDefragmentation")
    assert [name for name, _ in moved_events] == [moved]
    assert "to make room for default/big" in moved_events[0][1]
    assert "not counted as a restart" in moved_events[0][1]
    plans = [m for name, m in events_for(kubectl, "WaitingForDefragmentation") if name == "big" and "room" in m]
    assert plans, "the blocked gang was never told about the defragmentation"
    # Fragmentation before/after: none of the node's 4 free GPUs can take an 8-GPU worker, all 8 can after.
    assert f"(4 GPUs: default/{moved}) out of node {from_node}" in plans[0], plans[0]
    assert "go from 0 to 8" in plans[0], plans[0]

    big = wait_for(lambda: running(kubectl, "big"), timeout=60, what="the blocked gang running")
    assert big["placement"]["nodes"] == [from_node]
    after = wait_for(lambda: running(kubectl, moved), timeout=60, what="the moved gang running again")
    assert after["placement"]["nodes"] == [to_node]
    assert after["moves"] == 1
    assert not after.get("restarts"), "a move must not count as a restart"
    assert from_node in [a["node"] for a in after["avoidNodes"]]
    nodes = job_nodes(kubectl)
    assert (nodes[moved], nodes[kept], nodes["big"]) == (to_node, to_node, from_node)
    assert not status(kubectl, kept).get("moves"), "only one gang needed to move"

    watch.stop()
    assert watch.samples > 0
    assert not watch.over, watch.over
