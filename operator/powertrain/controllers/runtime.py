"""Run the operator in-process: kopf (watches, peering, liveness) + our scheduling loop, on one event loop.

kopf runs under a Supervisor (supervisor.py) that restarts its watches when they end and waits for missing
CRDs; the process exits 0 only when asked to stop, and non-zero (CannotContinue) when going on cannot help.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from powertrain.controllers.cache import ClusterCache
from powertrain.controllers.crd_presence import POWERTRAIN_TYPES, missing_types, peering_type
from powertrain.controllers.handlers import build_registry, configure_settings
from powertrain.controllers.kube import CLUSTER_PEERINGS, PEERINGS, ApiError, KubeClient, Resource, load_config
from powertrain.controllers.leadership import PeeringConfig, random_priority
from powertrain.controllers.loop import SchedulingLoop
from powertrain.controllers.reconciler import Reconciler
from powertrain.controllers.supervisor import CannotContinue, KopfRun, Supervisor, SupervisorTiming, crd_check
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


def _check_port(port: int | None, flag: str) -> None:
    """Fail before anything starts when a port is taken, naming the flag that moves it."""
    if port is None:
        return
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError as exc:
            raise CannotContinue(_port_message(port, flag, exc)) from None


def _port_message(port: int, flag: str, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"port {port} is not available ({reason}); choose another with {flag} PORT, or {flag} 0 to disable it"


class _NoApiTracebacks(logging.Filter):
    """kopf logs a whole traceback for every watch that fails with an API error; the status and message in the
    line say all, and the supervisor says what happens next. Other errors keep their traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and isinstance(getattr(exc, "status", None), int):
            record.exc_info = None
            record.exc_text = None
        return True


# kopf's modules that log a failed watch, observer or orchestration (a logger's filter does not apply to the
# records of its children, so each is named).
_KOPF_REACTOR_LOGGERS = (
    "kopf._core.reactor.running",
    "kopf._core.reactor.orchestration",
    "kopf._core.reactor.observation",
    "kopf._core.reactor.queueing",
)


def _short_kopf_api_failures() -> None:
    for name in _KOPF_REACTOR_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoApiTracebacks) for f in logger.filters):
            logger.addFilter(_NoApiTracebacks())


def _install_signal_handlers(on_signal: Callable[[signal.Signals], None]) -> None:
    """SIGTERM/SIGINT stop the operator gracefully. kopf installs its own handlers each time it starts, which
    end only kopf; ours end the whole operator, so they are installed again after every kopf start."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)


def _kopf_runner(
    registry: kopf.OperatorRegistry,
    settings: kopf.OperatorSettings,
    options: OperatorOptions,
    peering: PeeringConfig,
    on_signal: Callable[[signal.Signals], None],
) -> KopfRun:
    liveness = f"http://0.0.0.0:{options.liveness_port}/healthz" if options.liveness_port else None

    async def run(stop_flag: asyncio.Event) -> None:
        # kopf.operator() is spawn_tasks + run_tasks; split, so that our signal handlers replace kopf's.
        ignored = asyncio.all_tasks()  # the embedding program's tasks: kopf leaves them alone when it stops
        tasks = await kopf.spawn_tasks(
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
        )
        _install_signal_handlers(on_signal)
        await kopf.run_tasks(tasks, ignored=ignored)

    return run


async def check_peering_types(client: KubeClient, options: OperatorOptions) -> None:
    """--peering without kopf's peering CRD leaves kopf idling forever with one log line: refuse instead.
    Falling back to standalone is no option: two replicas would both lead."""
    if options.peering is None:
        return
    res = peering_type(options.namespace is not None)
    try:
        missing = await missing_types(client, [res])
    except ApiError as exc:  # cannot tell now (API server down): kopf waits for it, and so do we
        log.warning("cannot check for kopf's peering CRD now: %s", exc)
        return
    if missing:
        raise CannotContinue(
            f"--peering {options.peering} needs kopf's peering CRD {missing[0]}, which the API server does not "
            "serve; install kopf's peering CRDs (the Helm chart ships them; kopf's documentation has peering.yaml), "
            "or run a single replica with --standalone"
        )


async def run_operator(
    options: OperatorOptions,
    stop: asyncio.Event | None = None,
    timing: SupervisorTiming | None = None,
) -> None:
    """Run until stopped (returns) or until it cannot go on (raises CannotContinue: exit non-zero)."""
    stop_event = stop if stop is not None else asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        log.info("%s received; stopping", sig.name)
        stop_event.set()

    _install_signal_handlers(on_signal)
    _short_kopf_api_failures()
    _check_port(options.liveness_port, "--liveness-port")
    metrics = OperatorMetrics()
    if options.metrics_port is not None:
        try:
            metrics.serve(options.metrics_port)
        except OSError as exc:
            raise CannotContinue(_port_message(options.metrics_port, "--metrics-port", exc)) from None
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
    loop.pause("the watches have not started yet")
    stopping_hooks: list[Callable[[], None]] = []

    def on_kopf_stop() -> None:
        loop.pause("the watches are stopping")
        for hook in stopping_hooks:
            hook()

    registry = build_registry(cache, loop, config, loop.health, on_kopf_stop)
    settings = kopf.OperatorSettings()
    configure_settings(settings, peering_lifetime=options.peering_lifetime, namespaced=options.namespace is not None)
    watched: list[Resource] = list(POWERTRAIN_TYPES)
    if options.peering is not None:
        watched.append(peering_type(options.namespace is not None))
    supervisor = Supervisor(
        _kopf_runner(registry, settings, options, peering, on_signal),
        crd_check(client, watched),
        loop,
        timing or SupervisorTiming(),
    )
    stopping_hooks.append(supervisor.note_kopf_stopping)
    loop_task = asyncio.create_task(loop.run(stop_event), name="scheduling-loop")
    try:
        await check_peering_types(client, options)
        await ensure_peering_object(client, peering)
        log.info(
            "powertrain operator started: %s, peering %s (priority %d)",
            f"namespace {options.namespace}" if options.namespace else "all namespaces",
            options.peering or "standalone",
            options.priority,
        )
        supervised = asyncio.create_task(supervisor.run(stop_event), name="supervisor")
        done, _ = await asyncio.wait({supervised, loop_task}, return_when=asyncio.FIRST_COMPLETED)
        if loop_task in done and not stop_event.is_set():
            ended = loop_task.exception()
            raise CannotContinue(f"the scheduling loop ended: {ended!r}") from ended
        await supervised  # raises CannotContinue when the supervisor gave up
    finally:
        stop_event.set()
        loop.poke()
        loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await loop_task
        await client.close()
