"""RBAC authorization as the API server evaluates it [Using RBAC Authorization].

A request is allowed when any rule of any role bound to the user (by name, or one of its groups, or as a
ServiceAccount subject) covers it: ClusterRoleBindings grant everywhere, RoleBindings in their namespace only
(to a Role of that namespace or a ClusterRole). Rules match on verb, API group, resource (`res`, `res/sub`,
`*`, `*/sub`), resourceNames (when given, only requests naming one of them match: never list, watch or
create) and nonResourceURLs (exact, or a prefix ending in `*`). Aggregated ClusterRoles [Aggregated
ClusterRoles] get the union of the rules of the ClusterRoles their `aggregationRule` selects, evaluated when
checked and written back into `rules` by the aggregation controller (powertrain.sandbox.workloads).

`system:masters` (the kubeconfig's admin) is allowed everything without a rule, as the real server's
superuser group. Bootstrap roles: cluster-admin, system:discovery, system:basic-user,
system:public-info-viewer, and view/edit/admin aggregated from `aggregate-to-*` labels (their base rules
cover the core kinds only).

Denials read as the API server's: `pods is forbidden: User "system:serviceaccount:ns:sa" cannot list resource
"pods" in API group "" at the cluster scope`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from powertrain.sandbox.authn import UserInfo
from powertrain.sandbox.errors import ApiError
from powertrain.sandbox.selectors import LabelSelector, selector_from_match
from powertrain.sandbox.store import Obj, Store

RBAC = "rbac.authorization.k8s.io"
ROLES = f"roles.{RBAC}"
CLUSTER_ROLES = f"clusterroles.{RBAC}"
ROLE_BINDINGS = f"rolebindings.{RBAC}"
CLUSTER_ROLE_BINDINGS = f"clusterrolebindings.{RBAC}"
RBAC_KEYS = frozenset({ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS})


@dataclass(frozen=True)
class Attributes:
    """What a request does, as the authorizer sees it (`path` set for non-resource requests)."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource(self) -> bool:
        return not self.path


def _covers(values: list[str], value: str) -> bool:
    return "*" in values or value in values


def _resource_matches(resources: list[str], resource: str, sub: str) -> bool:
    combined = f"{resource}/{sub}" if sub else resource
    for r in resources:
        if r == "*" or r == combined:
            return True
        if sub and r == f"*/{sub}":
            return True
    return False


def _url_matches(urls: list[str], path: str) -> bool:
    return any(u == "*" or u == path or (u.endswith("*") and path.startswith(u[:-1])) for u in urls)


