"""The real `powertrain operator` on the sandbox: topology placement, Unschedulable and Invalid jobs."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from powertrain.api import constants as c
from powertrain.controllers.testing import OperatorProcess, condition, training_job, wait_for
from powertrain.sandbox.cluster import SandboxConfig
from powertrain.sandbox.testing import FAST_KUBELET, Kubectl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    # 2 racks x 4 nodes x 8 GPUs: a rack holds 32 GPUs, the cluster 64.
    return SandboxConfig(nodes=8, gpus_per_node=8, topology="zone=1,spine=1,rack=2", kubelet=FAST_KUBELET)


def job(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return dict(kubectl.json("get", "tj", name))


def pods(kubectl: Kubectl, name: str) -> list[dict[str, Any]]:
    return list(kubectl.json("get", "pods", "-l", f"{c.JOB_NAME_LABEL}={name}")["items"])


def test_required_rack_gang_lands_inside_one_rack_with_the_pytorch_env(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(training_job("pretrain", replicas=4, gpus=8, level="rack", mode="Required", run_seconds=60))
    running = wait_for(
        "pretrain Running with 4 ready workers",
        lambda: (j := job(kubectl, "pretrain")).get("status", {}).get("readyReplicas") == 4 and j,
    )
    nodes = {n["metadata"]["name"]: n for n in kubectl.json("get", "nodes")["items"]}
    workers = pods(kubectl, "pretrain")
    assert len(workers) == 4
    racks = {nodes[p["spec"]["nodeName"]]["metadata"]["labels"][c.RACK_LABEL] for p in workers}
    assert len(racks) == 1, f"gang spread over racks {racks}"
    placement = running["status"]["placement"]
    assert placement["level"] == "rack"
    assert placement["domain"] in racks
    assert running["status"]["gpus"] == 32
    env = {e["name"]: e["value"] for e in workers[0]["spec"]["containers"][0]["env"]}
    assert env["WORLD_SIZE"] == "4"
    assert env["PET_NPROC_PER_NODE"] == "8"
    assert env["MASTER_ADDR"] == "pretrain-worker-0.pretrain"
    assert kubectl.json("get", "service", "pretrain")["spec"]["clusterIP"] == "None"
    events = kubectl("get", "events", "--field-selector", "involvedObject.name=pretrain").stdout
    assert "Placed 4×8 GPUs" in events
    # What a platform team scrapes and probes, and logs a collector can parse.
    metrics = operator.metrics()
    assert 'powertrain_placements_total{queue="default"} 1.0' in metrics
    assert 'powertrain_gpus_allocated{model="NVIDIA-H200"} 32.0' in metrics
    assert 'powertrain_queue_wait_seconds_count{queue="default"} 1.0' in metrics
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.liveness_port}/healthz", timeout=5) as resp:
        assert resp.status == 200
    lines = [line for line in operator.log_text().splitlines() if line.strip()]
    assert lines
    assert all(isinstance(json.loads(line), dict) for line in lines)
    assert "rack" in events


def test_impossible_required_gang_says_why_and_creates_nothing(kubectl: Kubectl, operator: OperatorProcess) -> None:
    # 5 x 8 = 40 GPUs can never fit in a 32-GPU rack.
    kubectl.apply(training_job("too-big", replicas=5, gpus=8, level="rack", mode="Required"))
    unschedulable = wait_for(
        "an Unschedulable condition",
        lambda: condition(job(kubectl, "too-big"), "Unschedulable"),
    )
    assert unschedulable["status"] == "True"
    assert "40" in unschedulable["message"], unschedulable["message"]
    assert "32" in unschedulable["message"], unschedulable["message"]
    assert job(kubectl, "too-big")["status"]["phase"] == "Queued"
    assert pods(kubectl, "too-big") == []
    # The same gang allowed to widen runs across both racks.
    kubectl.apply(training_job("widens", replicas=5, gpus=8, level="rack", mode="Preferred", run_seconds=60))
    placed = wait_for("widens placed", lambda: (job(kubectl, "widens").get("status") or {}).get("placement"))
    assert len(placed["nodes"]) == 5
    assert pods(kubectl, "too-big") == []


def test_a_job_name_unusable_as_a_hostname_is_invalid_and_creates_nothing(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(training_job("9lives", replicas=1, gpus=1))
    invalid = wait_for("an Invalid condition", lambda: condition(job(kubectl, "9lives"), "Invalid"))
    assert invalid["status"] == "True"
    assert "metadata.name" in invalid["message"]
    assert pods(kubectl, "9lives") == []


def test_deleting_a_job_tears_its_gang_down(kubectl: Kubectl, operator: OperatorProcess) -> None:
    kubectl.apply(training_job("doomed", replicas=2, gpus=8, run_seconds=120))
    wait_for("doomed running", lambda: len(pods(kubectl, "doomed")) == 2)
    assert "powertrain.dev/teardown" in job(kubectl, "doomed")["metadata"]["finalizers"]
    kubectl("delete", "tj", "doomed", "--wait=true", timeout=60)
    assert pods(kubectl, "doomed") == []
    assert kubectl("get", "tj", "doomed", check=False).returncode != 0
