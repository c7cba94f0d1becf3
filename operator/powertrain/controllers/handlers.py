"""The kopf handlers: they only keep the operator's cluster view current and wake the scheduling loop.

Every decision is taken by one serialized scheduling pass (see loop.py), never inside a handler: gang
placement is a cluster-wide decision, and per-object handlers running concurrently would race for GPUs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import kopf

from powertrain.api import constants as c
from powertrain.controllers.cache import ClusterCache
from powertrain.controllers.kube import ClusterConfig

GROUP = c.GROUP


class Waker(Protocol):
    def poke(self, kind: str) -> None: ...


# (kopf resource selector, cache kind). Pods: all of them, since other schedulers' pods use GPUs too.
WATCHED: tuple[tuple[tuple[str, ...], str], ...] = (
    (("v1", "nodes"), "nodes"),
    (("v1", "pods"), "pods"),
    ((GROUP, "v1alpha1", "nodetelemetries"), "telemetry"),
    ((GROUP, "v1alpha1", "trainingjobs"), "jobs"),
    ((GROUP, "v1alpha1", "clustertrainingpolicies"), "policies"),
)


def build_registry(
    cache: ClusterCache,
    waker: Waker,
    config: ClusterConfig,
    health: Callable[[], dict[str, Any]] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    for selector, kind in WATCHED:
        _register_feed(registry, selector, kind, cache, waker)

    # A private registry does not get kopf's default login; kopf connects exactly as our own client does.
    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        scheme, _sep, token = (config.auth_header or "").partition(" ")
        return kopf.ConnectionInfo(
            server=config.host,
            scheme=scheme or None,
            token=token or None,
            ca_path=config.ca_file,
            certificate_path=config.cert_file,
            private_key_path=config.key_file,
            insecure=not config.verify,
        )

    # The watches are about to stop (a restart by the supervisor, or the end): no pass over a view that stops
    # following the cluster.
    @kopf.on.cleanup(registry=registry)
    def stop_scheduling(**_: Any) -> None:
        if on_stop is not None:
            on_stop()

    @kopf.on.probe(id="scheduling", registry=registry)
    def scheduling_probe(**_: Any) -> dict[str, Any]:
        return health() if health is not None else {}

    return registry


def _register_feed(
    registry: kopf.OperatorRegistry, selector: tuple[str, ...], kind: str, cache: ClusterCache, waker: Waker
) -> None:
    @kopf.on.event(*selector, id=f"feed-{kind}", registry=registry)
    def feed(*, event: Any, **_: Any) -> None:
        obj = event.get("object")
        if not isinstance(obj, dict):
            return
        changed = cache.delete(kind, obj) if event.get("type") == "DELETED" else cache.upsert(kind, obj)
        if changed:
            waker.poke(kind)


def configure_settings(
    settings: kopf.OperatorSettings, *, peering_lifetime: int = 15, namespaced: bool = False
) -> None:
    """kopf tuned for a controller whose decisions live outside kopf's handlers."""
    # Our own Events describe decisions; kopf's per-handler chatter would drown them.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.watching.reconnect_backoff = 1.0
    settings.batching.idle_timeout = 1.0
    settings.batching.batch_window = 0.05
    settings.networking.request_timeout = 30
    settings.peering.lifetime = peering_lifetime
    # kopf SIGKILLs its thread (here: the process) 10 minutes after an orchestration ends without a stop flag,
    # i.e. after a failure; the supervisor restarts kopf after failures, so that timer would kill a healthy
    # operator. Signals are ours (runtime.py) and stop kopf through its stop flag, which never arms the timer.
    settings.process.ultimate_exiting_timeout = None
    settings.peering.clusterwide = not namespaced
    # kopf keeps its own bookkeeping in annotations under our prefix, never in our structural status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kopf.powertrain.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kopf.powertrain.dev", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "kopf.powertrain.dev/finalizer"
