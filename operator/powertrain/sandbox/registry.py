"""Object semantics over the store: create/update/patch/delete, admission defaults, CRDs, finalizers and GC.

Rules followed (Kubernetes docs section in brackets):
- resourceVersion is one cluster-wide counter; a write carrying a stale one gets 409 Conflict
  [API concepts: "Resource versions", "Efficient detection of changes"].
- generation starts at 1 and is bumped when anything but metadata and status changes; with a status
  subresource, a status sent on create is dropped (pods start Pending, services and namespaces empty; nodes keep
  theirs, as a kubelet registers them), writes to the main resource keep the old status and writes to /status
  change only status [Custom resources: "Status subresource"; each kind's PrepareForCreate].
- ObjectMeta is validated as apimachinery does (powertrain.sandbox.objectmeta): names, label keys and values,
  annotation keys and their 256 KiB total [Labels and Selectors; Annotations].
- Deletion [Garbage collection; Finalizers; Owners and dependents]: an object with finalizers gets
  deletionTimestamp and stays until its finalizers are removed. Background propagation deletes dependents
  whose owners are all gone after the owner is removed; Foreground adds the `foregroundDeletion` finalizer,
  deletes dependents and removes the owner once no dependent with blockOwnerDeletion remains; Orphan removes
  the owner reference from dependents. A namespace being deleted is `Terminating`, refuses new objects,
  deletes its contents, and disappears when empty.
- Pods [Pod lifecycle: "Termination of Pods"]: a pod bound to an existing node, not yet Succeeded/Failed,
  is deleted gracefully: deletionTimestamp = now + grace (DeleteOptions.gracePeriodSeconds, else
  spec.terminationGracePeriodSeconds, else 30) and it stays until its kubelet (or anyone) deletes it with
  gracePeriodSeconds=0. Unbound pods, terminal pods and pods on missing nodes are removed at once.
"""

from __future__ import annotations

import random
import re
import string
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from powertrain.api.structural import structural_errors
from powertrain.sandbox import crd_schema, events, objectmeta, podspec, typed, workload_specs
from powertrain.sandbox.errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    not_found,
    unknown_resource,
    unsupported_media_type,
)
from powertrain.sandbox.patch import (
    apply_patch,
    builtin_list_key,
    json_copy,
    json_patch,
    merge_patch,
    schema_list_key,
    strategic_merge_patch,
)
from powertrain.sandbox.resources import ResourceType, builtin_types, crd_to_type
from powertrain.sandbox.selectors import FieldSelector, LabelSelector, selector_to_string
from powertrain.sandbox.store import Obj, Store

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"
_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_META_FIELDS_CLIENT_CANNOT_SET = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)
_POD_MUTABLE_SPEC = ("activeDeadlineSeconds", "tolerations", "schedulingGates", "terminationGracePeriodSeconds")


def _timestamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


class WriteResult:
    """What a write returns: the object plus warnings for the Warning header."""

    __slots__ = ("created", "obj", "warnings")

    def __init__(self, obj: Obj, warnings: list[str] | None = None, *, created: bool = False) -> None:
        self.obj = obj
        self.warnings = warnings or []
        self.created = created


