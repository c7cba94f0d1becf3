"""Fault injection for reliability tests (sandbox only; never part of a real cluster's API).

In process: `server.faults.configure(error_rate=0.2, codes=(500, 429), verbs={"patch"}, resources={"pods"})`,
`server.faults.latency = 0.05`, `server.faults.drop_watches()`, `server.faults.conflict_watches(3)`,
`server.faults.clear()`.
Over HTTP (authenticated like every API call):
  GET    /sandbox/v1/faults                      → the current configuration
  POST   /sandbox/v1/faults  {"errorRate": 0.2, "codes": [500, 409, 429], "retryAfterSeconds": 1,
                              "verbs": ["create", "patch"], "resources": ["pods"], "latencySeconds": 0.05,
                              "seed": 7}           → replaces the configuration (absent fields take defaults)
  DELETE /sandbox/v1/faults                      → no faults
  POST   /sandbox/v1/faults/drop-watches         → closes every open watch connection now
  POST   /sandbox/v1/faults/watch-conflicts {"count": 3, "resources": ["trainingjobs.powertrain.dev"]}
                                                 → closes the open watches (of those resources) and answers
                                                   the next 3 watch requests (for them) 409 Conflict
Verbs are the Kubernetes request verbs (get, list, watch, create, update, patch, delete, deletecollection);
resources are plural names (`pods`) or plural.group (`trainingjobs.powertrain.dev`). Empty sets mean all.
Watch conflicts are counted, not drawn at random: a client that reconnects after them must see its watches
work again, which a rate of 1.0 on watches would never allow. They add to the random faults, and
`clear()` / DELETE clears them too.
Only resource requests are affected: discovery, OpenAPI, health and /sandbox paths never fail.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from powertrain.sandbox.errors import ApiError

ALLOWED_CODES = (409, 429, 500, 503)
ALLOWED_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


@dataclass
class Faults:
    error_rate: float = 0.0
    codes: tuple[int, ...] = (500,)
    retry_after_seconds: int = 1
    verbs: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    latency: float = 0.0
    injected: int = 0
    watch_conflicts: int = 0  # the next this many watch requests answer 409
    watch_conflict_resources: frozenset[str] = frozenset()
    dropper: Callable[[], int] | None = None  # closes every open watch; set by the server
    _rng: random.Random = field(default_factory=random.Random)

    def configure(
        self,
        *,
        error_rate: float = 0.0,
        codes: Iterable[int] = (500,),
        retry_after_seconds: int = 1,
        verbs: Iterable[str] = (),
        resources: Iterable[str] = (),
        latency: float = 0.0,
        seed: int | None = None,
    ) -> None:
        codes_t = tuple(int(c) for c in codes)
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"errorRate: {error_rate} is not allowed; it must lie within 0 and 1")
        bad = [c for c in codes_t if c not in ALLOWED_CODES]
        if bad or not codes_t:
            raise ValueError(f"codes: {list(codes_t)} is not allowed; choose from {list(ALLOWED_CODES)}")
        bad_verbs = sorted(set(verbs) - set(ALLOWED_VERBS))
        if bad_verbs:
            raise ValueError(f"verbs: {bad_verbs} are not verbs; choose from {list(ALLOWED_VERBS)}")
        if latency < 0 or retry_after_seconds < 0:
            raise ValueError("latencySeconds and retryAfterSeconds must not be negative")
        self.error_rate = error_rate
        self.codes = codes_t
        self.retry_after_seconds = retry_after_seconds
        self.verbs = frozenset(verbs)
        self.resources = frozenset(resources)
        self.latency = latency
        if seed is not None:
            self._rng.seed(seed)

    def clear(self) -> None:
        self.configure()
        self.watch_conflicts = 0
        self.watch_conflict_resources = frozenset()

    def conflict_watches(self, count: int, resources: Iterable[str] = ()) -> int:
        """Answer the next `count` watch requests (of `resources`; empty = all) 409 Conflict, and close the open
        watches so clients meet the conflicts at once when they reconnect. Returns how many watches were closed."""
        if count < 0:
            raise ValueError(f"count: {count} is not allowed; it must be 0 or more")
        self.watch_conflicts = count
        self.watch_conflict_resources = frozenset(resources)
        return self.drop_watches() if count else 0

    def drop_watches(self) -> int:
        """Close every open watch connection; returns how many were closed."""
        return self.dropper() if self.dropper is not None else 0

    def applies(self, verb: str, plural: str, group: str) -> bool:
        if self.verbs and verb not in self.verbs:
            return False
        return not self.resources or plural in self.resources or f"{plural}.{group}" in self.resources

    def maybe_fail(self, verb: str, plural: str, group: str) -> None:
        """Raise a counted watch conflict, else the configured error with probability error_rate."""
        if verb == "watch" and self.watch_conflicts > 0 and self._conflicts_on(plural, group):
            self.watch_conflicts -= 1
            self.injected += 1
            raise _conflict()
        if self.error_rate <= 0 or not self.applies(verb, plural, group):
            return
        if self._rng.random() >= self.error_rate:
            return
        self.injected += 1
        code = self._rng.choice(self.codes)
        if code == 429:
            raise ApiError(
                429,
                "TooManyRequests",
                "sandbox fault injection: too many requests, please try again later",
                details={"retryAfterSeconds": self.retry_after_seconds},
                headers={"Retry-After": str(self.retry_after_seconds)},
            )
        if code == 409:
            raise _conflict()
        if code == 503:
            raise ApiError(
                503,
                "ServiceUnavailable",
                "sandbox fault injection: service unavailable",
                headers={"Retry-After": str(self.retry_after_seconds)},
            )
        raise ApiError(500, "InternalError", "sandbox fault injection: internal error")

    def to_json(self) -> dict[str, Any]:
        return {
            "errorRate": self.error_rate,
            "codes": list(self.codes),
            "retryAfterSeconds": self.retry_after_seconds,
            "verbs": sorted(self.verbs),
            "resources": sorted(self.resources),
            "latencySeconds": self.latency,
            "watchConflicts": self.watch_conflicts,
            "injected": self.injected,
        }

    def _conflicts_on(self, plural: str, group: str) -> bool:
        res = self.watch_conflict_resources
        return not res or plural in res or f"{plural}.{group}" in res

    def conflicts_from_json(self, body: Any) -> int:
        if not isinstance(body, dict) or set(body) - {"count", "resources"}:
            raise ValueError('the body must be a JSON object {"count": N, "resources": [...]}')
        count = body.get("count", 1)
        resources = body.get("resources", [])
        if not isinstance(count, int) or isinstance(count, bool):
            raise ValueError(f"count: {count!r} is not an integer")
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            raise ValueError(f"resources: {resources!r} is not a list of resource names")
        return self.conflict_watches(count, resources)

    def from_json(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        known = {"errorRate", "codes", "retryAfterSeconds", "verbs", "resources", "latencySeconds", "seed"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ValueError(f"unknown fields {unknown}; allowed are {sorted(known)}")
        self.configure(
            error_rate=float(body.get("errorRate", 0.0)),
            codes=body.get("codes", [500]),
            retry_after_seconds=int(body.get("retryAfterSeconds", 1)),
            verbs=body.get("verbs", []),
            resources=body.get("resources", []),
            latency=float(body.get("latencySeconds", 0.0)),
            seed=body.get("seed"),
        )


def _conflict() -> ApiError:
    return ApiError(
        409,
        "Conflict",
        "sandbox fault injection: Operation cannot be fulfilled: the object has been "
        "modified; please apply your changes to the latest version and try again",
    )
