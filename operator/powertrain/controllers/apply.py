"""Carry out a pass's actions through the API, idempotently: every step may be retried after a crash.

Rules that keep a crash at any instant harmless:
- names are deterministic and every create treats 409 AlreadyExists as done;
- a gang's pods are all created (unbound pods hold no GPU) before the first one is bound;
- if a bind fails, the whole gang is deleted at once, so a partial gang never keeps GPUs;
- the job's status (phase Running with the placement) is written only after the whole gang is bound; a crash
  before that leaves pods the core treats as leftovers of an unplaced job, which it deletes;
- every response is fed back into the cache (read-your-writes), so the next pass never acts on a view older
  than this operator's own writes (watch events may lag behind).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Container
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from powertrain.controllers.actions import CreateGang, DeletePods, JobActions, JobRef
from powertrain.controllers.cache import ClusterCache
from powertrain.controllers.events import post_event
from powertrain.controllers.kube import PODS, SERVICES, TRAINING_JOBS, ApiError, KubeClient
from powertrain.core.backoff import backoff_seconds, transient_backoff_seconds
from powertrain.core.workload import GANG_GENERATION_ANNOTATION
from powertrain.kubeclient import TRANSIENT
from powertrain.metrics import OperatorMetrics

log = logging.getLogger("powertrain.apply")

FINALIZER = "powertrain.dev/teardown"

T = TypeVar("T")


@dataclass(frozen=True)
class CreateFailure:
    """Creating (or binding) a job's gang failed `failures` times in a row; the next try waits until `not_before`."""

    failures: int
    not_before: datetime
    message: str


