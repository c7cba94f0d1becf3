"""Pod template passthrough: host access is refused while the policy's podSecurity is on (the default), and a
job may never use the operator's own service account, whatever the policy says."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from core_builders import cluster, job, policy, snap

from powertrain.core import conditions as cond
from powertrain.core.lifecycle import decide_all
from powertrain.core.scheduler import schedule

NOW = datetime(2026, 1, 2, tzinfo=UTC)
KEY = ("default", "x")

DANGEROUS = [
    ({"hostNetwork": True}, "spec.template.spec.hostNetwork: true is refused"),
    ({"hostPID": True}, "spec.template.spec.hostPID: true is refused"),
    ({"hostIPC": True}, "spec.template.spec.hostIPC: true is refused"),
    ({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}, "spec.template.spec.volumes[0].hostPath: '/' is"),
    ({"priorityClassName": "system-node-critical"}, "priorityClassName: 'system-node-critical' is refused"),
    (
        {"containers": [{"name": "t", "image": "i", "securityContext": {"privileged": True}}]},
        "spec.template.spec.containers[0].securityContext.privileged: true is refused",
    ),
    (
        {"containers": [{"name": "t", "image": "i", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]},
        "spec.template.spec.containers[0].securityContext.capabilities.add: SYS_ADMIN is refused",
    ),
    (
        {"initContainers": [{"name": "s", "image": "i", "securityContext": {"privileged": True}}]},
        "spec.template.spec.initContainers[0].securityContext.privileged: true is refused",
    ),
    (
        {"containers": [{"name": "t", "image": "i", "ports": [{"containerPort": 80, "hostPort": 80}]}]},
        "spec.template.spec.containers[0].ports[0].hostPort: 80 is refused",
    ),
]


def _run(s: Any) -> dict[str, Any]:
    return {p.key[1]: p for p in decide_all(s, NOW, schedule(s, NOW))}


@pytest.mark.parametrize(("pod_spec", "expected"), DANGEROUS, ids=[str(next(iter(d[0]))) for d in DANGEROUS])
def test_host_access_is_refused_by_default_and_blocks_nobody(pod_spec: dict[str, Any], expected: str) -> None:
    s = snap(cluster(), [job("x", replicas=1, pod_spec=pod_spec), job("other", replicas=1)])
    plans = _run(s)
    assert plans["x"].create_gang is None
    invalid = next(c for c in plans["x"].status.conditions if c.type == cond.INVALID)
    assert expected in invalid.message
    assert plans["other"].create_gang is not None


@pytest.mark.parametrize(("pod_spec", "expected"), DANGEROUS, ids=[str(next(iter(d[0]))) for d in DANGEROUS])
def test_turning_the_switch_off_accepts_them(pod_spec: dict[str, Any], expected: str) -> None:
    s = snap(cluster(), [job("x", replicas=1, pod_spec=pod_spec)], policy=policy(podSecurity={"enforce": False}))
    assert _run(s)["x"].create_gang is not None


def test_allowed_capabilities_extend_the_baseline_set() -> None:
    caps = {"containers": [{"name": "t", "image": "i", "securityContext": {"capabilities": {"add": ["IPC_LOCK"]}}}]}
    s = snap(cluster(), [job("x", replicas=1, pod_spec=caps)])
    assert "IPC_LOCK is refused" in s.invalid_jobs[KEY]
    s.set_policy(policy(podSecurity={"allowedCapabilities": ["IPC_LOCK"]}))
    assert KEY not in s.invalid_jobs, "changing the policy must decide existing jobs again"
    assert _run(s)["x"].create_gang is not None


def test_a_job_may_never_use_the_operators_service_account() -> None:
    sa = {"serviceAccountName": "powertrain-operator"}
    mine = job("x", replicas=1, pod_spec=sa, namespace="powertrain-system")
    same_name_elsewhere = job("y", replicas=1, pod_spec=sa, namespace="team-a")
    s = snap(cluster(), [mine, same_name_elsewhere], policy=policy(podSecurity={"enforce": False}))
    s.set_operator_account("powertrain-system", "powertrain-operator")
    assert "the operator's own service account" in s.invalid_jobs[("powertrain-system", "x")]
    assert ("team-a", "y") in s.jobs  # a service account of that name in another namespace is someone else
    legacy = job("z", replicas=1, pod_spec={"serviceAccount": "powertrain-operator"}, namespace="powertrain-system")
    s.upsert_job(legacy)
    assert "serviceAccount: 'powertrain-operator'" in s.invalid_jobs[("powertrain-system", "z")]