class Registry:
    def __init__(self, store: Store, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))
        self.types: dict[str, ResourceType] = {}
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self._uids: dict[str, tuple[str, str, str]] = {}
        # Server-side apply: each manager's last applied configuration, by object uid (see patch.apply_patch).
        self._applied: dict[str, dict[str, Obj]] = {}
        self._cluster_ips = 0
        self.on_types_changed: list[Callable[[], None]] = []
        # Called with the storage key after every stored or removed object (authorization caches).
        self.on_change: list[Callable[[str], None]] = []
        # Validating admission (powertrain.sandbox.admission): (type, version, "create"|"update", new, old)
        # → warnings, or an ApiError that refuses the write.
        self.admission: Callable[[ResourceType, str, str, Obj, Obj | None], list[str]] | None = None
        for rt in builtin_types():
            self._register(rt)
        for ns in _SYSTEM_NAMESPACES:
            self.create(self.types["namespaces"], "v1", None, {"metadata": {"name": ns}})

    # Types.
    def _register(self, rt: ResourceType) -> None:
        old = self.types.get(rt.key)
        if old is not None:
            for v in old.versions:
                self._by_gvr.pop((old.group, v, old.plural), None)
        self.types[rt.key] = rt
        for v in rt.versions:
            self._by_gvr[(rt.group, v, rt.plural)] = rt
        for cb in self.on_types_changed:
            cb()

    def _unregister(self, key: str) -> None:
        rt = self.types.pop(key, None)
        if rt is None:
            return
        for v in rt.versions:
            self._by_gvr.pop((rt.group, v, rt.plural), None)
        self.store.drop_table(key)
        for cb in self.on_types_changed:
            cb()

    def resolve(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self._by_gvr.get((group, version, plural))
        if rt is None:
            raise unknown_resource()
        return rt

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rt in self.types.values():
            vs = out.setdefault(rt.group, [])
            for v in rt.versions:
                if v not in vs:
                    vs.append(v)
        return out

    # Reads.
    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self.store.get(rt.key, namespace or "", name)
        if obj is None:
            raise not_found(rt.plural, name, rt.group)
        return obj

    def select(
        self, rt: ResourceType, namespace: str | None, labels: LabelSelector, fields: FieldSelector
    ) -> list[Obj]:
        return self.store.select(rt.key, namespace, labels, fields)

    # Writes.
    def create(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool = False,
        field_validation: str = "Warn",
    ) -> WriteResult:
        if not isinstance(body, dict):
            raise bad_request(f"the body of a create must be a {rt.kind} object")
        obj = json_copy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata: must be an object")
        self._check_kind(rt, version, obj)
        obj["apiVersion"], obj["kind"] = rt.api_version(), rt.kind
        ns = self._namespace_for(rt, namespace, meta)
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + "".join(random.choices(_GEN_ALPHABET, k=5))
            else:
                raise invalid(
                    rt.kind,
                    "",
                    rt.group,
                    [
                        {
                            "reason": "FieldValueRequired",
                            "field": "metadata.name",
                            "message": "Required value: name or generateName is required",
                        }
                    ],
                )
        name = meta["name"]
        if self.store.get(rt.key, ns or "", name) is not None:
            raise already_exists(rt.plural, name, rt.group)
        if ns is not None:
            self._check_namespace_open(rt, ns, name)
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        for f in _META_FIELDS_CLIENT_CANNOT_SET:
            meta.pop(f, None)
        now = self.clock()
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _timestamp(now)
        meta["generation"] = 1
        if ns is not None:
            meta["namespace"] = ns
        _reset_status_on_create(rt, obj)
        warnings = self._admit(rt, version, obj, None, "create", field_validation)
        if dry_run:
            obj["metadata"]["resourceVersion"] = str(self.store.rv)
            return WriteResult(obj, warnings, created=True)
        self._store(rt, obj)
        self._after_create(rt, obj)
        return WriteResult(obj, warnings, created=True)

    def update(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        create_missing: bool = True,
    ) -> WriteResult:
        if not isinstance(body, dict):
            raise bad_request(f"the body of an update must be a {rt.kind} object")
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        ns = namespace if rt.namespaced else None
        old = self.store.get(rt.key, ns or "", name)
        if old is None:
            if subresource is None and create_missing and rt.crd is False and rt.plural in ("leases", "events"):
                return self.create(rt, version, namespace, body, dry_run=dry_run, field_validation=field_validation)
            raise not_found(rt.plural, name, rt.group)
        rv = str(meta.get("resourceVersion") or "")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, name, rt.group)
        return self._replace(rt, version, old, json_copy(body), subresource, dry_run, field_validation)

    def patch(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        content_type: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        field_manager: str | None = None,
        force: bool = False,
    ) -> WriteResult:
        ns = namespace if rt.namespaced else None
        old = self.store.get(rt.key, ns or "", name)
        ctype = content_type.split(";")[0].strip()
        if ctype == "application/apply-patch+yaml" and not field_manager:
            raise bad_request(
                "PATCH requests with the apply content type (application/apply-patch+yaml) require "
                "the fieldManager query parameter"
            )
        if old is None:
            if ctype == "application/apply-patch+yaml" and subresource is None:
                if not isinstance(body, dict):
                    raise bad_request("an apply patch must be an object")
                body = dict(body)
                body["metadata"] = dict(body.get("metadata") or {}, name=name)
                created = self.create(rt, version, namespace, body, dry_run=dry_run, field_validation=field_validation)
                if not dry_run:
                    self._applied.setdefault(created.obj["metadata"]["uid"], {})[field_manager or ""] = json_copy(body)
                return created
            raise not_found(rt.plural, name, rt.group)
        current = self._output(rt, version, old)
        if ctype == "application/merge-patch+json":
            if not isinstance(body, dict):
                raise bad_request("a merge patch must be a JSON object")
            new = merge_patch(current, body)
        elif ctype == "application/json-patch+json":
            new = json_patch(json_copy(current), body)
        elif ctype == "application/strategic-merge-patch+json":
            if rt.crd:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "strategic merge patch is not supported for custom resources; use a merge patch "
                    "(application/merge-patch+json) or a JSON patch",
                )
            if not isinstance(body, dict):
                raise bad_request("a strategic merge patch must be a JSON object")
            new = strategic_merge_patch(current, body)
        elif ctype == "application/apply-patch+yaml":
            if not isinstance(body, dict):
                raise bad_request("an apply patch must be an object")
            self._check_kind(rt, version, body)
            key_fn = schema_list_key(rt.schema(version)) if rt.crd else builtin_list_key
            previous = self._applied.get(old["metadata"]["uid"], {}).get(field_manager or "")
            new = apply_patch(current, body, key_fn, previous)
        else:
            raise unsupported_media_type(content_type)
        if not isinstance(new, dict):
            raise bad_request("the patch must leave an object")
        if ctype != "application/json-patch+json":
            new = json_copy(new)  # merged results share untouched parts with the stored object
        new_rv = str((new.get("metadata") or {}).get("resourceVersion") or "")
        if new_rv and new_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, name, rt.group)
        result = self._replace(rt, version, old, new, subresource, dry_run, field_validation)
        if ctype == "application/apply-patch+yaml" and not dry_run:
            self._applied.setdefault(old["metadata"]["uid"], {})[field_manager or ""] = json_copy(body)
        return result

    def _replace(
        self,
        rt: ResourceType,
        version: str,
        old: Obj,
        new: Obj,
        subresource: str | None,
        dry_run: bool,
        field_validation: str,
    ) -> WriteResult:
        self._check_kind(rt, version, new)
        name = old["metadata"]["name"]
        if subresource == "status":
            merged = json_copy(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
        else:
            new.setdefault("metadata", {})
            if rt.status and "status" in old:
                new["status"] = json_copy(old["status"])
            elif rt.status:
                new.pop("status", None)
        new["apiVersion"], new["kind"] = rt.api_version(), rt.kind
        meta = new["metadata"]
        old_meta = old["metadata"]
        if not isinstance(meta, dict):
            raise bad_request("metadata: must be an object")
        if meta.get("name", name) != name:
            raise invalid(
                rt.kind,
                name,
                rt.group,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "metadata.name",
                        "message": f'Invalid value: "{meta.get("name")}": field is immutable',
                    }
                ],
            )
        meta["name"] = name
        if old_meta.get("namespace"):
            meta["namespace"] = old_meta["namespace"]
        for f in _META_FIELDS_CLIENT_CANNOT_SET:
            if f in old_meta:
                meta[f] = old_meta[f]
            else:
                meta.pop(f, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise invalid(
                    rt.kind,
                    name,
                    rt.group,
                    [
                        {
                            "reason": "FieldValueForbidden",
                            "field": "metadata.finalizers",
                            "message": "Forbidden: no new finalizers can be added if the "
                            "object is being deleted, found new finalizers "
                            f"{sorted(added)}",
                        }
                    ],
                )
        warnings = self._admit(rt, version, new, old, "update", field_validation)
        meta = new["metadata"]  # admission may have rebuilt the object
        if _spec_part(new, rt.status) != _spec_part(old, rt.status):
            meta["generation"] = int(old_meta.get("generation") or 1) + 1
        if new == old:
            return WriteResult(old, warnings)  # a no-op write does not bump resourceVersion, as in Kubernetes
        if dry_run:
            return WriteResult(new, warnings)
        self._store(rt, new)
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not _pod_grace_pending(rt, new)
            and rt.key != "namespaces"
        ):
            self._remove(rt, new)
        return WriteResult(new, warnings)

    # Deletion.
    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        dry_run: bool = False,
    ) -> tuple[Obj, bool]:
        """Delete (or start deleting) an object. Returns (object, removed-now)."""
        opts = options or {}
        ns = namespace if rt.namespaced else None
        obj = self.store.get(rt.key, ns or "", name)
        if obj is None:
            raise not_found(rt.plural, name, rt.group)
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
            raise conflict(
                rt.plural,
                name,
                rt.group,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {obj['metadata']['uid']}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise conflict(
                rt.plural,
                name,
                rt.group,
                "Precondition failed: resourceVersion in precondition: "
                f"{pre['resourceVersion']}, resourceVersion in object meta: "
                f"{obj['metadata']['resourceVersion']}",
            )
        propagation = opts.get("propagationPolicy")
        if propagation is None and opts.get("orphanDependents") is True:
            propagation = "Orphan"
        if propagation not in (None, "Background", "Foreground", "Orphan"):
            raise bad_request(
                f"propagationPolicy: Unsupported value: {propagation!r}: supported values: "
                '"Background", "Foreground", "Orphan"'
            )
        grace = opts.get("gracePeriodSeconds")
        if dry_run:
            return obj, False
        return self._delete(rt, obj, propagation, grace)

    def _delete(self, rt: ResourceType, obj: Obj, propagation: str | None, grace: int | None) -> tuple[Obj, bool]:
        meta = obj["metadata"]
        now = self.clock()
        new = json_copy(obj)
        nmeta = new["metadata"]
        finalizers = list(nmeta.get("finalizers") or [])
        if propagation == "Orphan":
            self._orphan_dependents(meta["uid"])
        if propagation == "Foreground" and FOREGROUND not in finalizers and self._blocking_dependents(meta["uid"]):
            finalizers.append(FOREGROUND)
        if rt.key == "namespaces":
            new.setdefault("status", {})["phase"] = "Terminating"
        if rt.key == "customresourcedefinitions.apiextensions.k8s.io" and CRD_CLEANUP not in finalizers:
            finalizers.append(CRD_CLEANUP)
        graceful = self._pod_grace(rt, new, grace)
        if graceful is not None and not finalizers and meta.get("deletionTimestamp") and grace != 0:
            return obj, False  # already terminating gracefully; a second delete does not restart the clock
        if not finalizers and graceful is None and rt.key != "namespaces":
            self._remove(rt, new)
            return new, True
        if not nmeta.get("deletionTimestamp") or (graceful is not None and grace == 0):
            deadline = now + timedelta(seconds=graceful or 0)
            nmeta["deletionTimestamp"] = _timestamp(deadline)
            nmeta["deletionGracePeriodSeconds"] = graceful or 0
        if grace == 0 and rt.key == "pods":
            nmeta["deletionGracePeriodSeconds"] = 0  # a force delete cuts any grace period still running
        nmeta["finalizers"] = finalizers
        if not finalizers:
            nmeta.pop("finalizers")
        if graceful == 0 and not finalizers and rt.key != "namespaces":
            self._remove(rt, new)
            return new, True
        if new != obj:  # deleting what is already being deleted changes nothing
            self._store(rt, new)
        if propagation == "Foreground":
            self._delete_dependents(meta["uid"], "Foreground")
            self._check_foreground(meta["uid"])
        if rt.key == "namespaces":
            self._empty_namespace(meta["name"])
        if rt.key == "customresourcedefinitions.apiextensions.k8s.io":
            self._empty_crd(new)
        current = self.store.get(rt.key, meta.get("namespace") or "", meta["name"])
        return (current or new), current is None

    def _pod_grace(self, rt: ResourceType, pod: Obj, grace: int | None) -> int | None:
        """Seconds of graceful termination for a pod, None when it is removed at once (see module doc)."""
        if rt.key != "pods":
            return None
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        node = spec.get("nodeName")
        if not node or status.get("phase") in ("Succeeded", "Failed") or self.store.get("nodes", "", node) is None:
            return None
        if grace is None:
            grace = int(spec.get("terminationGracePeriodSeconds", 30))
        return None if grace == 0 else int(grace)

    def _remove(self, rt: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        if self.store.get(rt.key, meta.get("namespace") or "", meta["name"]) is None:
            return
        final = dict(obj)
        final["metadata"] = dict(meta, resourceVersion=str(self.store.next_rv()))
        self.store.remove(rt.key, final)
        other = events.mirror(rt.key, final)
        if other is not None:
            self.store.remove(*other)
        self._uids.pop(meta["uid"], None)
        self._applied.pop(meta["uid"], None)
        for cb in self.on_change:
            cb(rt.key)
        self._after_remove(rt, final)

    def _after_remove(self, rt: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        if rt.key == "customresourcedefinitions.apiextensions.k8s.io":
            self._unregister(crd_to_type(obj).key)
        # Background garbage collection of dependents whose owners are all gone.
        for key, ns, name in self.store.dependents(meta["uid"]):
            dep = self.store.get(key, ns, name)
            dep_rt = self.types.get(key)
            if dep is None or dep_rt is None:
                continue
            alive = [r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") in self._uids]
            if alive:
                self._set_owner_refs(dep_rt, dep, alive)
            elif not dep["metadata"].get("deletionTimestamp"):
                self._delete(dep_rt, dep, "Background", None)
        # Owners waiting in foreground deletion for this dependent.
        for ref in meta.get("ownerReferences") or []:
            self._check_foreground(ref.get("uid", ""))
        ns = meta.get("namespace")
        if ns:
            self._maybe_finish_namespace(ns)
        if rt.crd:
            self._maybe_finish_crd(rt)

    def _set_owner_refs(self, rt: ResourceType, obj: Obj, refs: list[dict[str, Any]]) -> None:
        new = json_copy(obj)
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        self._store(rt, new)

    def _orphan_dependents(self, uid: str) -> None:
        for key, ns, name in self.store.dependents(uid):
            dep, dep_rt = self.store.get(key, ns, name), self.types.get(key)
            if dep is not None and dep_rt is not None:
                refs = [r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                self._set_owner_refs(dep_rt, dep, refs)

    def _blocking_dependents(self, uid: str) -> list[tuple[str, str, str]]:
        out = []
        for key, ns, name in self.store.dependents(uid):
            dep = self.store.get(key, ns, name)
            if dep is not None and any(
                r.get("uid") == uid and r.get("blockOwnerDeletion")
                for r in dep["metadata"].get("ownerReferences") or []
            ):
                out.append((key, ns, name))
        return out

    def _delete_dependents(self, uid: str, propagation: str) -> None:
        for key, ns, name in self.store.dependents(uid):
            dep, dep_rt = self.store.get(key, ns, name), self.types.get(key)
            if dep is not None and dep_rt is not None and not dep["metadata"].get("deletionTimestamp"):
                self._delete(dep_rt, dep, propagation, None)

    def _check_foreground(self, uid: str) -> None:
        where = self._uids.get(uid)
        if where is None:
            return
        key, ns, name = where
        owner, rt = self.store.get(key, ns, name), self.types.get(key)
        if owner is None or rt is None:
            return
        fins = owner["metadata"].get("finalizers") or []
        if not owner["metadata"].get("deletionTimestamp") or FOREGROUND not in fins:
            return
        if self._blocking_dependents(uid):
            return
        self._drop_finalizer(rt, owner, FOREGROUND)

    def _drop_finalizer(self, rt: ResourceType, obj: Obj, finalizer: str) -> None:
        new = json_copy(obj)
        fins = [f for f in new["metadata"].get("finalizers") or [] if f != finalizer]
        if fins:
            new["metadata"]["finalizers"] = fins
        else:
            new["metadata"].pop("finalizers", None)
        if fins or _pod_grace_pending(rt, new):
            self._store(rt, new)
        else:
            self._remove(rt, new)

    def _empty_namespace(self, ns: str) -> None:
        for key, obj in list(self.store.keys_in_namespace(ns)):
            rt = self.types.get(key)
            current = self.store.get(key, ns, obj["metadata"]["name"])
            if rt is not None and current is not None and not current["metadata"].get("deletionTimestamp"):
                self._delete(rt, current, "Background", None)
        self._maybe_finish_namespace(ns)

    def _maybe_finish_namespace(self, ns: str) -> None:
        nso = self.store.get("namespaces", "", ns)
        if nso is None or not nso["metadata"].get("deletionTimestamp"):
            return
        if self.store.namespace_empty(ns):
            self._remove(self.types["namespaces"], nso)

    def _empty_crd(self, crd: Obj) -> None:
        key = crd_to_type(crd).key
        rt = self.types.get(key)
        if rt is None:
            self._drop_finalizer(self.types["customresourcedefinitions.apiextensions.k8s.io"], crd, CRD_CLEANUP)
            return
        for obj in list(self.store.iter(key)):
            if not obj["metadata"].get("deletionTimestamp"):
                self._delete(rt, obj, "Background", None)
        self._maybe_finish_crd(rt)

    def _maybe_finish_crd(self, rt: ResourceType) -> None:
        crd = self.store.get("customresourcedefinitions.apiextensions.k8s.io", "", rt.key)
        if crd is None or not crd["metadata"].get("deletionTimestamp") or self.store.count(rt.key):
            return
        self._drop_finalizer(self.types["customresourcedefinitions.apiextensions.k8s.io"], crd, CRD_CLEANUP)

    # Subresources.
    def bind(self, namespace: str, name: str, body: Any) -> None:
        """POST pods/NAME/binding [Pod binding]: sets spec.nodeName once; 409 when already bound."""
        rt = self.types["pods"]
        pod = self.get(rt, namespace, name)
        target = (body or {}).get("target") or {}
        node = target.get("name")
        if not node:
            raise invalid(
                "Binding",
                name,
                "",
                [{"reason": "FieldValueRequired", "field": "target.name", "message": "Required value"}],
            )
        if pod["metadata"].get("deletionTimestamp"):
            raise conflict("pods", name, "", "pod is being deleted, cannot be assigned to a host")
        current = (pod.get("spec") or {}).get("nodeName")
        if current:
            raise conflict("pods", name, "", f'pod {name} is already assigned to node "{current}"')
        new = json_copy(pod)
        new["spec"]["nodeName"] = node
        status = new.setdefault("status", {})
        conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conds.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": _timestamp(self.clock()),
            }
        )
        status["conditions"] = conds
        self._store(rt, new)

    def evict(self, namespace: str, name: str, body: Any) -> None:
        """POST pods/NAME/eviction: a graceful delete (no PodDisruptionBudgets in the sandbox)."""
        rt = self.types["pods"]
        pod = self.get(rt, namespace, name)
        opts = (body or {}).get("deleteOptions") or {}
        self._delete(rt, pod, opts.get("propagationPolicy"), opts.get("gracePeriodSeconds"))

    def get_scale(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        if rt.scale is None:
            raise not_found(f"{rt.plural}/scale", name, rt.group)
        obj = self.get(rt, namespace, name)
        spec_path = rt.scale.get("specReplicasPath", ".spec.replicas")
        status_path = rt.scale.get("statusReplicasPath", ".status.replicas")
        selector = ""
        if rt.scale.get("labelSelectorPath"):
            raw = _get_path(obj, rt.scale["labelSelectorPath"])
            selector = raw if isinstance(raw, str) else selector_to_string(raw) if isinstance(raw, dict) else ""
        meta = obj["metadata"]
        status: dict[str, Any] = {"replicas": int(_get_path(obj, status_path) or 0)}
        if selector:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
            },
            "spec": {"replicas": int(_get_path(obj, spec_path) or 0)},
            "status": status,
        }

    def set_scale(self, rt: ResourceType, version: str, namespace: str | None, name: str, scale: Any) -> Obj:
        if rt.scale is None:
            raise not_found(f"{rt.plural}/scale", name, rt.group)
        if not isinstance(scale, dict):
            raise bad_request("the body must be an autoscaling/v1 Scale")
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise invalid(
                "Scale",
                name,
                "autoscaling",
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "spec.replicas",
                        "message": f"Invalid value: {replicas!r}: must be an integer",
                    }
                ],
            )
        obj = self.get(rt, namespace, name)
        rv = str((scale.get("metadata") or {}).get("resourceVersion") or "")
        if rv and rv != obj["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, name, rt.group)
        new = json_copy(obj)
        _set_path(new, rt.scale.get("specReplicasPath", ".spec.replicas"), replicas)
        self._replace(rt, version, obj, new, None, False, "Ignore")
        return self.get_scale(rt, namespace, name)

    # Internals.
    def _store(self, rt: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rt.key, obj)
        self._uids[meta["uid"]] = (rt.key, meta.get("namespace") or "", meta["name"])
        other = events.mirror(rt.key, obj)
        if other is not None:
            self.store.put(*other)
        for cb in self.on_change:
            cb(rt.key)

    def _after_create(self, rt: ResourceType, obj: Obj) -> None:
        if rt.key == "namespaces":
            sa_rt = self.types["serviceaccounts"]
            if self.store.get(sa_rt.key, obj["metadata"]["name"], "default") is None:
                self.create(sa_rt, "v1", obj["metadata"]["name"], {"metadata": {"name": "default"}})

    def _check_kind(self, rt: ResourceType, version: str, obj: Obj) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != rt.kind:
            raise bad_request(f"the kind of the object ({kind}) does not match the resource {rt.plural} ({rt.kind})")
        if api_version and api_version not in {rt.api_version(v) for v in rt.versions}:
            raise bad_request(
                f"the apiVersion of the object ({api_version}) does not match the request ({rt.api_version(version)})"
            )

    def _namespace_for(self, rt: ResourceType, namespace: str | None, meta: dict[str, Any]) -> str | None:
        if not rt.namespaced:
            meta.pop("namespace", None)
            return None
        body_ns = meta.get("namespace")
        if namespace and body_ns and body_ns != namespace:
            raise bad_request(
                f"the namespace of the provided object ({body_ns}) does not match the namespace sent "
                f"on the request ({namespace})"
            )
        ns = namespace or body_ns
        if not ns:
            raise bad_request(f"{rt.plural} are namespaced: create them under /namespaces/NAMESPACE/")
        return str(ns)

    def _check_namespace_open(self, rt: ResourceType, ns: str, name: str) -> None:
        nso = self.store.get("namespaces", "", ns)
        if nso is None:
            raise not_found("namespaces", ns)
        if nso["metadata"].get("deletionTimestamp"):
            raise forbidden(
                f'{rt.plural} "{name}" is forbidden: unable to create new content in namespace {ns} '
                "because it is being terminated"
            )

    def _admit(
        self, rt: ResourceType, version: str, obj: Obj, old: Obj | None, op: str, field_validation: str
    ) -> list[str]:
        """Validate and default an object about to be written; raises Invalid with field causes."""
        meta = obj["metadata"]
        name = str(meta.get("name", ""))
        causes: list[dict[str, str]] = []
        decode_warnings = typed.decode(rt.key, rt.kind, version, obj, field_validation) if typed.decodes(rt.key) else []
        _check_meta_shapes(meta, causes)
        if causes:
            raise invalid(rt.kind, name, rt.group, causes)
        pattern = _DNS_LABEL if rt.key == "namespaces" else _DNS_SUBDOMAIN
        limit = 63 if rt.key == "namespaces" else 253
        if op == "create" and rt.key.endswith(".rbac.authorization.k8s.io"):
            # RBAC names are path segments [rbac ValidateRBACName]: `system:` prefixes and colons are allowed.
            if name in (".", "..") or "/" in name or "%" in name:
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "field": "metadata.name",
                        "message": f"Invalid value: \"{name}\": may not be '.' or '..' and may not contain '/' or '%'",
                    }
                )
        elif op == "create" and rt.key != "events" and (not pattern.match(name) or len(name) > limit):
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": "metadata.name",
                    "message": f'Invalid value: "{name}": a lowercase RFC 1123 '
                    f"{'label' if limit == 63 else 'subdomain'} must consist of lower case alphanumeric "
                    "characters, '-' or '.', and must start and end with an alphanumeric character",
                }
            )
        causes.extend(objectmeta.label_errors(meta.get("labels") or {}))
        causes.extend(objectmeta.annotation_errors(meta.get("annotations") or {}))
        warnings: list[str] = []
        if rt.crd:
            warnings = self._admit_custom(rt, version, obj, old, field_validation, causes)
        elif rt.key == "pods":
            _default_pod(obj, old, causes)
        elif rt.key == "secrets":
            if not obj.get("type"):
                obj["type"] = "Opaque"
        elif rt.key == "services":
            self._default_service(obj, old)
        elif rt.key == "namespaces":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {}).setdefault("phase", "Active")
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        elif rt.key == "customresourcedefinitions.apiextensions.k8s.io":
            self._admit_crd(obj, old, causes)
        elif workload_specs.admits(rt.key):
            workload_specs.admit(rt.key, obj, old, causes)
        if causes:
            raise invalid(rt.kind, name, rt.group, causes)
        if self.admission is not None:
            warnings = warnings + self.admission(rt, version, op, obj, old)
        return decode_warnings + warnings

    def _admit_custom(
        self,
        rt: ResourceType,
        version: str,
        obj: Obj,
        old: Obj | None,
        field_validation: str,
        causes: list[dict[str, str]],
    ) -> list[str]:
        schema = rt.schema(version) or {}
        dropped: list[str] = []
        pruned = crd_schema.prune(obj, schema, root=True, dropped=dropped)
        if dropped and field_validation == "Strict":
            unknown = ", ".join(f'unknown field "{d}"' for d in dropped)
            raise bad_request(
                f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: strict decoding error: {unknown}'
            )
        defaulted = crd_schema.apply_defaults(pruned, schema)
        obj.clear()
        obj.update(defaulted)
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        body_schema = {k: v for k, v in schema.items() if k != "required"}
        causes.extend(crd_schema.validate(body, body_schema))
        for req in schema.get("required") or []:
            if req not in obj:
                causes.append({"reason": "FieldValueRequired", "field": req, "message": "Required value"})
        if not causes:
            causes.extend(crd_schema.cel_errors(obj, old, schema))
        return [f'unknown field "{d}"' for d in dropped] if field_validation == "Warn" else []

    def _admit_crd(self, crd: Obj, old: Obj | None, causes: list[dict[str, str]]) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group, plural = spec.get("group"), names.get("plural")
        if not group or not plural or not names.get("kind"):
            causes.append(
                {
                    "reason": "FieldValueRequired",
                    "field": "spec",
                    "message": "Required value: spec.group, spec.names.plural and spec.names.kind are required",
                }
            )
            return
        if crd["metadata"]["name"] != f"{plural}.{group}":
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": "metadata.name",
                    "message": f'Invalid value: "{crd["metadata"]["name"]}": must be spec.names.plural+"."+'
                    f"spec.group ({plural}.{group})",
                }
            )
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            causes.append(
                {
                    "reason": "FieldValueNotSupported",
                    "field": "spec.scope",
                    "message": f'Unsupported value: {spec.get("scope")!r}: supported values: "Cluster", "Namespaced"',
                }
            )
        versions = spec.get("versions") or []
        if not versions:
            causes.append({"reason": "FieldValueRequired", "field": "spec.versions", "message": "Required value"})
        if sum(1 for v in versions if v.get("storage")) != 1:
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": "spec.versions",
                    "message": "Invalid value: must have exactly one version marked as storage version",
                }
            )
        for i, v in enumerate(versions):
            schema = (v.get("schema") or {}).get("openAPIV3Schema")
            if schema is None:
                causes.append(
                    {
                        "reason": "FieldValueRequired",
                        "field": f"spec.versions[{i}].schema.openAPIV3Schema",
                        "message": "Required value: schemas are required",
                    }
                )
                continue
            for err in structural_errors(schema, f"spec.versions[{i}].schema.openAPIV3Schema"):
                where, _, what = err.partition(": ")
                required = "must not be empty" in what
                causes.append(
                    {
                        "reason": "FieldValueRequired" if required else "FieldValueInvalid",
                        "field": where,
                        "message": f"{'Required value' if required else 'Invalid value'}: {what}",
                    }
                )
        existing = self.types.get(f"{plural}.{group}")
        if old is None and existing is not None and not existing.crd:
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": "spec.names.plural",
                    "message": f"Invalid value: {plural!r}: the resource {plural}.{group} is built in",
                }
            )
        if causes:
            return
        crd["status"] = {
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": _timestamp(self.clock()),
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": _timestamp(self.clock()),
                },
            ],
            "acceptedNames": names,
            "storedVersions": [v["name"] for v in versions if v.get("storage")],
        }
        if not crd["metadata"].get("deletionTimestamp"):
            self._register(crd_to_type(crd))

    def _default_service(self, svc: Obj, old: Obj | None) -> None:
        spec = svc.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        old_spec = (old or {}).get("spec") or {}
        if old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        elif not spec.get("clusterIP"):
            self._cluster_ips += 1
            n = self._cluster_ips
            spec["clusterIP"] = f"10.96.{(n >> 8) & 255}.{n & 255}"
        spec["clusterIPs"] = [spec["clusterIP"]]
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))

    def _output(self, rt: ResourceType, version: str, obj: Obj) -> Obj:
        api_version = rt.api_version(version)
        if obj.get("apiVersion") == api_version:
            return obj
        out = dict(obj)
        out["apiVersion"] = api_version
        return out

    def output(self, rt: ResourceType, version: str, obj: Obj) -> Obj:
        return self._output(rt, version, obj)


