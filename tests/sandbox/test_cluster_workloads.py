"""The sandbox's workload controllers (powertrain.sandbox.workloads), watched through the API as a user would.

Kubernetes docs followed: "Deployments" → "Creating a Deployment", "Updating a Deployment" (a new ReplicaSet
per template, the old one scaled to zero, pods named after their ReplicaSet), "Scaling a Deployment";
"DaemonSet" → "How Daemon Pods are scheduled" (one pod per eligible node, taints and tolerations, node
affinity on metadata.name); "Jobs" → "Parallel execution for Jobs" and "Pod backoff failure policy";
"StatefulSets" → "Pod Identity" (ordinal names); "Garbage Collection" → "Cascading deletion".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.kubelet import KubeletConfig
from powertrain.sandbox.nodes import NodeSpec
from powertrain.sandbox.testing import wait_for

TAINT = {"key": "dedicated", "value": "infer", "effect": "NoSchedule"}
NODES = [
    NodeSpec(name="a", gpus=8, labels={"pool": "train"}),
    NodeSpec(name="b", gpus=8, labels={"pool": "train"}),
    NodeSpec(name="c", gpus=8, labels={"pool": "train"}, taints=(TAINT,)),
    NodeSpec(name="d", gpus=8, labels={"pool": "eval"}),
]
APPS = "/apis/apps/v1/namespaces/default"
BATCH = "/apis/batch/v1/namespaces/default"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    config = SandboxConfig(node_specs=NODES, kubelet=KubeletConfig(start_delay=0.02, max_grace_seconds=0.2))
    with Sandbox(config) as sandbox:
        yield sandbox


def template(labels: dict[str, str], image: str = "nginx:1", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": image}], **spec}}


def pods(sb: Sandbox, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = sb.api("GET", f"/api/v1/namespaces/default/pods?labelSelector={selector}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or [])


def test_a_deployment_rolls_out_a_new_replicaset_and_scales(sb: Sandbox) -> None:
    body = {
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template({"app": "web"})},
    }
    sb.api("POST", f"{APPS}/deployments", body)

    def available(n: int) -> dict[str, Any] | None:
        d = sb.api("GET", f"{APPS}/deployments/web")
        st = d.get("status") or {}
        done = st.get("availableReplicas") == n and st.get("updatedReplicas") == n and st.get("replicas") == n
        return d if done and st.get("observedGeneration") == d["metadata"]["generation"] else None

    d = wait_for(lambda: available(3), what="web to be available")
    assert {c["type"]: c["status"] for c in d["status"]["conditions"]} == {"Available": "True", "Progressing": "True"}
    (rs,) = sb.api("GET", f"{APPS}/replicasets?labelSelector=app=web")["items"]
    first = {p["metadata"]["name"] for p in pods(sb, "app=web")}
    assert len(first) == 3
    assert all(name.startswith(rs["metadata"]["name"] + "-") for name in first)
    assert all(ready(p) for p in pods(sb, "app=web"))

    # A new template: a second ReplicaSet takes over, the first stays as history with no pods.
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}
    sb.api("PATCH", f"{APPS}/deployments/web", patch, "application/strategic-merge-patch+json")

    def rolled() -> list[dict[str, Any]] | None:
        now = pods(sb, "app=web")
        images = {p["spec"]["containers"][0]["image"] for p in now}
        return now if len(now) == 3 and images == {"nginx:2"} and all(ready(p) for p in now) else None

    assert not {p["metadata"]["name"] for p in wait_for(rolled, what="the rollout")} & first
    wait_for(lambda: available(3), what="web to settle")
    sets = sb.api("GET", f"{APPS}/replicasets?labelSelector=app=web")["items"]
    assert sorted(r["spec"]["replicas"] for r in sets) == [0, 3]
    revisions = sorted(r["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for r in sets)
    assert revisions == ["1", "2"]

    sb.api("PATCH", f"{APPS}/deployments/web/scale", {"spec": {"replicas": 1}}, "application/merge-patch+json")
    wait_for(lambda: len(pods(sb, "app=web")) == 1 or None, what="scale down to 1")
    wait_for(lambda: available(1), what="web at one replica")

    # Background cascading deletion: the ReplicaSets and their pods go with the Deployment.
    sb.api("DELETE", f"{APPS}/deployments/web")
    wait_for(lambda: not sb.api("GET", f"{APPS}/replicasets?labelSelector=app=web")["items"] or None, what="RS GC")
    wait_for(lambda: not pods(sb, "app=web") or None, what="pod GC")


def test_a_daemonset_runs_one_pod_per_eligible_node(sb: Sandbox) -> None:
    body = {
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": template({"app": "agent"}, nodeSelector={"pool": "train"}),
        },
    }
    sb.api("POST", f"{APPS}/daemonsets", body)

    def placed(expected: list[str]) -> list[str] | None:
        nodes = sorted(p["spec"].get("nodeName") or "" for p in pods(sb, "app=agent") if ready(p))
        return nodes if nodes == expected else None

    # Node c is tainted (not tolerated), node d is not in the pool.
    wait_for(lambda: placed(["a", "b"]), what="agents on a and b")
    ds = sb.api("GET", f"{APPS}/daemonsets/agent")
    affinity = pods(sb, "app=agent")[0]["spec"]["affinity"]["nodeAffinity"]
    term = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchFields"][0]["key"] == "metadata.name"
    tolerate = {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}
    patch = {"spec": {"template": {"spec": {"tolerations": [tolerate]}}}}
    sb.api("PATCH", f"{APPS}/daemonsets/agent", patch, "application/merge-patch+json")
    wait_for(lambda: placed(["a", "b", "c"]), what="the agent to tolerate node c")
    ds = wait_for(
        lambda: (
            (d := sb.api("GET", f"{APPS}/daemonsets/agent"))["status"].get("numberReady") == 3
            and d["status"].get("updatedNumberScheduled") == 3
            and d
        ),
        what="daemonset status",
    )
    assert ds["status"]["desiredNumberScheduled"] == 3
    sb.api("DELETE", f"{APPS}/daemonsets/agent")
    wait_for(lambda: not pods(sb, "app=agent") or None, what="agent pods GC")


def test_a_job_runs_its_completions_in_parallel_then_completes(sb: Sandbox) -> None:
    tmpl = template({"job": "batch"}, restartPolicy="Never")
    tmpl["metadata"]["annotations"] = {"sandbox.powertrain.dev/run-seconds": "0.3"}
    sb.api(
        "POST",
        f"{BATCH}/jobs",
        {"metadata": {"name": "batch"}, "spec": {"completions": 4, "parallelism": 2, "template": tmpl}},
    )

    def complete() -> dict[str, Any] | None:
        st = sb.api("GET", f"{BATCH}/jobs/batch").get("status") or {}
        return st if any(c["type"] == "Complete" for c in st.get("conditions") or []) else None

    st = wait_for(complete, timeout=60, what="the job to complete")
    assert st["succeeded"] == 4
    assert "active" not in st
    assert st["completionTime"]


def test_a_job_fails_after_its_backoff_limit(sb: Sandbox) -> None:
    tmpl = template({"job": "flaky"}, restartPolicy="Never")
    tmpl["metadata"]["annotations"] = {
        "sandbox.powertrain.dev/run-seconds": "0.1",
        "sandbox.powertrain.dev/exit-code": "1",
    }
    sb.api("POST", f"{BATCH}/jobs", {"metadata": {"name": "flaky"}, "spec": {"backoffLimit": 1, "template": tmpl}})

    def failed() -> dict[str, Any] | None:
        st = sb.api("GET", f"{BATCH}/jobs/flaky").get("status") or {}
        return next((c for c in st.get("conditions") or [] if c["type"] == "Failed"), None)

    cond = wait_for(failed, timeout=60, what="the job to fail")
    assert cond["reason"] == "BackoffLimitExceeded"
    assert sb.api("GET", f"{BATCH}/jobs/flaky")["status"]["failed"] == 2


def test_a_statefulset_creates_ordinal_pods_in_order(sb: Sandbox) -> None:
    body = {
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 3,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": template({"app": "db"}),
        },
    }
    sb.api("POST", f"{APPS}/statefulsets", body)
    wait_for(
        lambda: (
            sorted(p["metadata"]["name"] for p in pods(sb, "app=db") if ready(p)) == ["db-0", "db-1", "db-2"] or None
        ),
        what="db-0..2",
    )
    assert {p["spec"]["hostname"] for p in pods(sb, "app=db")} == {"db-0", "db-1", "db-2"}
    sb.api("PATCH", f"{APPS}/statefulsets/db", {"spec": {"replicas": 1}}, "application/merge-patch+json")
    wait_for(lambda: [p["metadata"]["name"] for p in pods(sb, "app=db")] == ["db-0"] or None, what="scale to db-0")
