"""Run the operator in-process: kopf (watches, peering, liveness) + our scheduling loop, on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from powertrain.controllers.cache import ClusterCache
from powertrain.controllers.handlers import build_registry, configure_settings
from powertrain.controllers.kube import CLUSTER_PEERINGS, PEERINGS, ApiError, KubeClient, load_config
from powertrain.controllers.leadership import PeeringConfig, random_priority
from powertrain.controllers.loop import SchedulingLoop
from powertrain.controllers.reconciler import Reconciler
from powertrain.metrics import OperatorMetrics

log = logging.getLogger("powertrain.operator")


@dataclass
class OperatorOptions:
    namespace: str | None = None  # None = all namespaces
    peering: str | None = None  # None = standalone
    priority: int = field(default_factory=random_priority)
    peering_lifetime: int = 15
    metrics_port: int | None = 8080
    liveness_port: int | None = 8081
    kubeconfig: str | None = None
    tick_seconds: float = 1.0


def _identity(priority: int) -> str:
    # Unique per process, readable in the peering object: host/pod name, pid and priority.
    return f"{socket.gethostname()}@{os.getpid()}/p{priority}"


async def ensure_peering_object(client: KubeClient, peering: PeeringConfig) -> None:
    """kopf keeps its peers in an existing peering object but never creates it; make it exist (409 = fine)."""
    if peering.name is None:
        return
    if peering.namespace is None:
        body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": peering.name}}
        res = CLUSTER_PEERINGS
    else:
        body = {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering",
            "metadata": {"name": peering.name, "namespace": peering.namespace},
        }
        res = PEERINGS
    try:
        await client.create_or_get(res, body, peering.namespace)
    except ApiError as exc:
        # Without create permission (a locked-down chart creates it) kopf still works once it exists.
        log.warning("could not ensure peering object %s: %s", peering.name, exc)


async def run_operator(options: OperatorOptions, stop: asyncio.Event | None = None) -> None:
    metrics = OperatorMetrics()
    if options.metrics_port is not None:
        metrics.serve(options.metrics_port)
    config = load_config(options.kubeconfig)
    client = KubeClient(config)
    cache = ClusterCache()
    peering = PeeringConfig(
        name=options.peering,
        identity=_identity(options.priority),
        priority=options.priority,
        namespace=options.namespace,
    )
    reconciler = Reconciler(client, cache, metrics)
    loop = SchedulingLoop(
        client,
        cache,
        metrics,
        reconciler.run_pass,
        peering,
        namespace=options.namespace,
        tick_seconds=options.tick_seconds,
    )
    stop_event = stop if stop is not None else asyncio.Event()

    def stopping() -> None:
        stop_event.set()
        loop.poke()

    registry = build_registry(cache, loop, config, loop.health, stopping)
    settings = kopf.OperatorSettings()
    configure_settings(settings, peering_lifetime=options.peering_lifetime, namespaced=options.namespace is not None)
    await ensure_peering_object(client, peering)

    stop_flag: asyncio.Event = asyncio.Event()
    liveness = f"http://0.0.0.0:{options.liveness_port}/healthz" if options.liveness_port else None
    kopf_task = asyncio.create_task(
        kopf.operator(
            registry=registry,
            settings=settings,
            standalone=options.peering is None,
            peering_name=options.peering,
            priority=options.priority,
            identity=cast(Any, peering.identity),  # kopf's Identity is a NewType of str it does not export
            liveness_endpoint=liveness,
            clusterwide=options.namespace is None,
            namespaces=[options.namespace] if options.namespace else (),
            stop_flag=stop_flag,
        ),
        name="kopf",
    )
    loop_task = asyncio.create_task(loop.run(stop_event), name="scheduling-loop")
    stop_task = asyncio.create_task(stop_event.wait(), name="stop")
    log.info(
        "powertrain operator started: %s, peering %s (priority %d)",
        f"namespace {options.namespace}" if options.namespace else "all namespaces",
        options.peering or "standalone",
        options.priority,
    )
    try:
        done, _ = await asyncio.wait({kopf_task, loop_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stop_task and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        stop_event.set()
        stop_flag.set()
        for task in (loop_task, stop_task):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(kopf_task, timeout=10)
        await client.close()
