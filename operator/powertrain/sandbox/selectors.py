"""Label and field selectors, parsed as the API server does (API concepts: "Labels and Selectors", "Field Selectors").

Label selectors support `=`, `==`, `!=`, `in`, `notin`, `key` (exists) and `!key` (does not exist), comma-joined.
Field selectors support `=`, `==` and `!=` on the fields each resource allows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from powertrain.sandbox.errors import ApiError, bad_request

_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        # != and notin also match objects without the key, as Kubernetes does.
        return labels.get(self.key) not in self.values


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def equalities(self) -> list[tuple[str, str]]:
        """The single-valued `key=value` requirements: an index can answer these without a scan."""
        return [(r.key, next(iter(r.values))) for r in self.requirements if r.op in ("=", "in") and len(r.values) == 1]

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split_top(text: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _check_key(key: str, selector: str) -> str:
    if not _KEY.match(key):
        raise bad_request(f"unable to parse requirement: invalid label key {key!r} in selector {selector!r}")
    return key


_SET = re.compile(r"^(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s*\((?P<vals>[^)]*)\)$")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse `labelSelector`; a syntax error is a 400 naming the selector and what is allowed."""
    if not text:
        return LabelSelector()
    reqs: list[Requirement] = []
    for part in _split_top(text):
        m = _SET.match(part)
        if m:
            vals = frozenset(v.strip() for v in m.group("vals").split(",") if v.strip())
            reqs.append(Requirement(_check_key(m.group("key"), text), m.group("op"), vals))
            continue
        for op in ("!=", "==", "="):
            if op in part:
                key, _, value = part.partition(op)
                reqs.append(
                    Requirement(_check_key(key.strip(), text), "!=" if op == "!=" else "=", frozenset([value.strip()]))
                )
                break
        else:
            if part.startswith("!"):
                reqs.append(Requirement(_check_key(part[1:].strip(), text), "!exists"))
            elif " " in part or "(" in part:
                raise bad_request(
                    f"unable to parse requirement {part!r} in label selector {text!r}: "
                    "allowed are key=value, key==value, key!=value, key in (a,b), key notin (a,b), key, !key"
                )
            else:
                reqs.append(Requirement(_check_key(part, text), "exists"))
    return LabelSelector(tuple(reqs))


def selector_from_match(sel: Mapping[str, Any] | None) -> LabelSelector:
    """A metav1.LabelSelector (matchLabels/matchExpressions) as a LabelSelector."""
    if not sel:
        return LabelSelector()
    reqs = [Requirement(k, "=", frozenset([str(v)])) for k, v in (sel.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in sel.get("matchExpressions") or []:
        reqs.append(Requirement(expr["key"], ops[expr["operator"]], frozenset(expr.get("values") or [])))
    return LabelSelector(tuple(reqs))


def selector_to_string(sel: Mapping[str, Any] | None) -> str:
    """metav1.LabelSelector → the string form (used for the scale subresource's status.selector)."""
    if not sel:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for expr in sel.get("matchExpressions") or []:
        op = expr["operator"]
        if op in ("In", "NotIn"):
            parts.append(f"{expr['key']} {op.lower()} ({','.join(expr.get('values') or [])})")
        elif op == "Exists":
            parts.append(expr["key"])
        else:
            parts.append(f"!{expr['key']}")
    return ",".join(parts)


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    value: str
    negate: bool


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all((field_value(obj, r.path) == r.value) != r.negate for r in self.requirements)

    def name(self) -> str | None:
        """`metadata.name=X` if present: lets the store answer with one lookup."""
        for r in self.requirements:
            if r.path == "metadata.name" and not r.negate:
                return r.value
        return None

    def equalities(self) -> list[tuple[str, str]]:
        return [(r.path, r.value) for r in self.requirements if not r.negate]

    def indexable(self) -> tuple[str, str] | None:
        """One positive equality (path, value), preferring metadata.name, that an index can serve."""
        positive = [(r.path, r.value) for r in self.requirements if not r.negate]
        positive.sort(key=lambda pv: pv[0] != "metadata.name")
        return positive[0] if positive else None

    @property
    def empty(self) -> bool:
        return not self.requirements


def field_value(obj: Mapping[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text: str | None, allowed: Iterable[str], resource: str) -> FieldSelector:
    if not text:
        return FieldSelector()
    allowed_set = set(allowed)
    reqs: list[FieldRequirement] = []
    for part in _split_top(text):
        for op in ("!=", "==", "="):
            if op in part:
                path, _, value = part.partition(op)
                path = path.strip()
                if path not in allowed_set:
                    raise bad_request(
                        f'"{path}" is not a known field selector: only {", ".join(sorted(allowed_set))} '
                        f"are supported for {resource}"
                    )
                reqs.append(FieldRequirement(path, value.strip(), op == "!="))
                break
        else:
            raise bad_request(f"invalid field selector {part!r}: expected field=value, field==value or field!=value")
    return FieldSelector(tuple(reqs))


__all__ = [
    "ApiError",
    "FieldSelector",
    "LabelSelector",
    "field_value",
    "parse_field_selector",
    "parse_label_selector",
    "selector_from_match",
    "selector_to_string",
]
