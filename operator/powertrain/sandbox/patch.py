"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

Strategic merge follows "Update API Objects in Place Using kubectl patch" and the patchStrategy/patchMergeKey
tags of the core types: lists named below are merged by key, `finalizers` as a set, everything else replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonpatch

from powertrain.sandbox.errors import ApiError, bad_request

# List field → merge key, from the core/v1 and meta/v1 Go types (`patchMergeKey`, `patchStrategy:"merge"`).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "conditions": "type",
    "ownerReferences": "uid",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "taints": "key",
    "addresses": "type",
    "podIPs": "ip",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
}
# Primitive lists merged as sets.
SET_LISTS = {"finalizers"}

ListKey = Callable[[tuple[str, ...]], str | None]


def json_copy(value: Any) -> Any:
    """Deep copy of JSON data (dicts, lists, scalars): several times faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_copy(v) for v in value]
    return value


def builtin_list_key(path: tuple[str, ...]) -> str | None:
    """Merge key of the list at `path` (field names only) for built-in kinds, None when it is replaced."""
    name = path[-1]
    if name == "ports":
        # Container ports merge by containerPort; a Service's by port.
        return "containerPort" if len(path) >= 2 and path[-2] in ("containers", "initContainers") else "port"
    return MERGE_KEYS.get(name)


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return json_copy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def json_patch(target: dict[str, Any], ops: Any) -> dict[str, Any]:
    if not isinstance(ops, list):
        raise bad_request("a JSON patch must be a list of operations")
    try:
        result = jsonpatch.JsonPatch(ops).apply(target)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
        ) from exc
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
        raise ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
        ) from exc
    if not isinstance(result, dict):
        raise bad_request("a JSON patch must leave an object")
    return result


def strategic_merge_patch(target: Any, patch: Any, list_key: ListKey = builtin_list_key) -> Any:
    return _smp(target, patch, (), list_key)


def _smp(target: Any, patch: Any, path: tuple[str, ...], list_key: ListKey) -> Any:
    if not isinstance(patch, dict):
        return json_copy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: json_copy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    out = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            drop = set(map(_hashable, value or []))
            out[field] = [v for v in out.get(field) or [] if _hashable(v) not in drop]
            continue
        if value is None:
            out.pop(key, None)
            continue
        child_path = (*path, key)
        if isinstance(value, list):
            out[key] = _smp_list(out.get(key), value, child_path, list_key)
        else:
            merged = _smp(out.get(key), value, child_path, list_key)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
    if isinstance(retain, list):
        keep = set(retain)
        out = {k: v for k, v in out.items() if k in keep}
    return out


def _hashable(v: Any) -> Any:
    return repr(v) if isinstance(v, dict | list) else v


def _smp_list(current: Any, patch: list[Any], path: tuple[str, ...], list_key: ListKey) -> list[Any]:
    current_list = list(current) if isinstance(current, list) else []
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [json_copy(p) for p in patch if not (isinstance(p, dict) and p.get("$patch") == "replace")]
    if path[-1] in SET_LISTS:
        seen = list(current_list)
        for item in patch:
            if item not in seen:
                seen.append(item)
        return seen
    key = list_key(path)
    if key is None or not all(isinstance(p, dict) for p in patch):
        return [json_copy(p) for p in patch]
    out = list(current_list)
    for item in patch:
        if key not in item:
            raise bad_request(f"{'.'.join(path)}: every element of this list must have the merge key {key!r}")
        idx = next((i for i, c in enumerate(out) if isinstance(c, dict) and c.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(_smp({}, item, path, list_key))
        else:
            out[idx] = _smp(out[idx], item, path, list_key)
    return out


def schema_list_key(schema: dict[str, Any] | None) -> ListKey:
    """List merge keys from a CRD schema's `x-kubernetes-list-type: map` (used by server-side apply)."""

    def lookup(path: tuple[str, ...]) -> str | None:
        node = schema
        for part in path:
            if not isinstance(node, dict):
                return None
            if node.get("type") == "array":
                node = node.get("items")
            if not isinstance(node, dict):
                return None
            props = node.get("properties") or {}
            node = props.get(part) if part in props else node.get("additionalProperties")
        if isinstance(node, dict) and node.get("x-kubernetes-list-type") == "map":
            keys = node.get("x-kubernetes-list-map-keys") or []
            return str(keys[0]) if keys else None
        return None

    return lookup


def apply_patch(
    live: dict[str, Any], applied: dict[str, Any], list_key: ListKey, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Server-side apply, simplified: merge the applied configuration into the live object (lists by key), after
    removing what this manager applied last time and no longer applies (`previous`: its last configuration).

    Fields set by other managers are left alone; there is no per-field ownership, so no apply conflicts.
    """
    base = live if previous is None else _smp(live, removals(previous, applied, list_key), (), list_key)
    result = _smp(base, applied, (), list_key)
    assert isinstance(result, dict)
    return result


def removals(previous: Any, current: Any, list_key: ListKey, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """A strategic merge patch deleting what `previous` set and `current` no longer sets."""
    out: dict[str, Any] = {}
    if not isinstance(previous, dict) or not isinstance(current, dict):
        return out
    for key, old in previous.items():
        if key in ("apiVersion", "kind"):
            continue
        if key not in current:
            out[key] = None
            continue
        new = current[key]
        child = (*path, key)
        if isinstance(old, dict) and isinstance(new, dict):
            sub = removals(old, new, list_key, child)
            if sub:
                out[key] = sub
        elif isinstance(old, list) and isinstance(new, list):
            merge_key = list_key(child)
            if merge_key is None or not all(isinstance(i, dict) for i in old + new):
                continue  # atomic lists are replaced by the new configuration anyway
            kept = {i.get(merge_key): i for i in new}
            items: list[Any] = []
            for item in old:
                ident = item.get(merge_key)
                if ident not in kept:
                    items.append({merge_key: ident, "$patch": "delete"})
                else:
                    sub = removals(item, kept[ident], list_key, child)
                    if sub:
                        items.append({merge_key: ident, **sub})
            if items:
                out[key] = items
    return out
