"""The resource types the sandbox serves: built-in kinds plus those CustomResourceDefinitions register."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_COMMON_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass
class ResourceType:
    group: str
    versions: tuple[str, ...]  # served versions, the first is the preferred (and storage) one
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    status: bool = False
    scale: dict[str, Any] | None = None  # CRD subresources.scale (specReplicasPath, statusReplicasPath, ...)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)  # version → openAPIV3Schema (CRDs)
    printer_columns: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # version → columns
    field_selectors: tuple[str, ...] = _COMMON_FIELDS
    subresources: tuple[str, ...] = ()  # extra POST subresources (binding, eviction)
    crd: bool = False

    @property
    def key(self) -> str:
        """Version-agnostic storage key: objects of all served versions live together."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def version(self) -> str:
        return self.versions[0]

    def api_version(self, version: str | None = None) -> str:
        v = version or self.version
        return f"{self.group}/{v}" if self.group else v

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def schema(self, version: str | None = None) -> dict[str, Any] | None:
        return self.schemas.get(version or self.version)


def _core(kind: str, plural: str, *, namespaced: bool = True, short: tuple[str, ...] = (), **kw: Any) -> ResourceType:
    return ResourceType("", ("v1",), kind, plural, kind.lower(), namespaced, short, **kw)


_POD_FIELDS = (
    *_COMMON_FIELDS,
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
)
_EVENT_FIELDS = (
    *_COMMON_FIELDS,
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)
_EVENTS_V1_FIELDS = (
    *_COMMON_FIELDS,
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "reason",
    "reportingController",
    "type",
)


_REPLICAS_SCALE = {
    "specReplicasPath": ".spec.replicas",
    "statusReplicasPath": ".status.replicas",
    "labelSelectorPath": ".spec.selector",
}


def workload_types() -> list[ResourceType]:
    """apps/v1 and batch/v1: served with their controllers (powertrain.sandbox.workloads)."""

    def apps(kind: str, plural: str, short: tuple[str, ...], *, scale: bool = True) -> ResourceType:
        return ResourceType(
            "apps",
            ("v1",),
            kind,
            plural,
            kind.lower(),
            True,
            short,
            categories=("all",),
            status=True,
            scale=_REPLICAS_SCALE if scale else None,
        )

    return [
        apps("Deployment", "deployments", ("deploy",)),
        apps("ReplicaSet", "replicasets", ("rs",)),
        apps("StatefulSet", "statefulsets", ("sts",)),
        apps("DaemonSet", "daemonsets", ("ds",), scale=False),
        ResourceType("apps", ("v1",), "ControllerRevision", "controllerrevisions", "controllerrevision", True),
        ResourceType("batch", ("v1",), "Job", "jobs", "job", True, categories=("all",), status=True),
    ]


def policy_types() -> list[ResourceType]:
    """Authorization, admission and the stored-only policy kinds (PDBs, NetworkPolicies)."""
    rbac = "rbac.authorization.k8s.io"
    adm = "admissionregistration.k8s.io"
    review = ("create",)
    return [
        ResourceType(
            "policy",
            ("v1",),
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            "poddisruptionbudget",
            True,
            ("pdb",),
            status=True,
        ),
        ResourceType(
            "networking.k8s.io", ("v1",), "NetworkPolicy", "networkpolicies", "networkpolicy", True, ("netpol",)
        ),
        ResourceType(rbac, ("v1",), "Role", "roles", "role", True),
        ResourceType(rbac, ("v1",), "RoleBinding", "rolebindings", "rolebinding", True),
        ResourceType(rbac, ("v1",), "ClusterRole", "clusterroles", "clusterrole", False),
        ResourceType(rbac, ("v1",), "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", False),
        ResourceType(
            adm,
            ("v1",),
            "ValidatingAdmissionPolicy",
            "validatingadmissionpolicies",
            "validatingadmissionpolicy",
            False,
            categories=("api-extensions",),
            status=True,
        ),
        ResourceType(
            adm,
            ("v1",),
            "ValidatingAdmissionPolicyBinding",
            "validatingadmissionpolicybindings",
            "validatingadmissionpolicybinding",
            False,
            categories=("api-extensions",),
        ),
        ResourceType(
            "authorization.k8s.io",
            ("v1",),
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            "",
            False,
            verbs=review,
        ),
        ResourceType(
            "authorization.k8s.io", ("v1",), "SubjectAccessReview", "subjectaccessreviews", "", False, verbs=review
        ),
        ResourceType(
            "authorization.k8s.io",
            ("v1",),
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            "",
            True,
            verbs=review,
        ),
        ResourceType(
            "authentication.k8s.io", ("v1",), "SelfSubjectReview", "selfsubjectreviews", "", False, verbs=review
        ),
    ]


