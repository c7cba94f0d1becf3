"""One scheduling pass of the shell: cache changes → the core's snapshot → the core's decisions → API actions.

The decisions are the core's (`powertrain.core.scheduler.schedule` and `powertrain.core.lifecycle.decide`);
this module only translates them into API calls, plus the two things that exist only in a real cluster:
the finalizer that gives a deleted job a clean teardown, and metrics.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime
from typing import Any

from powertrain.api import constants as c
from powertrain.api.policy import DEFAULT_POLICY_NAME
from powertrain.api.trainingjob import Phase, TrainingJobStatus
from powertrain.controllers.actions import CreateGang, DeletePods, EventNote, JobActions, JobRef
from powertrain.controllers.apply import FINALIZER, Applier
from powertrain.controllers.cache import ClusterCache, Key
from powertrain.controllers.kube import KubeClient
from powertrain.controllers.power_planner import PowerPlanner
from powertrain.controllers.usage import UsageLedger
from powertrain.core import conditions as cond
from powertrain.core.cost import cost_estimate
from powertrain.core.fragmentation import fragmented_gpus
from powertrain.core.lifecycle import JobPlan, decide_all, set_aside
from powertrain.core.placement import gpus_free_by_model
from powertrain.core.power import PowerPlan, power_budgets
from powertrain.core.scheduler import Decisions, describe_error, schedule
from powertrain.core.snapshot import ClusterSnapshot
from powertrain.core.topology import node_domain_rows
from powertrain.core.workload import render_gang, render_service
from powertrain.metrics import OperatorMetrics

GANG_RESTART_REASONS = (cond.REASON_POD_FAILED, cond.REASON_POD_MISSING, cond.REASON_NODE_LOST)

log = logging.getLogger("powertrain.reconciler")

FULL_POWER_CHECK_S = 60.0


SERVICE_ACCOUNT_ENV = "POWERTRAIN_SERVICE_ACCOUNT"
"""The operator pod's spec.serviceAccountName (downward API in the chart), with POD_NAMESPACE: no job may use it."""


def operator_account_from_env() -> tuple[str, str] | None:
    namespace, name = os.environ.get("POD_NAMESPACE"), os.environ.get(SERVICE_ACCOUNT_ENV)
    return (namespace, name) if namespace and name else None


