"""The power planner's shell: each pass, step every running job's power search, plan the limits under the
budgets, write the nodes' requests (with their expiry) and the policy's budget status.

The decisions are the core's (`power_modes.job_power_step`, `power.plan_power`); this module only carries them
to the job statuses (the reconciler writes those), the NodeTelemetry specs and the ClusterTrainingPolicy status.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from powertrain.api.policy import DEFAULT_POLICY_NAME, BudgetStatus
from powertrain.controllers.cache import ClusterCache
from powertrain.controllers.kube import POLICIES, ApiError, KubeClient
from powertrain.controllers.power_requests import PowerRequester
from powertrain.core.lifecycle import Event, JobPlan
from powertrain.core.power import PowerPlan, plan_power, power_limit_changes, renewals
from powertrain.core.power_modes import job_power_step
from powertrain.core.snapshot import ClusterSnapshot, JobKey
from powertrain.metrics import OperatorMetrics

log = logging.getLogger("powertrain.power")

BUDGET_EXCEEDED = "BudgetExceeded"


class PowerPlanner:
    def __init__(self, client: KubeClient, cache: ClusterCache, metrics: OperatorMetrics) -> None:
        self.client = client
        self.cache = cache
        self.metrics = metrics
        self.requester = PowerRequester(client, cache, metrics)
        self._written_status: dict[str, Any] = {}

    def step_jobs(self, snapshot: ClusterSnapshot, plans: list[JobPlan], now: datetime) -> PowerPlan:
        """Advance the search of every running job (into its planned status) and plan the limits."""
        caps: dict[JobKey, int] = {}
        running = [p for p in plans if p.status.phase == "Running" and p.create_gang is None and p.key in snapshot.jobs]
        for plan in running:
            state, notes = job_power_step(snapshot, plan.key, now)
            plan.status.power = state
            plan.events.extend(Event(n.reason, n.message, n.warning) for n in notes)
            if state.cap_watts is not None:
                caps[plan.key] = state.cap_watts
        power = plan_power(snapshot, caps)
        for plan in running:
            if plan.status.power is not None:
                cut = power.job_budget_caps.get(plan.key)
                if cut != plan.status.power.budget_cap_watts:
                    plan.status.power = plan.status.power.model_copy(update={"budget_cap_watts": cut})
        return power

    async def request_limits(
        self, snapshot: ClusterSnapshot, plan: PowerPlan, only: set[str] | None, now: datetime
    ) -> set[str]:
        """Write the nodes whose requests change or are due for renewal; returns the nodes to retry."""
        budgeted = bool(plan.budgets)
        changes = power_limit_changes(snapshot, None if budgeted else only, plan)
        for node, limits in renewals(snapshot, now).items():
            changes.setdefault(node, limits)
        if not changes:
            return set()
        return await self.requester.apply(changes, now)

    async def write_policy_status(self, plan: PowerPlan, now: datetime, problem: str | None = None) -> None:
        """Each budget's draw, headroom and capped GPUs on the default policy (and whether its spec was refused:
        `problem`); other policies say they are unused."""
        for obj in self.cache.items("policies"):
            name = str((obj.get("metadata") or {}).get("name") or "")
            if name == DEFAULT_POLICY_NAME:
                status = _default_status(plan.budgets, obj, now)
                valid = (
                    _condition(
                        "Valid", False, "InvalidSpec", f"{problem}; the previous valid policy stays in force", obj, now
                    )
                    if problem
                    else _condition("Valid", True, "Accepted", "the policy is in force", obj, now)
                )
                status["conditions"].append(valid)
                if problem:
                    status.pop("observedGeneration", None)
            else:
                status = {
                    "conditions": [
                        _condition(
                            "Active",
                            False,
                            "NotDefault",
                            f"only the policy named {DEFAULT_POLICY_NAME!r} is used: this one is ignored",
                            obj,
                            now,
                        )
                    ]
                }
            if self._written_status.get(name) == status:
                continue
            try:
                await self.client.merge_patch(POLICIES, name, {"status": status}, sub="status")
            except ApiError as exc:
                self.metrics.reconcile_errors.labels("patch_policy_status").inc()
                log.warning("ClusterTrainingPolicy %s: could not write status: %s (will retry)", name, exc)
                continue
            except Exception:
                self.metrics.reconcile_errors.labels("patch_policy_status").inc()
                log.exception("ClusterTrainingPolicy %s: unexpected error writing status (will retry)", name)
                continue
            self._written_status[name] = status
        budgets = {(b.level, b.domain): b.draw_watts for b in plan.budgets}
        self.metrics.sync_labelled(self.metrics.power_budget_draw, {k: float(v) for k, v in budgets.items()})


def _condition(kind: str, true: bool, reason: str, message: str, obj: dict[str, Any], now: datetime) -> dict[str, Any]:
    previous = {
        cond.get("type"): cond for cond in ((obj.get("status") or {}).get("conditions") or []) if isinstance(cond, dict)
    }.get(kind)
    status = "True" if true else "False"
    since = previous.get("lastTransitionTime") if previous and previous.get("status") == status else None
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _default_status(budgets: list[BudgetStatus], obj: dict[str, Any], now: datetime) -> dict[str, Any]:
    over = [b for b in budgets if b.headroom_watts < 0]
    problems = [b for b in budgets if b.message]
    if over:
        message = "; ".join(
            f"{b.level} {b.domain}: draw {b.draw_watts:.0f} W > budget {b.budget_watts} W "
            f"({b.capped_gpus} GPU(s) capped)"
            for b in over
        )
        condition = _condition(BUDGET_EXCEEDED, True, "DrawAboveBudget", message, obj, now)
    elif problems:
        message = "; ".join(f"{b.level} {b.domain}: {b.message}" for b in problems)
        condition = _condition(BUDGET_EXCEEDED, False, "BudgetProblem", message, obj, now)
    else:
        condition = _condition(BUDGET_EXCEEDED, False, "WithinBudget", "every budget holds", obj, now)
    return {
        "budgets": [b.to_wire() for b in budgets],
        "conditions": [condition],
        "observedGeneration": (obj.get("metadata") or {}).get("generation"),
    }