def _reset_status_on_create(rt: ResourceType, obj: Obj) -> None:
    """Status is not the creator's to write where it is a subresource: each kind's PrepareForCreate resets it
    (custom resources drop it; pods start Pending; services and namespaces start empty and Active). Nodes keep
    theirs: the kubelet registers its node with its status."""
    if rt.crd:
        if rt.status:
            obj.pop("status", None)
    elif rt.key == "pods":
        obj["status"] = {}
    elif rt.key == "services":
        obj["status"] = {"loadBalancer": {}}
    elif rt.key == "namespaces" or workload_specs.admits(rt.key):
        obj["status"] = {}


def _check_meta_shapes(meta: dict[str, Any], causes: list[dict[str, str]]) -> None:
    """ObjectMeta fields the store indexes must have their documented types before anything reads them."""
    for f in ("labels", "annotations"):
        value = meta.get(f)
        if value is not None and not (
            isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        ):
            causes.append(
                {
                    "reason": "FieldValueTypeInvalid",
                    "field": f"metadata.{f}",
                    "message": f"Invalid value: {value!r}: must be a map of string keys to string values",
                }
            )
    fins = meta.get("finalizers")
    if fins is not None and not (isinstance(fins, list) and all(isinstance(f, str) for f in fins)):
        causes.append(
            {
                "reason": "FieldValueTypeInvalid",
                "field": "metadata.finalizers",
                "message": f"Invalid value: {fins!r}: must be a list of strings",
            }
        )
    refs = meta.get("ownerReferences")
    if refs is not None:
        ok = isinstance(refs, list) and all(
            isinstance(r, dict)
            and all(isinstance(r.get(k), str) and r.get(k) for k in ("apiVersion", "kind", "name", "uid"))
            for r in refs
        )
        if not ok:
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": "metadata.ownerReferences",
                    "message": "Invalid value: each owner reference needs apiVersion, kind, name and uid "
                    "(non-empty strings)",
                }
            )


