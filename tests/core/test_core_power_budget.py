"""Budgets: limits that keep each domain's measured draw under its budget, cut by priority, and the PowerBudget
wait for a gang that cannot fit even at minimum limits."""

from __future__ import annotations

from typing import Any

from core_builders import cluster, job, policy, running, snap, worker_pods

from powertrain.core import conditions as cond
from powertrain.core.power import plan_power, power_limit_changes
from powertrain.core.scheduler import schedule

NODES = cluster(spines=1, racks=2, nodes=1, gpus=4)
A, B = NODES[0]["metadata"]["name"], NODES[1]["metadata"]["name"]  # rack s0-r0, rack s0-r1


def report(node: str, held: dict[int, str], watts: float = 680.0, idle_watts: float = 100.0) -> dict[str, Any]:
    gpus = []
    for i in range(4):
        pod = held.get(i)
        g: dict[str, Any] = {
            "index": i,
            "uuid": f"GPU-{node}-{i}",
            "powerWatts": watts if pod else idle_watts,
            "powerLimitWatts": 700,
            "defaultPowerLimitWatts": 700,
            "minPowerLimitWatts": 200,
            "maxPowerLimitWatts": 700,
        }
        if pod:
            g["pod"] = {"namespace": "default", "name": pod}
            g["clockEventReasons"] = ["SwPowerCap"] if watts >= 670 else []
        gpus.append(g)
    return {"metadata": {"name": node}, "status": {"gpus": gpus}}


def two_jobs(budget: dict[str, Any], low_priority: int = 0, high_priority: int = 10) -> Any:
    low = running(job("low", gpus=2, priority=low_priority), [A])
    high = running(job("high", gpus=2, priority=high_priority), [A])
    held = {0: "low-worker-0", 1: "low-worker-0", 2: "high-worker-0", 3: "high-worker-0"}
    return snap(
        NODES,
        [low, high],
        worker_pods(low) + worker_pods(high),
        telemetry=[report(A, held), report(B, {})],
        policy=policy(power=budget),
    )


def test_a_rack_over_its_budget_is_brought_under_it_lowest_priority_cut_first() -> None:
    s = two_jobs({"budgetLevel": "rack", "overrides": [{"domain": "s0-r0", "watts": 2200}], "nodeOverheadWatts": 100})
    plan = plan_power(s, {})
    limits = power_limit_changes(s, plan=plan)[A]
    assert "GPU-s0-r0-n0-2" not in limits
    assert "GPU-s0-r0-n0-3" not in limits
    assert sum(limits.values()) + 2 * 700 <= 2200 - 100
    assert limits["GPU-s0-r0-n0-0"] == limits["GPU-s0-r0-n0-1"] == 350  # equal priority: evenly
    status = next(b for b in plan.budgets if b.domain == "s0-r0")
    assert status.draw_watts == 4 * 680 + 100
    assert status.headroom_watts < 0
    assert status.capped_gpus == 2
    assert plan.job_budget_caps == {("default", "low"): 350}


def test_equal_priorities_are_cut_evenly_and_never_below_the_minimum() -> None:
    s = two_jobs({"clusterWatts": 1000}, low_priority=5, high_priority=5)
    plan = plan_power(s, {})
    limits = power_limit_changes(s, plan=plan)[A]
    assert set(limits.values()) == {200}  # 4 × 200 W + 4 idle × 100 W = 1200 W: the floor
    status = next(b for b in plan.budgets if b.level == "cluster")
    assert status.message is not None
    assert "cannot be held" in status.message


def test_a_budget_with_room_caps_nothing_and_a_missing_domain_is_reported() -> None:
    s = two_jobs({"budgetLevel": "rack", "domainWatts": 5000, "overrides": [{"domain": "nowhere", "watts": 100}]})
    plan = plan_power(s, {})
    assert plan.budget_limits == {}
    missing = next(b for b in plan.budgets if b.domain == "nowhere")
    assert missing.message is not None
    assert "no node" in missing.message


def test_a_gpu_below_its_limit_keeps_what_it_draws_and_lends_the_rest() -> None:
    low = running(job("low", gpus=2, priority=0), [A])
    high = running(job("high", gpus=2, priority=10), [A])
    held = {0: "low-worker-0", 1: "low-worker-0", 2: "high-worker-0", 3: "high-worker-0"}
    rep = report(A, held)
    for g in rep["status"]["gpus"][2:]:
        g["powerWatts"] = 300.0  # the high-priority job is data-starved
        g["clockEventReasons"] = []
    s = snap(
        NODES,
        [low, high],
        worker_pods(low) + worker_pods(high),
        telemetry=[rep, report(B, {})],
        policy=policy(power={"clusterWatts": 2600}),
    )
    limits = power_limit_changes(s, plan=plan_power(s, {}))[A]
    # The starved high-priority job keeps its draw plus margin and the rest of the slack; what it does not use
    # lets the low-priority job run uncapped: 2 × 400 + 2 × 700 = 2600 − 4 idle GPUs × 100 W.
    assert limits == {"GPU-s0-r0-n0-2": 400, "GPU-s0-r0-n0-3": 400}


def test_the_mode_cap_is_kept_when_lower_than_the_budget_cut() -> None:
    s = two_jobs({"clusterWatts": 2200})
    plan = plan_power(s, {("default", "high"): 300})
    limits = power_limit_changes(s, plan=plan)[A]
    # 2200 W − 4 idle GPUs × 100 W = 1800 W: the high-priority job asks for 300 W per GPU, the rest is the low one's.
    assert limits == {f"GPU-s0-r0-n0-{i}": w for i, w in enumerate((600, 600, 300, 300))}


def test_a_gang_that_cannot_fit_even_at_minimum_limits_waits_with_power_budget() -> None:
    s = two_jobs({"budgetLevel": "rack", "domainWatts": 700})
    waiting = job("new", gpus=4, replicas=1)
    s.upsert_job(waiting)
    decisions = schedule(s, s.jobs[("default", "high")].start_time)  # type: ignore[arg-type]
    why = decisions.waiting[("default", "new")]
    assert why.reason == cond.REASON_POWER_BUDGET
    assert "rack s0-r1" in why.message
    assert "700 W" in why.message


def test_a_gang_that_fits_a_budget_at_minimum_limits_is_placed() -> None:
    s = two_jobs({"budgetLevel": "rack", "domainWatts": 700})
    s.upsert_job(job("small", gpus=2, replicas=1))
    decisions = schedule(s, s.jobs[("default", "high")].start_time)  # type: ignore[arg-type]
    assert ("default", "small") in decisions.placements


def test_a_gang_held_for_locality_that_waits_for_the_budget_sets_no_wake_at_its_locality_deadline() -> None:
    # Power frees when a job ends or a budget rises (both events): a wake-up at the locality deadline would only
    # re-run the pass, and a replay that waits on wake-ups (the simulator) would never end.
    s = two_jobs({"budgetLevel": "rack", "domainWatts": 700})
    s.upsert_job(job("new", gpus=1, replicas=4, level="node"))
    decisions = schedule(s, s.jobs[("default", "high")].start_time)  # type: ignore[arg-type]
    assert decisions.waiting[("default", "new")].reason == cond.REASON_POWER_BUDGET
    assert decisions.wake_at is None
