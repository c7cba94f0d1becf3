"""Carry out a pass's actions through the API, idempotently: every step may be retried after a crash.

Rules that keep a crash at any instant harmless:
- names are deterministic and every create treats 409 AlreadyExists as done;
- a gang's pods are all created (unbound pods hold no GPU) before the first one is bound;
- if a bind fails, the whole gang is deleted at once, so a partial gang never keeps GPUs;
- status is the full desired state, derived from the cluster again on every pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, TypeVar

from powertrain.api import constants as c
from powertrain.controllers.actions import BindPending, CreateGang, DeleteGang, JobActions, JobRef
from powertrain.controllers.events import post_event
from powertrain.controllers.kube import PODS, SERVICES, TRAINING_JOBS, ApiError, KubeClient
from powertrain.metrics import OperatorMetrics

log = logging.getLogger("powertrain.apply")

FINALIZER = "powertrain.dev/teardown"

T = TypeVar("T")


class Applier:
    def __init__(self, client: KubeClient, metrics: OperatorMetrics, *, job_concurrency: int = 64) -> None:
        self.client = client
        self.metrics = metrics
        self._jobs = asyncio.Semaphore(job_concurrency)

    async def apply_all(self, plans: list[JobActions], now: datetime) -> int:
        """Apply every job's actions concurrently; returns how many jobs had an error (retried next pass)."""
        results = await asyncio.gather(*(self._guarded(p, now) for p in plans))
        return sum(1 for ok in results if not ok)

    async def _guarded(self, plan: JobActions, now: datetime) -> bool:
        async with self._jobs:
            try:
                await self.apply_job(plan, now)
            except ApiError as exc:
                log.warning("job %s: %s (will retry)", plan.job, exc)
                return False
            except Exception:
                log.exception("job %s: unexpected error applying decisions (will retry)", plan.job)
                self.metrics.reconcile_errors.labels("apply").inc()
                return False
        return True

    async def _call(self, operation: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except ApiError:
            self.metrics.reconcile_errors.labels(operation).inc()
            raise

    async def apply_job(self, plan: JobActions, now: datetime) -> None:
        job = plan.job
        if plan.add_finalizer:
            await self._set_finalizers(plan, [*plan.finalizers, FINALIZER])
        if plan.delete_gang is not None:
            await self.delete_gang(plan.delete_gang)
        if plan.bind_pending is not None:
            await self.bind_pending(plan.bind_pending)
        if plan.create_gang is not None:
            await self.create_gang(plan.create_gang)
        if plan.status is not None:
            await self._call(
                "patch_status",
                self.client.merge_patch(TRAINING_JOBS, job.name, {"status": plan.status}, job.namespace, sub="status"),
            )
        body = _job_stub(job)
        for note in plan.events:
            await post_event(self.client, body, note.reason, note.message, now, warning=note.warning)
        if plan.remove_finalizer:
            await self._set_finalizers(plan, [f for f in plan.finalizers if f != FINALIZER])
        if plan.delete_job:
            await self._call("delete_job", self.client.delete(TRAINING_JOBS, job.name, job.namespace, uid=job.uid))

    async def _set_finalizers(self, plan: JobActions, finalizers: list[str]) -> None:
        job = plan.job
        meta: dict[str, Any] = {"finalizers": finalizers}
        if plan.resource_version:
            meta["resourceVersion"] = plan.resource_version  # stale view → 409 → next pass sees the truth
        try:
            await self._call(
                "patch_finalizers",
                self.client.merge_patch(TRAINING_JOBS, job.name, {"metadata": meta}, job.namespace),
            )
        except ApiError as exc:
            if not (exc.not_found or exc.conflict):
                raise

    async def gang_pods(self, job: JobRef) -> list[dict[str, Any]]:
        selector = f"{c.JOB_NAME_LABEL}={job.name}"
        pods = await self._call("list_pods", self.client.list(PODS, job.namespace, label_selector=selector))
        return [p for p in pods if _owned_by(p, job.uid)]

    async def delete_gang(self, action: DeleteGang) -> None:
        pods = await self.gang_pods(action.job)
        await asyncio.gather(
            *(
                self._call(
                    "delete_pod",
                    self.client.delete(
                        PODS,
                        p["metadata"]["name"],
                        action.job.namespace,
                        grace_period_seconds=action.grace_period_seconds,
                        uid=p["metadata"].get("uid"),
                    ),
                )
                for p in pods
                if not p["metadata"].get("deletionTimestamp")
            )
        )
        if not action.keep_service:
            try:
                await self.client.delete(SERVICES, action.job.name, action.job.namespace)
            except ApiError as exc:
                log.warning("job %s: could not delete its service: %s", action.job, exc)

    async def create_gang(self, action: CreateGang) -> None:
        job = action.job
        await self._call("create_service", self.client.create_or_get(SERVICES, action.service, job.namespace))
        created = await asyncio.gather(
            *(self._call("create_pod", self.client.create_or_get(PODS, p, job.namespace)) for p in action.pods)
        )
        # All pods exist now. A pod found already bound elsewhere is a leftover we do not understand: restart clean.
        bindings: list[tuple[str, str, str | None]] = []
        for (pod, _), node in zip(created, action.nodes, strict=True):
            bound_to = (pod.get("spec") or {}).get("nodeName")
            if bound_to and bound_to != node:
                log.warning(
                    "job %s: pod %s already bound to %s, not %s; restarting the gang",
                    job,
                    pod["metadata"]["name"],
                    bound_to,
                    node,
                )
                await self.delete_gang(DeleteGang(job, "Conflict", 0))
                raise ApiError(409, "Conflict", "gang pods bound to unexpected nodes")
            if not bound_to:
                bindings.append((pod["metadata"]["name"], node, pod["metadata"].get("uid")))
        await self._bind_all(job, bindings)
        self.metrics.placements.labels(action.queue).inc()
        if action.wait_seconds is not None:
            self.metrics.queue_wait.labels(action.queue).observe(max(0.0, action.wait_seconds))

    async def bind_pending(self, action: BindPending) -> None:
        await self._bind_all(action.job, [(pod, node, None) for pod, node in action.bindings])

    async def _bind_all(self, job: JobRef, bindings: list[tuple[str, str, str | None]]) -> None:
        async def bind(pod: str, node: str, uid: str | None) -> None:
            try:
                await self.client.bind(job.namespace, pod, node, uid)
            except ApiError as exc:
                if exc.conflict and "already" in exc.message.lower():
                    return  # bound by our previous incarnation
                raise

        results = await asyncio.gather(*(bind(*b) for b in bindings), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            # Some of the gang may hold GPUs now: release them all at once, never keep a partial gang.
            self.metrics.reconcile_errors.labels("bind_pod").inc(len(errors))
            await self.delete_gang(DeleteGang(job, "BindFailed", 0))
            first = errors[0]
            raise first if isinstance(first, ApiError) else ApiError(500, "BindFailed", str(first))


def _owned_by(pod: dict[str, Any], uid: str) -> bool:
    refs = (pod.get("metadata") or {}).get("ownerReferences") or []
    return not uid or any(r.get("uid") == uid for r in refs)


def _job_stub(job: JobRef) -> dict[str, Any]:
    return {"metadata": {"name": job.name, "namespace": job.namespace, "uid": job.uid}}