def _spec_part(obj: Obj, status_subresource: bool) -> dict[str, Any]:
    """What generation tracks: all but metadata (and status, where status is a subresource)."""
    skip = ("metadata", "apiVersion", "kind", "status") if status_subresource else ("metadata", "apiVersion", "kind")
    return {k: v for k, v in obj.items() if k not in skip}


def _pod_grace_pending(rt: ResourceType, obj: Obj) -> bool:
    """A pod in graceful termination whose grace period has not been cut to 0 waits for its kubelet."""
    if rt.key != "pods":
        return False
    meta = obj["metadata"]
    return bool(meta.get("deletionTimestamp")) and int(meta.get("deletionGracePeriodSeconds") or 0) > 0


def _get_path(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in path.lstrip(".").split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _set_path(obj: Obj, path: str, value: Any) -> None:
    parts = path.lstrip(".").split(".")
    cur = obj
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


def _immutable_pod_spec(spec: Obj) -> Obj:
    """What a pod update may not change, as shallow views: every pod write compares these, so nothing is copied."""
    view = {k: v for k, v in spec.items() if k not in _POD_MUTABLE_SPEC}
    for key in ("containers", "initContainers"):
        if view.get(key):
            view[key] = [{f: v for f, v in c.items() if f != "image"} for c in view[key]]
    return view


def _default_pod(pod: Obj, old: Obj | None, causes: list[dict[str, str]]) -> None:
    """Pod defaults the API server's defaulting and admission set (Pod v1 defaults, ServiceAccount admission)."""
    spec = pod.setdefault("spec", {})
    containers = spec.get("containers")
    if not containers:
        causes.append(podspec.required("spec.containers"))
        return
    if old is not None:
        causes.extend(podspec.spec_errors(spec))
        if _immutable_pod_spec(old.get("spec") or {}) != _immutable_pod_spec(spec):
            causes.append(
                {
                    "reason": "FieldValueForbidden",
                    "field": "spec",
                    "message": "Forbidden: pod updates may not change fields other than "
                    "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                    "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing "
                    "tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                    "previously negative); assign nodes with the binding subresource",
                }
            )
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    qos_all_guaranteed, any_resources = True, False
    for c in containers + (spec.get("initContainers") or []):
        for port in c.get("ports") or []:
            port.setdefault("protocol", "TCP")
        image = str(c.get("image") or "")
        tag = image.rsplit("/", 1)[-1]
        c.setdefault("imagePullPolicy", "IfNotPresent" if ":" in tag and not tag.endswith(":latest") else "Always")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        res = c.setdefault("resources", {})
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        if limits and not requests:
            res["requests"] = dict(limits)
            requests = res["requests"]
        any_resources = any_resources or bool(limits or requests)
        for r in ("cpu", "memory"):
            if r not in limits or str(limits.get(r)) != str(requests.get(r, limits.get(r))):
                qos_all_guaranteed = False
    causes.extend(podspec.spec_errors(spec))
    status = pod.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault(
        "qosClass", "Guaranteed" if qos_all_guaranteed else "Burstable" if any_resources else "BestEffort"
    )


_ = string  # generateName uses the Kubernetes alphabet above, not string.ascii_*
