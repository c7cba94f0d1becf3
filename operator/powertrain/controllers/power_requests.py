"""Write the core's power-limit requests into each node's NodeTelemetry spec, the agent's input channel.

Only nodes whose request changed are written. A merge patch replaces `spec.powerLimits` as a whole list,
which is right: the core computed the complete request of the node (every job's caps). The object normally
exists (the agent creates it to report); when it does not, it is created with the request (409 = the agent
created it meanwhile, so patch again). Failed writes are retried by the next pass: `apply` returns the
nodes to look at again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime

from powertrain.api import constants as c
from powertrain.controllers.cache import ClusterCache
from powertrain.controllers.kube import TELEMETRY, ApiError, KubeClient
from powertrain.core.power import REQUEST_TTL, PowerLimits, power_limits_wire
from powertrain.metrics import OperatorMetrics

log = logging.getLogger("powertrain.power")

NODE_CONCURRENCY = 32


class PowerRequester:
    def __init__(self, client: KubeClient, cache: ClusterCache, metrics: OperatorMetrics) -> None:
        self.client = client
        self.cache = cache
        self.metrics = metrics
        self._limit = asyncio.Semaphore(NODE_CONCURRENCY)

    async def apply(self, changes: Mapping[str, PowerLimits], now: datetime | None = None) -> set[str]:
        """Write every node's new request; returns the nodes whose write failed (for the next pass to retry).

        With `now`, each request carries `powerLimitsExpireAt` = now + REQUEST_TTL (renewed by later passes)."""
        nodes = list(changes)
        expires = (now + REQUEST_TTL).strftime("%Y-%m-%dT%H:%M:%SZ") if now is not None else None
        results = await asyncio.gather(*(self._one(node, changes[node], expires) for node in nodes))
        return {node for node, ok in zip(nodes, results, strict=True) if not ok}

    async def _one(self, node: str, limits: PowerLimits, expires: str | None = None) -> bool:
        async with self._limit:
            try:
                obj = await self._write(node, limits, expires)
            except ApiError as exc:
                self.metrics.reconcile_errors.labels("patch_power_limits").inc()
                log.warning("node %s: could not request power limits: %s (will retry)", node, exc)
                return False
            except Exception:
                self.metrics.reconcile_errors.labels("patch_power_limits").inc()
                log.exception("node %s: unexpected error requesting power limits (will retry)", node)
                return False
        if obj.get("metadata"):
            self.cache.upsert("telemetry", obj)  # read-your-writes: the next pass must not write it again
        if limits:
            watts = sorted(set(limits.values()))
            log.info("node %s: requested %s W on %d GPU(s)", node, "/".join(map(str, watts)), len(limits))
        else:
            log.info("node %s: withdrew all power-limit requests (GPUs back to their default)", node)
        return True

    async def _write(self, node: str, limits: PowerLimits, expires: str | None = None) -> dict[str, object]:
        spec: dict[str, object] = {"powerLimits": power_limits_wire(limits)}
        if expires is not None:
            spec["powerLimitsExpireAt"] = expires if limits else None
        patch = {"spec": spec}
        try:
            return await self.client.merge_patch(TELEMETRY, node, patch)
        except ApiError as exc:
            if not exc.not_found:
                raise
        if not limits:
            return {}  # nothing to withdraw from an object that is gone
        body = {"apiVersion": c.API_VERSION, "kind": "NodeTelemetry", "metadata": {"name": node}, **patch}
        try:
            return await self.client.create(TELEMETRY, body)
        except ApiError as exc:
            if not exc.conflict:
                raise
        return await self.client.merge_patch(TELEMETRY, node, patch)