# Kinds a write never stores: the answer is computed (reviews).
REVIEW_KEYS = frozenset(
    {
        "selfsubjectaccessreviews.authorization.k8s.io",
        "subjectaccessreviews.authorization.k8s.io",
        "localsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectreviews.authentication.k8s.io",
    }
)


def builtin_types() -> list[ResourceType]:
    return [
        _core(
            "Namespace",
            "namespaces",
            namespaced=False,
            short=("ns",),
            status=True,
            field_selectors=(*_COMMON_FIELDS, "status.phase"),
        ),
        _core(
            "Node",
            "nodes",
            namespaced=False,
            short=("no",),
            status=True,
            field_selectors=(*_COMMON_FIELDS, "spec.unschedulable"),
        ),
        _core(
            "Pod",
            "pods",
            short=("po",),
            categories=("all",),
            status=True,
            field_selectors=_POD_FIELDS,
            subresources=("binding", "eviction", "log"),
        ),
        # The legacy collection form of pods/binding (POST bindings with metadata.name = the pod).
        _core("Binding", "bindings", verbs=("create",)),
        _core("Service", "services", short=("svc",), categories=("all",), status=True),
        _core("Endpoints", "endpoints", short=("ep",)),
        _core("ConfigMap", "configmaps", short=("cm",)),
        _core("Secret", "secrets", field_selectors=(*_COMMON_FIELDS, "type")),
        _core("ServiceAccount", "serviceaccounts", short=("sa",), subresources=("token",)),
        _core(
            "ReplicationController",
            "replicationcontrollers",
            short=("rc",),
            categories=("all",),
            status=True,
            scale=_REPLICAS_SCALE,
        ),
        _core("Event", "events", short=("ev",), field_selectors=_EVENT_FIELDS),
        ResourceType(
            "events.k8s.io", ("v1",), "Event", "events", "event", True, ("ev",), field_selectors=_EVENTS_V1_FIELDS
        ),
        ResourceType("coordination.k8s.io", ("v1",), "Lease", "leases", "lease", True),
        *workload_types(),
        *policy_types(),
        ResourceType(
            "apiextensions.k8s.io",
            ("v1",),
            "CustomResourceDefinition",
            "customresourcedefinitions",
            "customresourcedefinition",
            False,
            ("crd", "crds"),
            categories=("api-extensions",),
            status=True,
        ),
    ]


def crd_to_type(crd: dict[str, Any]) -> ResourceType:
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec["versions"] if v.get("served", True)]
    # The storage version first, so it is the preferred version in discovery, as the real server orders them.
    served.sort(key=lambda v: not v.get("storage", False))
    subs: dict[str, Any] = {}
    for v in served:
        subs.update(v.get("subresources") or {})
    schemas = {
        v["name"]: (v.get("schema") or {}).get("openAPIV3Schema")
        or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        for v in served
    }
    columns = {v["name"]: v.get("additionalPrinterColumns") or [] for v in served}
    selectable = tuple(str(s["jsonPath"]).lstrip(".") for v in served for s in v.get("selectableFields") or [])
    return ResourceType(
        group=spec["group"],
        versions=tuple(v["name"] for v in served),
        kind=names["kind"],
        plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        status="status" in subs,
        scale=subs.get("scale"),
        schemas=schemas,
        printer_columns=columns,
        field_selectors=(*_COMMON_FIELDS, *selectable),
        crd=True,
    )
