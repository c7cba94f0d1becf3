"""ValidatingAdmissionPolicies evaluated on writes [Validating Admission Policy].

For every create or update, each ValidatingAdmissionPolicyBinding's policy whose `matchConstraints` cover the
request (resourceRules by API group, version, operation and resource — `res`, `res/sub`, `*` — minus
excludeResourceRules; namespaceSelector and objectSelector on labels) is evaluated with the `cel` library:
`matchConditions` first (all must hold, or the policy does not apply), then `variables` (each evaluated once,
in order), then `validations` in order. A validation that is false denies the request with its `message` (or
`messageExpression`) and `reason` (Forbidden → 403, Invalid/unset → 422, others as their code), in the API
server's wording; an expression that fails to evaluate denies the request under `failurePolicy: Fail` and is
ignored under `Ignore`. `validationActions`: Deny refuses, Warn adds a Warning header, Audit is ignored
(no audit log).

CEL sees `request` (operation, userInfo with extras, resource, subResource, kind, name, namespace, dryRun),
`object`, `oldObject`, `variables` and `namespaceObject`. Left out: `params` (policies with paramKind are
refused), the `authorizer` variable, binding `matchResources`, type checking at policy creation, DELETE and
CONNECT operations (only CREATE and UPDATE are evaluated).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import cel

from powertrain.sandbox.authn import current_subresource, current_user
from powertrain.sandbox.errors import ApiError
from powertrain.sandbox.resources import ResourceType
from powertrain.sandbox.selectors import selector_from_match
from powertrain.sandbox.store import Obj, Store

log = logging.getLogger(__name__)

ADM = "admissionregistration.k8s.io"
POLICIES = f"validatingadmissionpolicies.{ADM}"
BINDINGS = f"validatingadmissionpolicybindings.{ADM}"
_REASON_CODES = {"Forbidden": 403, "Invalid": 422, "Unauthorized": 401, "RequestEntityTooLarge": 413}


@lru_cache(maxsize=1024)
def _program(expr: str) -> Any:
    return cel.compile(expr)


def _rule_covers(rule: dict[str, Any], group: str, version: str, op: str, resource: str) -> bool:
    def has(values: list[str] | None, v: str) -> bool:
        return values is not None and ("*" in values or v in values)

    if not has(rule.get("apiGroups"), group) or not has(rule.get("apiVersions"), version):
        return False
    if not has(rule.get("operations"), op):
        return False
    base, _, sub = resource.partition("/")
    for r in rule.get("resources") or []:
        rbase, slash, rsub = r.partition("/")
        if not slash:
            if not sub and rbase in ("*", base):
                return True
        elif sub and rbase in ("*", base) and rsub in ("*", sub):
            return True
    return False


def _bind_variables(decls: list[dict[str, Any]], ctx: dict[str, Any]) -> None:
    """`variables.NAME`, each evaluated once, in the declared order (a later one may use an earlier one).

    The API server evaluates them lazily; evaluating all of them first differs only when a variable fails that
    no validation uses (here that denies the request under failurePolicy Fail)."""
    values: dict[str, Any] = {}
    ctx["variables"] = values
    for d in decls:
        values[d["name"]] = _program(d["expression"]).execute(ctx)


class Admission:
    def __init__(self, store: Store) -> None:
        self.store = store

    def __call__(self, rt: ResourceType, version: str, op: str, obj: Obj, old: Obj | None) -> list[str]:
        """Raise ApiError when a policy denies the write; return Warn-action messages."""
        if not self.store.count(BINDINGS):
            return []
        operation = op.upper()
        sub = current_subresource.get()
        resource = f"{rt.plural}/{sub}" if sub else rt.plural
        warnings: list[str] = []
        for binding in list(self.store.iter(BINDINGS)):
            spec = binding.get("spec") or {}
            policy = self.store.get(POLICIES, "", str(spec.get("policyName") or ""))
            if policy is None:
                continue
            pspec = policy.get("spec") or {}
            if not self._matches(pspec.get("matchConstraints") or {}, rt, version, operation, resource, obj, old):
                continue
            actions = spec.get("validationActions") or []
            denial = self._evaluate(policy, rt, version, operation, sub, obj, old)
            if denial is None:
                continue
            code, reason, message = denial
            text = (
                f"ValidatingAdmissionPolicy '{policy['metadata']['name']}' with binding "
                f"'{binding['metadata']['name']}' denied request: {message}"
            )
            if "Deny" in actions:
                name = obj["metadata"].get("name", "")
                qualified = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
                raise ApiError(
                    code,
                    reason,
                    f'{qualified} "{name}" is forbidden: {text}',
                    details={"name": name, "group": rt.group, "kind": rt.plural} if rt.group else None,
                )
            if "Warn" in actions:
                warnings.append(f"Validation failed for {text}")
        return warnings

    def _matches(
        self,
        mc: dict[str, Any],
        rt: ResourceType,
        version: str,
        op: str,
        resource: str,
        obj: Obj,
        old: Obj | None,
    ) -> bool:
        rules = mc.get("resourceRules") or []
        if not any(_rule_covers(r, rt.group, version, op, resource) for r in rules):
            return False
        if any(_rule_covers(r, rt.group, version, op, resource) for r in mc.get("excludeResourceRules") or []):
            return False
        labels = obj["metadata"].get("labels") or {}
        old_labels = ((old or {}).get("metadata") or {}).get("labels") or {}
        if mc.get("objectSelector"):
            sel = selector_from_match(mc["objectSelector"])
            if not (sel.matches(labels) or (old is not None and sel.matches(old_labels))):
                return False
        ns = obj["metadata"].get("namespace")
        if mc.get("namespaceSelector") and ns:
            nso = self.store.get("namespaces", "", ns)
            if nso is None or not selector_from_match(mc["namespaceSelector"]).matches(
                nso["metadata"].get("labels") or {}
            ):
                return False
        return True

    def _evaluate(
        self,
        policy: Obj,
        rt: ResourceType,
        version: str,
        op: str,
        sub: str,
        obj: Obj,
        old: Obj | None,
    ) -> tuple[int, str, str] | None:
        spec = policy.get("spec") or {}
        fail_closed = spec.get("failurePolicy", "Fail") == "Fail"
        if spec.get("paramKind"):
            return (422, "Invalid", "policies with paramKind are not supported by the sandbox") if fail_closed else None
        user = current_user.get()
        meta = obj["metadata"]
        ns = meta.get("namespace") or ""
        ctx: dict[str, Any] = {
            "request": {
                "operation": op,
                "userInfo": {
                    "username": user.username,
                    "uid": user.uid,
                    "groups": list(user.groups),
                    "extra": {k: list(v) for k, v in user.extra.items()},
                },
                "resource": {"group": rt.group, "version": version, "resource": rt.plural},
                "kind": {"group": rt.group, "version": version, "kind": rt.kind},
                "subResource": sub,
                "name": meta.get("name", ""),
                "namespace": ns,
                "dryRun": False,
            },
            "object": obj,
            "oldObject": old,
            "variables": {},
            "params": None,
            "namespaceObject": self.store.get("namespaces", "", ns) if ns else None,
        }
        try:
            for cond in spec.get("matchConditions") or []:
                if _program(cond["expression"]).execute(ctx) is not True:
                    return None
            _bind_variables(spec.get("variables") or [], ctx)
            for rule in spec.get("validations") or []:
                ok = _program(rule["expression"]).execute(ctx)
                if ok is True:
                    continue
                reason = rule.get("reason") or "Invalid"
                message = rule.get("message") or ""
                if rule.get("messageExpression"):
                    try:
                        message = str(_program(rule["messageExpression"]).execute(ctx))
                    except Exception:  # the static message (or the rule) stands in, as on a real server
                        log.debug("messageExpression failed", exc_info=True)
                if not message:
                    message = f"failed expression: {rule['expression'].strip()}"
                return _REASON_CODES.get(reason, 422), reason, message
        except Exception as exc:
            if not fail_closed:
                return None
            return 422, "Invalid", f"expression evaluation failed: {exc}"
        return None
