"""The real `powertrain operator` on the sandbox: failures, node loss, preemption, suspend/resume, scale."""

from __future__ import annotations

from typing import Any

import pytest

from powertrain.api import constants as c
from powertrain.controllers.testing import OperatorProcess, condition, training_job, wait_for
from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.testing import FAST_KUBELET, Kubectl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    # 2 racks x 4 nodes x 8 GPUs: a rack holds 32 GPUs, the cluster 64.
    return SandboxConfig(nodes=8, gpus_per_node=8, topology="zone=1,spine=1,rack=2", kubelet=FAST_KUBELET)


def status(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return dict(kubectl.json("get", "tj", name).get("status") or {})


def pods(kubectl: Kubectl, name: str) -> list[dict[str, Any]]:
    return list(kubectl.json("get", "pods", "-l", f"{c.JOB_NAME_LABEL}={name}")["items"])


def live_pods(kubectl: Kubectl, name: str) -> list[dict[str, Any]]:
    return [p for p in pods(kubectl, name) if not p["metadata"].get("deletionTimestamp")]


def events(kubectl: Kubectl, name: str) -> str:
    return str(kubectl("get", "events", "--field-selector", f"involvedObject.name={name}").stdout)


def test_failing_gang_restarts_whole_then_fails_at_the_backoff_limit(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(training_job("flaky", replicas=2, gpus=4, run_seconds=0.5, exit_code=3, backoff_limit=1))
    restarted = wait_for("the first gang restart", lambda: (s := status(kubectl, "flaky")).get("restarts") == 1 and s)
    restarting = condition({"status": restarted}, "Restarting")
    assert restarting is not None
    assert "exit code 3" in restarting["message"]
    failed = wait_for("phase Failed", lambda: (s := status(kubectl, "flaky")).get("phase") == "Failed" and s, 60)
    assert failed["restarts"] == 1
    reason = condition({"status": failed}, "Failed")
    assert reason is not None
    assert reason["reason"] == "BackoffLimitExceeded"
    assert "backoffLimit 1" in reason["message"]
    # The last gang's pods stay for their logs, but none holds a GPU any more.
    assert {p["status"]["phase"] for p in pods(kubectl, "flaky")} <= {"Failed", "Succeeded"}
    text = events(kubectl, "flaky")
    assert "PodFailed" in text
    assert "BackoffLimitExceeded" in text


def test_a_lost_node_restarts_the_gang_on_healthy_nodes(
    sandbox: Sandbox, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(training_job("survivor", replicas=2, gpus=8, level="rack", mode="Required", run_seconds=300))
    first = wait_for("survivor running", lambda: (s := status(kubectl, "survivor")).get("readyReplicas") == 2 and s)
    lost = first["placement"]["nodes"][0]
    sandbox.set_node_ready(lost, "False")
    # The node's workers are evicted; the whole gang is restarted (after its backoff) away from the lost node.
    again = wait_for(
        "the gang running again",
        lambda: (s := status(kubectl, "survivor")).get("restarts") == 1 and s.get("readyReplicas") == 2 and s,
        timeout=60,
    )
    assert lost not in again["placement"]["nodes"]
    assert {p["spec"]["nodeName"] for p in live_pods(kubectl, "survivor")} == set(again["placement"]["nodes"])


def test_higher_priority_gang_preempts_a_whole_lower_one_which_requeues(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(training_job("low", replicas=8, gpus=8, level="zone", priority=0, run_seconds=300))
    wait_for("low fills the cluster", lambda: status(kubectl, "low").get("readyReplicas") == 8)
    kubectl.apply(training_job("high", replicas=4, gpus=8, level="rack", mode="Required", priority=100, run_seconds=3))
    wait_for("high running", lambda: status(kubectl, "high").get("phase") == "Running" and live_pods(kubectl, "high"))
    preempted = condition({"status": status(kubectl, "low")}, "Preempted")
    assert preempted is not None
    assert "high" in preempted["message"]
    assert "PreemptedByHigherPriority" in events(kubectl, "low")
    # Preemption is not the job's fault: no restart counted, and it runs again once high is done.
    wait_for("high succeeded", lambda: status(kubectl, "high").get("phase") == "Succeeded", 30)
    back = wait_for("low running again", lambda: (s := status(kubectl, "low")).get("readyReplicas") == 8 and s, 30)
    assert not back.get("restarts")


def test_suspend_releases_the_gpus_and_resume_runs_the_gang_again(kubectl: Kubectl, operator: OperatorProcess) -> None:
    kubectl.apply(training_job("pausable", replicas=2, gpus=8, run_seconds=300))
    wait_for("running", lambda: status(kubectl, "pausable").get("readyReplicas") == 2)
    kubectl("patch", "tj", "pausable", "--type=merge", "-p", '{"spec":{"runPolicy":{"suspend":true}}}')
    suspended = wait_for(
        "suspended with no pods",
        lambda: (s := status(kubectl, "pausable")).get("phase") == "Suspended" and not pods(kubectl, "pausable") and s,
    )
    assert suspended.get("gpus") == 0
    kubectl("patch", "tj", "pausable", "--type=merge", "-p", '{"spec":{"runPolicy":{"suspend":false}}}')
    wait_for("running again", lambda: status(kubectl, "pausable").get("readyReplicas") == 2)
    assert "Resumed" in events(kubectl, "pausable")


def test_kubectl_scale_re_forms_the_gang_at_the_new_size(kubectl: Kubectl, operator: OperatorProcess) -> None:
    kubectl.apply(training_job("elastic", replicas=2, gpus=8, run_seconds=300))
    wait_for("running at 2", lambda: status(kubectl, "elastic").get("readyReplicas") == 2)
    kubectl("scale", "tj/elastic", "--replicas=3")
    scaled = wait_for("running at 3", lambda: (s := status(kubectl, "elastic")).get("readyReplicas") == 3 and s)
    assert len(scaled["placement"]["nodes"]) == 3
    assert len(live_pods(kubectl, "elastic")) == 3
    env = {e["name"]: e["value"] for e in live_pods(kubectl, "elastic")[0]["spec"]["containers"][0]["env"]}
    assert env["WORLD_SIZE"] == "3"
    assert kubectl("get", "tj", "elastic", "-o", "jsonpath={.status.selector}").stdout == f"{c.JOB_NAME_LABEL}=elastic"


def test_deadline_fails_a_running_job_and_ttl_deletes_a_finished_one(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    slow = training_job("slow", replicas=1, gpus=8, run_seconds=300)
    slow["spec"]["runPolicy"] = {"activeDeadlineSeconds": 3}
    brief = training_job("brief", replicas=1, gpus=8, run_seconds=1)
    brief["spec"]["runPolicy"] = {"ttlSecondsAfterFinished": 2}
    kubectl.apply(slow, brief)
    failed = wait_for("slow past its deadline", lambda: (s := status(kubectl, "slow")).get("phase") == "Failed" and s)
    reason = condition({"status": failed}, "Failed")
    assert reason is not None
    assert reason["reason"] == "DeadlineExceeded"
    wait_for("slow's worker stopped", lambda: live_pods(kubectl, "slow") == [] or None)
    wait_for("brief deleted after its TTL", lambda: kubectl("get", "tj", "brief", check=False).returncode != 0)
    assert pods(kubectl, "brief") == []