class Applier:
    def __init__(
        self, client: KubeClient, metrics: OperatorMetrics, cache: ClusterCache, *, job_concurrency: int = 64
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.cache = cache
        self._jobs = asyncio.Semaphore(job_concurrency)
        self.create_failures: dict[tuple[str, str], CreateFailure] = {}

    def create_backoff(self, known: Container[tuple[str, str]]) -> dict[tuple[str, str], tuple[datetime, str]]:
        """Jobs whose gang creation keeps failing, for the core's next pass (see ClusterSnapshot.create_backoff)."""
        for key in [k for k in self.create_failures if k not in known]:
            del self.create_failures[key]  # the job is gone
        return {k: (f.not_before, f.message) for k, f in self.create_failures.items()}

    def _create_failed(self, job: JobRef, error: BaseException, now: datetime) -> None:
        key = (job.namespace, job.name)
        previous = self.create_failures.get(key)
        failures = (previous.failures if previous else 0) + 1
        # A refusal that stays until someone acts (quota, RBAC, a missing namespace) waits like a gang restart;
        # a conflict or an unavailable server is tried again soon.
        transient = (
            not isinstance(error, ApiError)
            or error.status in TRANSIENT
            or (error.conflict and error.reason != "AlreadyExists")
        )
        delay = transient_backoff_seconds(failures) if transient else backoff_seconds(failures)
        # str() of an ApiError leads with the HTTP status and reason (403 Forbidden, 403 ... exceeded quota): what
        # an administrator greps for first.
        message = f"creating the worker pods failed {failures} time(s) in a row: {error}"
        self.create_failures[key] = CreateFailure(failures, now + timedelta(seconds=delay), message)
        log.warning("job %s: %s; next try in %.0fs", job, message, delay)

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

    def _seen(self, kind: str, obj: dict[str, Any]) -> None:
        if obj.get("metadata"):
            self.cache.upsert(kind, obj)

    async def apply_job(self, plan: JobActions, now: datetime) -> None:
        job = plan.job
        if plan.add_finalizer:
            await self._set_finalizers(plan, [*plan.finalizers, FINALIZER])
        if plan.delete_pods is not None:
            await self.delete_pods(plan.delete_pods)
        if plan.create_gang is not None:
            if plan.gang_generation is not None:
                patch = {"metadata": {"annotations": {GANG_GENERATION_ANNOTATION: str(plan.gang_generation)}}}
                self._seen(
                    "jobs",
                    await self._call(
                        "annotate_job", self.client.merge_patch(TRAINING_JOBS, job.name, patch, job.namespace)
                    ),
                )
            try:
                await self.create_gang(plan.create_gang)
            except ApiError as exc:
                if exc.status not in (400, 422):
                    self._create_failed(job, exc, now)  # quota, webhook, server trouble: retry, but backed off
                    raise
                # The API server refuses the pods the template makes: retrying cannot help, so the job fails
                # with the server's own words (the CRD cannot check a whole pod template up front).
                await self._reject(plan, exc, now)
                return
            except Exception as exc:
                self._create_failed(job, exc, now)
                raise
            self.create_failures.pop((job.namespace, job.name), None)
        if plan.status is not None:
            updated = await self._call(
                "patch_status",
                self.client.merge_patch(TRAINING_JOBS, job.name, {"status": plan.status}, job.namespace, sub="status"),
            )
            self._seen("jobs", updated)
        if plan.suspend_job:
            suspend: dict[str, Any] = {"spec": {"runPolicy": {"suspend": True}}}
            self._seen(
                "jobs",
                await self._call(
                    "suspend_job", self.client.merge_patch(TRAINING_JOBS, job.name, suspend, job.namespace)
                ),
            )
        body = _job_stub(job)
        for note in plan.events:
            await post_event(self.client, body, note.reason, note.message, now, warning=note.warning)
        if plan.remove_finalizer:
            await self._set_finalizers(plan, [f for f in plan.finalizers if f != FINALIZER])
        if plan.delete_job:
            await self._call("delete_job", self.client.delete(TRAINING_JOBS, job.name, job.namespace, uid=job.uid))

    async def _reject(self, plan: JobActions, exc: ApiError, now: datetime) -> None:
        job = plan.job
        message = f"the API server rejected the worker pods: {exc.message}"
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        conditions = [
            c for c in ((plan.status or {}).get("conditions") or []) if c.get("type") not in ("Invalid", "Failed")
        ]
        conditions += [
            {
                "type": t,
                "status": "True",
                "reason": "PodTemplateRejected",
                "message": message,
                "lastTransitionTime": stamp,
            }
            for t in ("Invalid", "Failed")
        ]
        status = {
            "phase": "Failed",
            "message": message,
            "conditions": conditions,
            "completionTime": stamp,
            "placement": None,
            "gpus": 0,
        }
        updated = await self._call(
            "patch_status",
            self.client.merge_patch(TRAINING_JOBS, job.name, {"status": status}, job.namespace, sub="status"),
        )
        self._seen("jobs", updated)
        await post_event(self.client, _job_stub(job), "PodTemplateRejected", message, now, warning=True)

    async def _set_finalizers(self, plan: JobActions, finalizers: list[str]) -> None:
        job = plan.job
        meta: dict[str, Any] = {"finalizers": finalizers}
        if plan.resource_version:
            meta["resourceVersion"] = plan.resource_version  # stale view → 409 → next pass sees the truth
        try:
            updated = await self._call(
                "patch_finalizers", self.client.merge_patch(TRAINING_JOBS, job.name, {"metadata": meta}, job.namespace)
            )
        except ApiError as exc:
            if exc.not_found or exc.conflict:
                return
            raise
        self._seen("jobs", updated)

    async def delete_pods(self, action: DeletePods) -> None:
        async def one(name: str, uid: str | None) -> None:
            try:
                gone = await self.client.delete(
                    PODS, name, action.job.namespace, grace_period_seconds=action.grace_period_seconds, uid=uid
                )
            except ApiError:
                self.metrics.reconcile_errors.labels("delete_pod").inc()
                raise
            if gone:
                log.info("job %s: deleting pod %s (%s)", action.job, name, action.reason)

        await asyncio.gather(*(one(name, uid) for name, uid in action.pods))

    async def create_gang(self, action: CreateGang) -> None:
        job = action.job
        await self._call("create_service", self.client.create_or_get(SERVICES, action.service, job.namespace))
        results = await asyncio.gather(
            *(self._call("create_pod", self.client.create_or_get(PODS, p, job.namespace)) for p in action.pods),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            made = [r[0] for r in results if not isinstance(r, BaseException)]
            await self._delete_created(job, made, "creating the gang failed")  # unbound, but do not leave them
            first = errors[0]
            raise first if isinstance(first, ApiError) else ApiError(500, "CreateFailed", str(first))
        created = [r for r in results if not isinstance(r, BaseException)]
        bindings: list[tuple[dict[str, Any], str]] = []
        for (pod, _), node in zip(created, action.nodes, strict=True):
            bound_to = (pod.get("spec") or {}).get("nodeName")
            if bound_to and bound_to != node:
                # A leftover we did not expect (the core deletes leftovers before placing): start clean.
                await self._delete_created(job, [p for p, _ in created], "pod bound to an unexpected node")
                raise ApiError(409, "Conflict", f"pod {pod['metadata']['name']} is already bound to {bound_to}")
            if not bound_to:
                bindings.append((pod, node))
        await self._bind_all(job, bindings, [p for p, _ in created])
        for pod, _ in created:
            self._seen("pods", pod)
        if action.grow:
            self.metrics.resizes.labels(action.queue, "grow").inc()
        else:
            self.metrics.placements.labels(action.queue).inc()
        if action.wait_seconds is not None:
            self.metrics.queue_wait.labels(action.queue).observe(max(0.0, action.wait_seconds))

    async def _bind_all(
        self, job: JobRef, bindings: list[tuple[dict[str, Any], str]], gang: list[dict[str, Any]]
    ) -> None:
        async def bind(pod: dict[str, Any], node: str) -> None:
            meta = pod["metadata"]
            try:
                await self.client.bind(job.namespace, meta["name"], node, meta.get("uid"))
            except ApiError as exc:
                if not (exc.conflict and "already" in exc.message.lower()):
                    raise
            # The bound pod as the next pass must see it, before its watch event arrives.
            pod.setdefault("spec", {})["nodeName"] = node

        results = await asyncio.gather(*(bind(p, n) for p, n in bindings), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            # Part of the gang may hold GPUs now: release the whole gang at once, never keep a partial one.
            self.metrics.reconcile_errors.labels("bind_pod").inc(len(errors))
            await self._delete_created(job, gang, "binding failed")
            first = errors[0]
            raise first if isinstance(first, ApiError) else ApiError(500, "BindFailed", str(first))

    async def _delete_created(self, job: JobRef, pods: list[dict[str, Any]], reason: str) -> None:
        refs = tuple((p["metadata"]["name"], p["metadata"].get("uid")) for p in pods)
        await self.delete_pods(DeletePods(job, refs, reason, 0))


def _job_stub(job: JobRef) -> dict[str, Any]:
    return {"metadata": {"name": job.name, "namespace": job.namespace, "uid": job.uid}}
