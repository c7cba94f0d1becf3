"""The single serialized scheduling loop: debounced on cluster changes, ticking for time-based decisions.

One pass at a time, over the whole cluster view: placement is a cluster-wide decision. Changes arriving
during a pass wake the next one. A tick (backoff expiry, deadlines, TTL) runs a pass even when nothing
changed. Only the leader acts; a replica that becomes leader first relists everything, since its watch
streams were paused while it followed. While kopf's watches are down (see supervisor.py) the loop is paused:
no passes over a view that no longer follows the cluster, and a relist first once the watches are back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from powertrain.controllers.cache import ClusterCache
from powertrain.controllers.kube import NODES, PODS, POLICIES, TELEMETRY, TRAINING_JOBS, ApiError, KubeClient, Resource
from powertrain.controllers.leadership import PeeringConfig, check_leadership
from powertrain.metrics import OperatorMetrics

log = logging.getLogger("powertrain.loop")

Pass = Callable[[datetime], Awaitable[None]]

RELIST: tuple[tuple[str, Resource], ...] = (
    ("nodes", NODES),
    ("pods", PODS),
    ("telemetry", TELEMETRY),
    ("jobs", TRAINING_JOBS),
    ("policies", POLICIES),
)


class SchedulingLoop:
    def __init__(
        self,
        client: KubeClient,
        cache: ClusterCache,
        metrics: OperatorMetrics,
        run_pass: Pass,
        peering: PeeringConfig,
        *,
        namespace: str | None = None,
        debounce_seconds: float = 0.05,
        tick_seconds: float = 1.0,
        resync_seconds: float = 60.0,
        leadership_check_seconds: float = 2.0,
        takeover_delay_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.clock = clock
        self.wall_clock = wall_clock
        self.client = client
        self.cache = cache
        self.metrics = metrics
        self.run_pass = run_pass
        self.peering = peering
        self.namespace = namespace
        self.debounce = debounce_seconds
        self.tick = tick_seconds
        self.resync = resync_seconds
        self.leadership_check = leadership_check_seconds
        # A replica that finds itself leading waits longer than the others take to notice it (their leadership
        # check interval plus watch latency) before acting, so an old and a new leader never act together.
        self.takeover_delay = takeover_delay_seconds if peering.name is not None else 0.0
        self._leads_since: float | None = None
        self._wake = asyncio.Event()
        self.is_leader = False
        self._leader_checked = 0.0
        self._last_relist = 0.0
        self.last_pass_monotonic: float | None = None
        self.passes = 0
        self.paused: str | None = None  # why no pass runs now; None while running

    def pause(self, reason: str) -> None:
        """Stop acting (and leading) until resume(); a pass already running finishes."""
        if self.paused is None:
            log.info("scheduling paused: %s", reason)
        self.paused = reason
        self.is_leader = False
        self._leads_since = None
        self.metrics.leader.set(0)

    def resume(self) -> None:
        """Act again, relisting first: the watches missed whatever happened while paused."""
        self.paused = None
        self._last_relist = float("-inf")
        self._wake.set()

    def health(self) -> dict[str, Any]:
        """What /healthz shows besides kopf's own liveness: whether this replica acts, and how recently it did."""
        age = None if self.last_pass_monotonic is None else round(self.clock() - self.last_pass_monotonic, 1)
        return {"leader": self.is_leader, "passes": self.passes, "seconds_since_last_pass": age}

    def poke(self, kind: str = "") -> None:
        self._wake.set()

    async def relist(self) -> None:
        results = await asyncio.gather(*(self._list(kind, res) for kind, res in RELIST), return_exceptions=True)
        for (kind, _), result in zip(RELIST, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, ApiError) and result.not_found and kind in ("telemetry", "policies"):
                    continue  # optional CRDs not installed: an empty view, not an error
                raise result
            self.cache.replace_all(kind, result)
        self._last_relist = self.clock()

    async def _list(self, kind: str, res: Resource) -> list[dict[str, Any]]:
        namespace = self.namespace if (res.namespaced and kind == "jobs") else None
        return await self.client.list(res, namespace)

    async def _update_leadership(self) -> bool:
        now = self.clock()
        if now - self._leader_checked < self.leadership_check and self.peering.name is not None:
            return self.is_leader
        self._leader_checked = now
        try:
            leads = await check_leadership(self.client, self.peering, self.wall_clock())
        except ApiError as exc:
            log.warning("cannot read the peering object (%s); not acting until it is readable", exc)
            leads = False
        if not leads:
            self._leads_since = None
        elif self._leads_since is None:
            self._leads_since = now
        acting = leads and now - (self._leads_since or now) >= self.takeover_delay
        if acting and not self.is_leader:
            log.info("this replica leads (identity %s); relisting the cluster", self.peering.identity)
            await self.relist()
        elif not acting and self.is_leader:
            log.info("another replica leads; pausing decisions")
        self.is_leader = acting
        self.metrics.leader.set(1 if acting else 0)
        return acting

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.tick)
                await asyncio.sleep(self.debounce)  # let a burst of events settle into one pass
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                if _cancelled_itself():
                    raise
            self._wake.clear()
            if self.paused is not None:
                continue
            try:
                if not await self._update_leadership():
                    continue
                if self.clock() - self._last_relist > self.resync:
                    await self.relist()  # safety net for anything a watch stream missed
                await self.run_pass(self.wall_clock())
                self.passes += 1
                self.last_pass_monotonic = self.clock()
                self.metrics.passes.inc()
            except asyncio.CancelledError:
                if _cancelled_itself():
                    raise
                log.info("a scheduling pass was interrupted while the watches stopped; retrying")
            except Exception:
                self.metrics.reconcile_errors.labels("pass").inc()
                log.exception("scheduling pass failed; retrying")
                await asyncio.sleep(min(self.tick, 1.0))


def _cancelled_itself() -> bool:
    """Whether the loop's own task was asked to stop, rather than a task it awaits (Python 3.11's wait_for and
    gather run their awaitables as tasks). kopf cancels every task it finds when its orchestration ends; the
    loop outlives a restart of kopf, so only its own cancellation ends it."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0