def rule_allows(rule: dict[str, Any], a: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if not _covers(verbs, a.verb):
        return False
    if not a.is_resource:
        return _url_matches(rule.get("nonResourceURLs") or [], a.path)
    if not _covers(rule.get("apiGroups") or [], a.group):
        return False
    if not _resource_matches(rule.get("resources") or [], a.resource, a.subresource):
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


def _subject_matches(subject: dict[str, Any], user: UserInfo, binding_ns: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return bool(subject.get("name") == user.username)
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        return user.username == f"system:serviceaccount:{ns}:{subject.get('name')}"
    return False


class Authorizer:
    """Evaluates RBAC objects straight from the store; resolved rule sets are cached until an RBAC object
    changes (the registry reports changes through `invalidate`)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[tuple[str, tuple[str, ...], str], list[dict[str, Any]]] = {}

    def invalidate(self, key: str) -> None:
        if key in RBAC_KEYS:
            self._cache.clear()

    def allowed(self, user: UserInfo, a: Attributes) -> bool:
        if user.is_admin:
            return True
        return any(rule_allows(r, a) for r in self.rules(user, a.namespace))

    def rules(self, user: UserInfo, namespace: str) -> list[dict[str, Any]]:
        """Every rule that applies to the user in a namespace ("" = cluster-wide rules only)."""
        key = (user.username, user.groups, namespace)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        out: list[dict[str, Any]] = []
        for crb in self.store.iter(CLUSTER_ROLE_BINDINGS):
            if any(_subject_matches(s, user, "") for s in crb.get("subjects") or []):
                out.extend(self._role_rules(crb.get("roleRef") or {}, ""))
        if namespace:
            for rb in self.store.iter(ROLE_BINDINGS, namespace):
                if any(_subject_matches(s, user, namespace) for s in rb.get("subjects") or []):
                    out.extend(self._role_rules(rb.get("roleRef") or {}, namespace))
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = out
        return out

    def _role_rules(self, ref: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
        if ref.get("kind") == "ClusterRole":
            role = self.store.get(CLUSTER_ROLES, "", str(ref.get("name")))
            return self.cluster_role_rules(role) if role is not None else []
        if ref.get("kind") == "Role" and namespace:
            role = self.store.get(ROLES, namespace, str(ref.get("name")))
            return list((role or {}).get("rules") or [])
        return []

    def cluster_role_rules(self, role: Obj) -> list[dict[str, Any]]:
        agg = role.get("aggregationRule")
        if not agg:
            return list(role.get("rules") or [])
        return aggregate(role, list(self.store.iter(CLUSTER_ROLES)))


def aggregate(role: Obj, all_roles: list[Obj]) -> list[dict[str, Any]]:
    """The rules an aggregated ClusterRole has: those of every ClusterRole its selectors match (no duplicates)."""
    selectors: list[LabelSelector] = []
    for sel in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
        selectors.append(selector_from_match(sel))
    out: list[dict[str, Any]] = []
    name = role["metadata"]["name"]
    for other in sorted(all_roles, key=lambda r: str(r["metadata"]["name"])):
        if other["metadata"]["name"] == name:
            continue
        labels = other["metadata"].get("labels") or {}
        if any(s.matches(labels) for s in selectors):
            for rule in other.get("rules") or []:
                if rule not in out:
                    out.append(rule)
    return out


def forbidden_message(user: UserInfo, a: Attributes) -> str:
    if not a.is_resource:
        return f'forbidden: User "{user.username}" cannot {a.verb} path "{a.path}"'
    res = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    qualified = f"{a.resource}.{a.group}" if a.group else a.resource
    subject = f'{qualified} "{a.name}"' if a.name else qualified
    scope = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    return (
        f'{subject} is forbidden: User "{user.username}" cannot {a.verb} resource "{res}" '
        f'in API group "{a.group}" {scope}'
    )


def forbidden(user: UserInfo, a: Attributes) -> ApiError:
    details: dict[str, Any] = {"kind": a.resource}
    if a.name:
        details["name"] = a.name
    if a.group:
        details["group"] = a.group
    return ApiError(403, "Forbidden", forbidden_message(user, a), details=details if a.is_resource else None)


def review_status(authorizer: Authorizer, user: UserInfo, spec: dict[str, Any], namespace: str = "") -> dict[str, Any]:
    """status of a (Self|Local)SubjectAccessReview for `spec`'s attributes."""
    ra = spec.get("resourceAttributes")
    nra = spec.get("nonResourceAttributes")
    if ra:
        a = Attributes(
            verb=str(ra.get("verb") or ""),
            group=str(ra.get("group") or ""),
            resource=str(ra.get("resource") or ""),
            subresource=str(ra.get("subresource") or ""),
            namespace=namespace or str(ra.get("namespace") or ""),
            name=str(ra.get("name") or ""),
        )
    elif nra:
        a = Attributes(verb=str(nra.get("verb") or ""), path=str(nra.get("path") or ""))
    else:
        return {"allowed": False, "evaluationError": "neither resourceAttributes nor nonResourceAttributes given"}
    if authorizer.allowed(user, a):
        reason = "allowed by the system:masters group" if user.is_admin else "RBAC: allowed by a role binding"
        return {"allowed": True, "reason": reason}
    return {"allowed": False}


def bootstrap_objects() -> list[tuple[str, Obj]]:
    """The default roles and bindings a new cluster has (a subset of the real bootstrap policy)."""
    agg = "rbac.authorization.k8s.io/aggregate-to-"
    read = ["get", "list", "watch"]
    write = ["create", "delete", "deletecollection", "patch", "update"]
    core = ["pods", "services", "configmaps", "endpoints", "persistentvolumeclaims", "serviceaccounts", "events"]
    apps = ["deployments", "replicasets", "statefulsets", "daemonsets"]

    def role(name: str, rules: list[dict[str, Any]], labels: dict[str, str] | None = None) -> Obj:
        meta: dict[str, Any] = {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults", **(labels or {})},
        }
        return {"metadata": meta, "rules": rules}

    def aggregated(name: str, sources: list[str]) -> Obj:
        obj = role(name, [])
        obj["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {f"{agg}{s}": "true"}} for s in sources]}
        return obj

    def group_binding(name: str, group: str) -> Obj:
        return {
            "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": group}],
        }

    discovery_urls = [
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/healthz",
        "/livez",
        "/readyz",
        "/openapi",
        "/openapi/*",
        "/version",
        "/version/",
    ]
    roles = [
        role(
            "cluster-admin",
            [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}],
        ),
        role("system:discovery", [{"nonResourceURLs": discovery_urls, "verbs": ["get"]}]),
        role(
            "system:public-info-viewer",
            [{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}],
        ),
        role(
            "system:basic-user",
            [
                {
                    "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    "verbs": ["create"],
                },
                {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
            ],
        ),
        role(
            "system:aggregate-to-view",
            [
                {"apiGroups": [""], "resources": core, "verbs": read},
                {"apiGroups": ["apps"], "resources": apps, "verbs": read},
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": read},
            ],
            {f"{agg}view": "true"},
        ),
        role(
            "system:aggregate-to-edit",
            [
                {"apiGroups": [""], "resources": core, "verbs": write},
                {"apiGroups": ["apps"], "resources": apps, "verbs": write},
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": write},
            ],
            {f"{agg}edit": "true"},
        ),
        role(
            "system:aggregate-to-admin",
            [{"apiGroups": [RBAC], "resources": ["roles", "rolebindings"], "verbs": read + write}],
            {f"{agg}admin": "true"},
        ),
        aggregated("view", ["view"]),
        aggregated("edit", ["edit", "view"]),
        aggregated("admin", ["admin", "edit", "view"]),
    ]
    bindings = [
        group_binding("system:discovery", "system:authenticated"),
        group_binding("system:basic-user", "system:authenticated"),
        group_binding("system:public-info-viewer", "system:authenticated"),
    ]
    masters = group_binding("cluster-admin", "system:masters")
    return [(CLUSTER_ROLES, r) for r in roles] + [(CLUSTER_ROLE_BINDINGS, b) for b in [*bindings, masters]]
