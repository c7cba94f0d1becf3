"""The rendered ValidatingAdmissionPolicy, evaluated the way the API server does it (CEL, in order):
an agent writes only its own node's NodeTelemetry, and never the operator-owned spec."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cel
import pytest
from chart_helpers import NAMESPACE, Manifest, by_kind, one, render

NODE_CLAIM = "authentication.kubernetes.io/node-name"


@dataclass(frozen=True)
class Verdict:
    matched: bool
    allowed: bool
    message: str = ""


def admit(policy: Manifest, request: dict[str, Any], obj: Any, old: Any) -> Verdict:
    """Match conditions, then variables, then validations; an error counts as a denial (failurePolicy: Fail)."""
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    ctx: dict[str, Any] = {"request": request, "object": obj, "oldObject": old}
    rules = spec["matchConstraints"]["resourceRules"]
    if not any(request["operation"] in r["operations"] and request["resource"] in r["resources"] for r in rules):
        return Verdict(matched=False, allowed=True)
    if not all(cel.evaluate(c["expression"], ctx) for c in spec["matchConditions"]):
        return Verdict(matched=False, allowed=True)
    variables: dict[str, Any] = {}
    ctx["variables"] = variables
    for v in spec.get("variables", []):
        variables[v["name"]] = cel.evaluate(v["expression"], ctx)
    for rule in spec["validations"]:
        try:
            ok = cel.evaluate(rule["expression"], ctx)
        except Exception as exc:
            return Verdict(matched=True, allowed=False, message=f"error: {exc}")
        if ok is not True:
            message = rule.get("message") or cel.evaluate(rule["messageExpression"], ctx)
            return Verdict(matched=True, allowed=False, message=str(message))
    return Verdict(matched=True, allowed=True)


@pytest.fixture(scope="module")
def policy(helm_bin: Path) -> Manifest:
    manifests = render(helm_bin)
    vap = one(manifests, "ValidatingAdmissionPolicy")
    binding = one(manifests, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == vap["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    return vap


def agent_user(helm_bin: Path) -> str:
    sa = one(render(helm_bin), "ServiceAccount", "agent")["metadata"]["name"]
    return f"system:serviceaccount:{NAMESPACE}:{sa}"


def request(user: str, operation: str, node: str | None, sub: str = "") -> dict[str, Any]:
    extra = {NODE_CLAIM: [node]} if node else {}
    resource = "nodetelemetries/status" if sub else "nodetelemetries"
    return {
        "operation": operation,
        "subResource": sub,
        "resource": resource,
        "userInfo": {"username": user, "extra": extra},
    }


def telemetry(name: str, caps: list[dict[str, Any]] | None = None, status: dict[str, Any] | None = None) -> Manifest:
    return {"metadata": {"name": name}, "spec": {"powerLimits": caps or []}, "status": status or {}}


CAP = [{"uuid": "GPU-1", "watts": 400}]


def test_agent_writes_its_own_nodes_status(policy: Manifest, helm_bin: Path) -> None:
    user = agent_user(helm_bin)
    old = telemetry("gpu-a", CAP)
    new = telemetry("gpu-a", CAP, {"backend": "nvml"})
    assert admit(policy, request(user, "UPDATE", "gpu-a", "status"), new, old).allowed
    assert admit(policy, request(user, "CREATE", "gpu-a"), telemetry("gpu-a"), None).allowed
    assert admit(policy, request(user, "UPDATE", "gpu-a"), telemetry("gpu-a", CAP), old).allowed  # e.g. labels


def test_agent_cannot_write_another_nodes_telemetry(policy: Manifest, helm_bin: Path) -> None:
    user = agent_user(helm_bin)
    verdict = admit(policy, request(user, "UPDATE", "gpu-a", "status"), telemetry("gpu-b"), telemetry("gpu-b"))
    assert verdict.matched
    assert not verdict.allowed
    assert "token is bound to node gpu-a" in verdict.message
    assert "gpu-b" in verdict.message
    assert not admit(policy, request(user, "CREATE", "gpu-a"), telemetry("gpu-b"), None).allowed


def test_token_without_node_claim_is_refused(policy: Manifest, helm_bin: Path) -> None:
    verdict = admit(policy, request(agent_user(helm_bin), "CREATE", None), telemetry("gpu-a"), None)
    assert not verdict.allowed
    assert NODE_CLAIM in verdict.message


def test_agent_cannot_request_power_caps(policy: Manifest, helm_bin: Path) -> None:
    user = agent_user(helm_bin)
    raised = telemetry("gpu-a", [{"uuid": "GPU-1", "watts": 700}])
    verdict = admit(policy, request(user, "UPDATE", "gpu-a"), raised, telemetry("gpu-a", CAP))
    assert not verdict.allowed
    assert "spec" in verdict.message
    assert not admit(policy, request(user, "CREATE", "gpu-a"), telemetry("gpu-a", CAP), None).allowed


def test_operator_and_other_users_are_not_affected(policy: Manifest, helm_bin: Path) -> None:
    operator_sa = one(render(helm_bin), "ServiceAccount", "operator")["metadata"]["name"]
    operator = f"system:serviceaccount:{NAMESPACE}:{operator_sa}"
    verdict = admit(policy, request(operator, "UPDATE", None), telemetry("gpu-a", CAP), telemetry("gpu-a"))
    assert not verdict.matched
    assert verdict.allowed
    assert not admit(policy, request("kubernetes-admin", "UPDATE", None), telemetry("x"), telemetry("x")).matched


def test_policy_can_be_turned_off(helm_bin: Path) -> None:
    manifests = render(helm_bin, None, "agent.nodeRestriction.enabled=false")
    assert not by_kind(manifests, "ValidatingAdmissionPolicy")
    assert not by_kind(manifests, "ValidatingAdmissionPolicyBinding")