class Reconciler:
    def __init__(
        self,
        client: KubeClient,
        cache: ClusterCache,
        metrics: OperatorMetrics,
        operator_account: tuple[str, str] | None = None,
    ) -> None:
        self.client = client
        self.cache = cache
        self.metrics = metrics
        self.applier = Applier(client, metrics, cache)
        self.power = PowerPlanner(client, cache, metrics)
        self.snapshot = ClusterSnapshot.empty()
        account = operator_account or operator_account_from_env()
        if account is None:
            log.warning(
                "the operator's service account is unknown (set POD_NAMESPACE and %s): jobs are not kept from using it",
                SERVICE_ACCOUNT_ENV,
            )
        else:
            self.snapshot.set_operator_account(*account)
        self.usage = UsageLedger()
        self.last_decision_seconds = 0.0
        self._topology_changed = True  # nodes or policy changed since the per-domain gauges were written
        self._power_dirty: set[str] = set()
        self.policy_problem: str | None = None
        self._power_full_check: datetime | None = None

    # Snapshot upkeep ---------------------------------------------------------------------------------------

    def sync_snapshot(self) -> None:
        """Apply what changed since the last pass; policy first (it re-derives topology), pods last."""
        changes = self.cache.drain_changes()
        snap = self.snapshot
        if changes["nodes"] or changes["policies"]:
            self._topology_changed = True
        for key, obj in changes["policies"].items():
            if key[1] == DEFAULT_POLICY_NAME:
                problem = snap.set_policy(obj)
                self.policy_problem = problem
                if problem:
                    log.warning("ClusterTrainingPolicy %s is invalid, keeping the previous one: %s", key[1], problem)
        for key, obj in changes["nodes"].items():
            snap.upsert_node(obj) if obj is not None else snap.remove_node(key[1])
        dirty = self._power_dirty  # nodes whose power-limit request may have changed
        for key, obj in changes["telemetry"].items():
            snap.upsert_telemetry(obj) if obj is not None else snap.remove_telemetry(key[1])
            dirty.add(key[1])
        for key, obj in changes["jobs"].items():
            dirty.update(self._job_nodes(key))
            if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
                snap.remove_job(*key)  # a job being deleted is torn down, never scheduled
            else:
                snap.upsert_job(obj)
            dirty.update(self._job_nodes(key))
        for key, obj in changes["pods"].items():
            before = snap.pods.get(key)
            snap.upsert_pod(obj) if obj is not None else snap.remove_pod(*key)
            after = snap.pods.get(key)
            dirty.update(p.node for p in (before, after) if p is not None and p.node is not None)

    def _job_nodes(self, key: Key) -> set[str]:
        return {p.node for p in self.snapshot.job_pods.get(key, {}).values() if p.node is not None}

    # The pass ----------------------------------------------------------------------------------------------

    async def run_pass(self, now: datetime) -> None:
        self.sync_snapshot()
        self.snapshot.create_backoff = self.applier.create_backoff(self.snapshot.jobs)
        started = time.perf_counter()
        decisions = schedule(self.snapshot, now)
        plans = decide_all(self.snapshot, now, decisions)
        self.last_decision_seconds = time.perf_counter() - started
        for plan in plans:
            if plan.status.phase == "Running" and plan.create_gang is None:
                self.usage.roll_up(self.snapshot, plan.key, plan.status, now)
                plan.status.cost_estimate = self._cost(plan)
            elif plan.status.phase != "Running":
                plan.status.usage = None  # rates of workers that no longer run would read as current
        self.usage.forget({p.key for p in plans if p.status.phase == "Running"})
        power = self.power.step_jobs(self.snapshot, plans, now)
        self.metrics.decision_time.observe(self.last_decision_seconds)
        actions = [a for a in (self._translate_guarded(p, now) for p in plans) if a is not None]
        actions += self._teardowns()
        self._gauges(plans, decisions)
        if actions:
            started = time.perf_counter()
            failed = await self.applier.apply_all(actions, now)
            log.info(
                "pass: %d jobs, %d placed, %d preempted, %d acted on (%d failed, retried next pass); "
                "decided in %.1f ms, applied in %.1f ms",
                len(plans),
                len(decisions.placements),
                len(decisions.preemptions),
                len(actions),
                failed,
                self.last_decision_seconds * 1000,
                (time.perf_counter() - started) * 1000,
            )
        await self._request_power_limits(now, power)
        await self.power.write_policy_status(power, now, self.policy_problem)

    async def _request_power_limits(self, now: datetime, power: PowerPlan) -> None:
        """Re-derive the requests of the nodes that changed (all nodes while budgets are set); every minute all
        of them, as a safety net; renew requests that would expire."""
        full = self._power_full_check is None or (now - self._power_full_check).total_seconds() >= FULL_POWER_CHECK_S
        if full:
            self._power_full_check = now
        only = None if full else self._power_dirty
        self._power_dirty = set()
        # failed nodes are tried again next pass
        self._power_dirty |= await self.power.request_limits(self.snapshot, power, only, now)

    def _translate_guarded(self, plan: JobPlan, now: datetime) -> JobActions | None:
        """Translate one plan; a plan that cannot be rendered (e.g. its pods) sets its job aside, not the pass."""
        try:
            return self._translate(plan, now)
        except Exception as exc:
            log.exception("job %s/%s: cannot act on its plan; set aside", *plan.key)
            self.metrics.reconcile_errors.labels("translate").inc()
            try:
                return self._translate(set_aside(self.snapshot, plan.key, now, describe_error(exc)), now)
            except Exception:
                log.exception("job %s/%s: cannot even record why it is set aside", *plan.key)
                return None

    def _translate(self, plan: JobPlan, now: datetime) -> JobActions | None:
        obj = self.cache.get("jobs", *plan.key)
        if obj is None:
            return None
        meta = obj.get("metadata") or {}
        ref = JobRef(plan.key[0], plan.key[1], str(meta.get("uid") or ""))
        finalizers = tuple(meta.get("finalizers") or ())
        actions = JobActions(
            job=ref,
            finalizers=finalizers,
            resource_version=meta.get("resourceVersion"),
            add_finalizer=FINALIZER not in finalizers and not plan.delete_job,
            delete_job=plan.delete_job,
            events=[EventNote(e.reason, e.message, e.warning) for e in plan.events],
            suspend_job=plan.suspend_job,
        )
        if plan.delete_pods:
            actions.delete_pods = DeletePods(
                ref, self._pod_refs(plan.key, plan.delete_pods), plan.delete_reason or "", plan.grace_period_seconds
            )
        info = self.snapshot.jobs.get(plan.key)
        if plan.create_gang is not None and info is not None:
            generation = plan.generation or info.generation + 1
            job = info.job
            if not job.metadata.get("namespace"):
                job.metadata["namespace"] = plan.key[0]
            status = job.status
            first_start = status is None or status.start_time is None  # a restart's wait is not queue wait
            submitted = status.submit_time if status and status.submit_time else plan.status.submit_time
            first_rank = plan.grow_from or 0  # an elastic grow: only the new ranks, same generation
            actions.gang_generation = generation if plan.grow_from is None else None
            actions.create_gang = CreateGang(
                job=ref,
                service=render_service(job),
                pods=tuple(render_gang(job, plan.create_gang.nodes, generation, first_rank)),
                nodes=plan.create_gang.nodes[first_rank:],
                queue=job.spec.queue,
                wait_seconds=(now - submitted).total_seconds()
                if submitted and first_start and not first_rank
                else None,
                grow=plan.grow_from is not None,
            )
        new_status = plan.status.to_wire()
        if new_status != _normalized(obj.get("status")):
            actions.status = _with_removals(new_status, obj.get("status") or {})
        self._count(plan)
        if not (
            actions.add_finalizer
            or actions.delete_pods
            or actions.create_gang
            or actions.status is not None
            or actions.events
            or actions.delete_job
            or actions.suspend_job
        ):
            return None
        return actions

    def _cost(self, plan: JobPlan) -> float | None:
        nodes = plan.status.placement.nodes if plan.status.placement is not None else []
        node = self.snapshot.nodes.get(nodes[0]) if nodes else None
        model = node.gpu_model if node is not None else ""
        status = plan.status
        return cost_estimate(self.snapshot.policy.cost, model, status.gpu_seconds, status.energy_joules)

    def _count(self, plan: JobPlan) -> None:
        queue = self._queue_of(plan.key)
        for event in plan.events:
            if event.reason == cond.REASON_PREEMPTED:
                self.metrics.preemptions.labels(queue).inc()
            elif event.reason == cond.REASON_SHRANK:
                self.metrics.resizes.labels(queue, "shrink").inc()  # a grow is counted once its pods are bound
            elif event.reason in GANG_RESTART_REASONS:
                self.metrics.gang_restarts.labels(queue, event.reason).inc()
            elif event.reason == cond.REASON_EVALUATION_FAILED:
                self.metrics.reconcile_errors.labels("evaluate").inc()  # a job set aside: worth an alert
            elif event.reason in (cond.REASON_STRAGGLER_MOVED, cond.REASON_IDLE_SUSPENDED, cond.REASON_DEFRAGMENTED):
                self.metrics.reschedules.labels(queue, event.reason).inc()

    def _queue_of(self, key: Key) -> str:
        info = self.snapshot.jobs.get(key)
        return info.queue if info is not None else "default"

    def _pod_refs(self, job: Key, names: tuple[str, ...]) -> tuple[tuple[str, str | None], ...]:
        out = []
        for name in names:
            pod = self.cache.get("pods", job[0], name)
            uid = (pod.get("metadata") or {}).get("uid") if pod else None
            out.append((name, str(uid) if uid else None))
        return tuple(out)

    def _teardowns(self) -> list[JobActions]:
        """Jobs being deleted: stop their gang gracefully, then let them go (remove our finalizer)."""
        out = []
        for obj in self.cache.items("jobs"):
            meta = obj.get("metadata") or {}
            if not meta.get("deletionTimestamp"):
                continue
            finalizers = tuple(meta.get("finalizers") or ())
            if FINALIZER not in finalizers:
                continue
            ref = JobRef(str(meta.get("namespace") or ""), str(meta.get("name") or ""), str(meta.get("uid") or ""))
            pods = [p for p in self.cache.pods_of_job(ref.namespace, ref.name) if _owned_by(p, ref.uid)]
            live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
            actions = JobActions(job=ref, finalizers=finalizers, resource_version=meta.get("resourceVersion"))
            if live:
                refs = tuple((p["metadata"]["name"], p["metadata"].get("uid")) for p in live)
                actions.delete_pods = DeletePods(ref, refs, "TrainingJob deleted")  # the pods' own grace period
            elif not pods:
                actions.remove_finalizer = True  # every worker is gone: the job may go
            else:
                continue  # workers still terminating
            out.append(actions)
        return out

    # Metrics -----------------------------------------------------------------------------------------------

    def _gauges(self, plans: list[JobPlan], decisions: Decisions) -> None:
        # Every queue of the policy (and any a job names) gets its series, at 0 while empty: a stat panel reads
        # "0 waiting", not "No data", and an alert over a sum does not vanish with the last job.
        queues = {q.name for q in self.snapshot.policy.queues} | {self._queue_of(p.key) for p in plans}
        self.metrics.start_queues(queues, GANG_RESTART_REASONS)
        by_phase: dict[tuple[str, ...], float] = {(str(ph), q): 0.0 for ph in Phase for q in queues}
        for plan in plans:
            phase = str(plan.status.phase or "Pending")
            key = (phase, self._queue_of(plan.key))
            by_phase[key] = by_phase.get(key, 0) + 1
        self.metrics.set_labelled(self.metrics.jobs, by_phase)
        pending: dict[tuple[str, ...], float] = {(q,): 0.0 for q in queues}
        for key in decisions.waiting:
            q = (self._queue_of(key),)
            pending[q] = pending.get(q, 0) + 1
        self.metrics.set_labelled(self.metrics.queue_pending, pending)
        free = gpus_free_by_model(self.snapshot)
        for key, placement in decisions.placements.items():
            info = self.snapshot.jobs.get(key)
            if info is not None:
                model = placement.gpu_model
                free[model] = free.get(model, 0) - len(placement.nodes) * info.gpus_per_replica
        allocated: dict[str, int] = {}
        for node in self.snapshot.nodes.values():
            if node.ready and not node.unschedulable and node.gpus:
                allocated[node.gpu_model] = allocated.get(node.gpu_model, 0) + node.used.get(c.GPU_RESOURCE, 0)
        self.metrics.set_labelled(self.metrics.gpus_allocated, {(m,): float(v) for m, v in allocated.items()})
        self.metrics.set_labelled(self.metrics.gpus_free, {(m,): float(max(v, 0)) for m, v in free.items()})
        fragmented = {m: 0 for m in allocated} | fragmented_gpus(free, decisions)
        self.metrics.set_labelled(self.metrics.gpus_fragmented, {(m,): float(v) for m, v in fragmented.items()})
        self._job_gauges(plans)
        if self._topology_changed:
            self._topology_changed = False
            rows = node_domain_rows(self.snapshot.topology)
            self.metrics.sync_labelled(self.metrics.node_domain_info, {row: 1.0 for row in rows})
            budgets = power_budgets(self.snapshot.policy, self.snapshot.topology)
            self.metrics.sync_labelled(self.metrics.power_budget, {k: float(v) for k, v in budgets.items()})

    def _job_gauges(self, plans: list[JobPlan]) -> None:
        """One series per existing job: deleted jobs' series go away with them."""
        info: dict[tuple[str, ...], float] = {}
        restarts: dict[tuple[str, ...], float] = {}
        caps: dict[tuple[str, ...], float] = {}
        activity: dict[tuple[str, ...], float] = {}
        network: dict[tuple[str, ...], float] = {}
        storage: dict[tuple[str, ...], float] = {}
        costs: dict[tuple[str, ...], float] = {}
        verdicts: dict[tuple[str, ...], float] = {}
        evidence: dict[tuple[str, ...], float] = {}
        flagged: dict[tuple[str, ...], float] = {}
        for plan in plans:
            ns, name = plan.key
            eff = plan.status.efficiency if plan.status.phase == "Running" else None
            if eff is not None:
                verdicts[(ns, name, str(eff.verdict))] = 1.0
                ev = eff.evidence
                for figure, value in (
                    ("sm", ev.sm_activity_percent),
                    ("tensor", ev.tensor_activity_percent),
                    ("dram", ev.dram_activity_percent),
                    ("slowest_ratio", ev.slowest_ratio),
                    ("power_throttled", ev.power_throttled_fraction),
                    ("thermal_throttled", ev.thermal_throttled_fraction),
                ):
                    if value is not None:
                        evidence[(ns, name, figure)] = value
                for c_ in plan.status.conditions:
                    if c_.type in (cond.STRAGGLER, cond.IDLE) and c_.status == "True":
                        flagged[(ns, name, c_.type)] = 1.0
            usage = plan.status.usage if plan.status.phase == "Running" else None
            if usage is not None:
                if usage.sm_activity_percent is not None:
                    spread = usage.sm_activity_percent
                    for stat, value in (("min", spread.min), ("median", spread.median), ("max", spread.max)):
                        activity[(ns, name, stat)] = value
                rx, tx = usage.network_rx_bytes_per_second, usage.network_tx_bytes_per_second
                read, write = usage.storage_read_bytes_per_second, usage.storage_write_bytes_per_second
                for into, pairs in ((network, (("rx", rx), ("tx", tx))), (storage, (("read", read), ("write", write)))):
                    for direction, rate in pairs:
                        if rate is not None:
                            into[(ns, name, direction)] = rate.total
            job = self.snapshot.jobs.get(plan.key)
            info[(ns, name, self._queue_of(plan.key), str(plan.status.phase or "Pending"))] = 1.0
            restarts[(ns, name)] = float(plan.status.restarts or 0)
            state = plan.status.power
            cap = state.cap_watts if state is not None else None
            if job is not None and job.job.spec.power.cap_watts is not None:
                cap = job.job.spec.power.cap_watts
            if cap is not None:
                caps[(ns, name)] = float(cap)
            if plan.status.cost_estimate is not None:
                costs[(ns, name)] = plan.status.cost_estimate
        self.metrics.sync_labelled(self.metrics.job_info, info)
        self.metrics.sync_labelled(self.metrics.job_gang_restarts, restarts)
        self.metrics.sync_labelled(self.metrics.job_power_cap, caps)
        self.metrics.sync_labelled(self.metrics.job_sm_activity, activity)
        self.metrics.sync_labelled(self.metrics.job_network, network)
        self.metrics.sync_labelled(self.metrics.job_storage, storage)
        self.metrics.sync_labelled(self.metrics.job_cost, costs)
        self.metrics.sync_labelled(self.metrics.job_efficiency, verdicts)
        self.metrics.sync_labelled(self.metrics.job_efficiency_evidence, evidence)
        self.metrics.sync_labelled(self.metrics.job_reschedule_condition, flagged)


def _normalized(status: Any) -> dict[str, Any] | None:
    if not isinstance(status, dict):
        return None
    try:
        return TrainingJobStatus.model_validate(status).to_wire()
    except ValueError:
        return None


def _with_removals(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """A merge patch that also clears fields the new status no longer has (e.g. placement after a restart, or
    status.power.capWatts once the power search drops the cap), at every level of nested objects."""
    patch: dict[str, Any] = dict(new)
    for key, value in old.items():
        if key not in new:
            patch[key] = None
        elif isinstance(value, dict) and isinstance(new[key], dict):
            patch[key] = _with_removals(new[key], value)
    return patch


def _owned_by(pod: dict[str, Any], uid: str) -> bool:
    refs = (pod.get("metadata") or {}).get("ownerReferences") or []
    return not uid or any(r.get("uid") == uid for r in refs)
