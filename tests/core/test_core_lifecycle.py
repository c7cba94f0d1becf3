"""Job lifecycle decisions: phases, conditions, gang restarts with backoff, deadlines, TTL, suspend, scale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core_builders import cluster, job, node, running, snap, telemetry, worker_pods

from powertrain.core import conditions as cond
from powertrain.core.lifecycle import JobPlan, decide
from powertrain.core.scheduler import Decisions, Preemption, schedule
from powertrain.core.snapshot import ClusterSnapshot

NOW = datetime(2026, 1, 2, tzinfo=UTC)
KEY = ("default", "llm")


def plan_for(s: ClusterSnapshot, now: datetime = NOW, decisions: Decisions | None = None) -> JobPlan:
    d = decisions if decisions is not None else schedule(s, now)
    plan = decide(s, KEY, now, d)
    assert plan is not None
    return plan


def cond_of(plan: JobPlan, type_: str) -> Any:
    return next((c for c in plan.status.conditions if c.type == type_), None)


def placed_job(**kw: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    obj = running(job("llm", replicas=2, **kw), ["s0-r0-n0", "s0-r0-n1"])
    return obj, worker_pods(obj)


def test_a_new_job_is_placed_and_its_gang_created() -> None:
    s = snap(cluster(), [job("llm", replicas=2, mode="Required")])
    plan = plan_for(s)
    assert plan.status.phase == "Running"
    assert plan.create_gang is not None
    assert plan.generation == 1
    assert plan.status.placement is not None
    assert plan.status.placement.level == "rack"
    assert len(plan.status.placement.nodes) == 2
    assert plan.status.start_time == NOW
    assert cond_of(plan, cond.SCHEDULED).status == "True"
    assert plan.events[0].message.startswith("Placed 2×8 GPUs NVIDIA-H200 in rack s0-r0 on 2 node(s)")


def test_unschedulable_condition_says_why_and_events_only_on_change() -> None:
    s = snap(cluster(spines=1, racks=1), [job("llm", replicas=9, mode="Required")])
    plan = plan_for(s)
    assert plan.status.phase == "Queued"
    unsched = cond_of(plan, cond.UNSCHEDULABLE)
    assert unsched.status == "True"
    assert unsched.reason == cond.REASON_NEVER_FITS
    assert "the largest rack" in unsched.message
    assert len(plan.events) == 1
    # The same situation a pass later: condition kept, no new event.
    again = job("llm", replicas=9, mode="Required", status=plan.status.model_dump(mode="json", by_alias=True))
    s.upsert_job(again)
    later = plan_for(s, NOW + timedelta(seconds=5))
    assert later.events == []
    assert cond_of(later, cond.UNSCHEDULABLE).last_transition_time == NOW


def test_running_gang_reports_readiness() -> None:
    obj, pods = placed_job()
    pods[1]["status"]["phase"] = "Pending"
    plan = plan_for(snap(cluster(), [obj], pods))
    assert plan.status.phase == "Running"
    assert plan.status.ready_replicas == 1
    assert cond_of(plan, cond.RUNNING).reason == cond.REASON_STARTING
    assert plan.status.gpus == 16
    assert not plan.delete_pods


def test_rank0_success_completes_the_job_and_stops_the_rest() -> None:
    obj, pods = placed_job()
    pods[0]["status"]["phase"] = "Succeeded"
    plan = plan_for(snap(cluster(), [obj], pods))
    assert plan.status.phase == "Succeeded"
    assert plan.status.completion_time == NOW
    assert plan.delete_pods == ("llm-worker-1",)


def test_a_failed_pod_restarts_the_whole_gang_with_backoff() -> None:
    obj, pods = placed_job()
    pods[1]["status"] = {
        "phase": "Failed",
        "containerStatuses": [{"name": "trainer", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}],
    }
    s = snap(cluster(), [obj], pods)
    plan = plan_for(s)
    assert plan.status.phase == "Queued"
    assert plan.status.restarts == 1
    assert set(plan.delete_pods) == {"llm-worker-0", "llm-worker-1"}
    assert plan.requeue_after == 10
    restarting = cond_of(plan, cond.RESTARTING)
    assert restarting.status == "True"
    assert restarting.reason == cond.REASON_POD_FAILED
    assert "restart 1 of 3 in 10s: pod llm-worker-1 failed (container trainer: exit code 137, OOMKilled)" in (
        restarting.message
    )
    # Once the pods are gone, the job waits out its backoff, then is placed again.
    s2 = snap(cluster(), [job("llm", replicas=2, status=plan.status.model_dump(mode="json", by_alias=True))])
    waiting = plan_for(s2, NOW + timedelta(seconds=3))
    assert waiting.create_gang is None
    assert waiting.requeue_after == 7
    again = plan_for(s2, NOW + timedelta(seconds=10))
    assert again.create_gang is not None
    assert cond_of(again, cond.RESTARTING).status == "False"


def test_backoff_limit_then_failed() -> None:
    obj, pods = placed_job(run_policy={"backoffLimit": 2})
    obj["status"]["restarts"] = 2
    pods[0]["status"]["phase"] = "Failed"
    plan = plan_for(snap(cluster(), [obj], pods))
    assert plan.status.phase == "Failed"
    failed = cond_of(plan, cond.FAILED)
    assert failed.reason == cond.REASON_BACKOFF_LIMIT_EXCEEDED
    assert "gang failed after 2 restart(s) (backoffLimit 2): pod llm-worker-0 failed" in failed.message
    assert plan.events[-1].warning


def test_lost_node_and_missing_pod_restart_the_gang() -> None:
    obj, pods = placed_job()
    nodes = cluster()
    nodes[1] = node("s0-r0-n1", rack="s0-r0", spine="s0", ready="Unknown", ready_since="2026-01-01T23:59:00Z")
    plan = plan_for(snap(nodes, [obj], pods))
    assert cond_of(plan, cond.RESTARTING).reason == cond.REASON_NODE_LOST
    assert "node s0-r0-n1 is not Ready" in plan.status.message
    # NotReady for less than the grace period: nothing happens yet.
    nodes[1] = node("s0-r0-n1", rack="s0-r0", spine="s0", ready="False", ready_since="2026-01-01T23:59:50Z")
    assert plan_for(snap(nodes, [obj], pods)).status.phase == "Running"
    # A deleted node or pod.
    gone = plan_for(snap([n for n in cluster() if n["metadata"]["name"] != "s0-r0-n1"], [obj], pods))
    assert "node s0-r0-n1 is gone" in gone.status.message
    missing = plan_for(snap(cluster(), [obj], pods[:1]))
    assert cond_of(missing, cond.RESTARTING).reason == cond.REASON_POD_MISSING


def test_unhealthy_gpu_moves_the_gang_without_counting_a_restart() -> None:
    obj, pods = placed_job()
    report = telemetry("s0-r0-n1", unhealthy=[2], pods={2: ("default", "llm-worker-1")})
    plan = plan_for(snap(cluster(), [obj], pods, telemetry=[report]))
    assert plan.status.phase == "Queued"
    assert not plan.status.restarts
    assert cond_of(plan, cond.RESTARTING).reason == cond.REASON_GPU_UNHEALTHY


def test_preempted_gang_is_stopped_gracefully_and_requeued() -> None:
    obj, pods = placed_job()
    s = snap(cluster(), [obj], pods)
    decisions = Decisions(preemptions={KEY: Preemption(KEY, ("default", "vip"), "preempted by default/vip")})
    plan = plan_for(s, decisions=decisions)
    assert plan.status.phase == "Queued"
    assert plan.grace_period_seconds == 30
    assert len(plan.delete_pods) == 2
    assert cond_of(plan, cond.PREEMPTED).status == "True"
    assert not plan.status.restarts


def test_suspend_and_resume() -> None:
    obj, pods = placed_job(run_policy={"suspend": True})
    plan = plan_for(snap(cluster(), [obj], pods))
    assert plan.status.phase == "Suspended"
    assert len(plan.delete_pods) == 2
    assert plan.status.placement is None
    resumed = job("llm", replicas=2, status=plan.status.model_dump(mode="json", by_alias=True))
    after = plan_for(snap(cluster(), [resumed]))
    assert after.status.phase == "Running"  # back in the queue and placed in the same pass
    assert cond_of(after, cond.SUSPENDED).status == "False"
    assert [e.reason for e in after.events] == [cond.REASON_RESUMED, cond.REASON_PLACED]


def test_scale_re_forms_the_gang_at_the_new_size() -> None:
    obj, pods = placed_job()
    obj["spec"]["replicas"] = 3
    plan = plan_for(snap(cluster(), [obj], pods))
    assert plan.status.phase == "Queued"
    assert len(plan.delete_pods) == 2
    assert "re-forming the gang at 3 replicas (was 2)" in plan.status.message
    assert not plan.status.restarts


def test_active_deadline() -> None:
    obj, pods = placed_job(run_policy={"activeDeadlineSeconds": 3600})
    obj["status"]["startTime"] = "2026-01-01T23:30:00Z"
    ok = plan_for(snap(cluster(), [obj], pods))
    assert ok.status.phase == "Running"
    assert ok.requeue_after == 1800
    late = plan_for(snap(cluster(), [obj], pods), NOW + timedelta(seconds=1800))
    assert late.status.phase == "Failed"
    assert cond_of(late, cond.FAILED).reason == cond.REASON_DEADLINE_EXCEEDED


def test_ttl_after_finished_deletes_the_job() -> None:
    done = job(
        "llm",
        run_policy={"ttlSecondsAfterFinished": 60},
        status={"phase": "Succeeded", "completionTime": "2026-01-02T00:00:00Z"},
    )
    s = snap(cluster(), [done])
    assert plan_for(s, NOW + timedelta(seconds=30)).requeue_after == 30
    assert plan_for(s, NOW + timedelta(seconds=60)).delete_job


def test_invalid_spec_gets_a_condition_and_creates_nothing() -> None:
    bad = job("llm")
    bad["spec"]["gpuPerReplica"] = 8
    plan = plan_for(snap(cluster(), [bad]))
    assert plan.status.phase == "Pending"
    invalid = cond_of(plan, cond.INVALID)
    assert invalid.status == "True"
    assert "spec.gpuPerReplica: unknown field; did you mean 'gpusPerReplica'?" in invalid.message
    assert plan.create_gang is None


def test_job_name_too_long_for_worker_hostnames() -> None:
    long_name = "a" * 60
    s = snap(cluster(), [job(long_name)])
    assert "is too long: worker hostnames" in s.invalid_jobs[("default", long_name)]


def test_leftover_pods_of_an_earlier_gang_are_deleted_first() -> None:
    old = running(job("llm", replicas=2), ["s0-r0-n0", "s0-r0-n1"])
    leftovers = worker_pods(old)
    s = snap(cluster(), [job("llm", replicas=2, status={"phase": "Queued"})], leftovers)
    plan = plan_for(s)
    assert plan.create_gang is None
    assert set(plan.delete_pods) == {"llm-worker-0", "llm-worker-1"}


def test_an_unreadable_edit_does_not_tear_down_a_running_gang() -> None:
    obj, pods = placed_job()
    obj["spec"]["replicas"] = 0  # the API server would refuse it; if it gets through anyway, nothing is killed
    s = snap(cluster(), [obj], pods)
    plan = plan_for(s)
    assert plan.status.phase == "Running"
    assert plan.delete_pods == ()
    assert cond_of(plan, cond.INVALID).status == "True"
    assert "spec.replicas" in plan.status.message
    # Its GPUs stay accounted for: a new job does not land on them.
    s.upsert_job(job("other", replicas=1))
    d = schedule(s, NOW)
    assert not set(d.placements[("default", "other")].nodes) & {"s0-r0-n0", "s0-r0-n1"}


def test_a_complete_bound_gang_whose_status_was_never_written_is_adopted() -> None:
    obj = running(job("llm", replicas=2), ["s0-r0-n0", "s0-r0-n1"])
    pods = worker_pods(obj, generation=4)
    queued = job("llm", replicas=2, status={"phase": "Queued"})
    queued["metadata"]["annotations"] = {"powertrain.dev/gang-generation": "4"}
    plan = plan_for(snap(cluster(), [queued], pods))
    assert plan.status.phase == "Running"
    assert plan.status.placement is not None
    assert plan.status.placement.nodes == ["s0-r0-n0", "s0-r0-n1"]
    assert plan.status.placement.level == "rack"
    assert plan.delete_pods == ()
    # A stale generation, or an incomplete gang, is deleted instead.
    queued["metadata"]["annotations"] = {"powertrain.dev/gang-generation": "5"}
    assert len(plan_for(snap(cluster(), [queued], pods)).delete_pods) == 2
    queued["metadata"]["annotations"] = {"powertrain.dev/gang-generation": "4"}
    assert plan_for(snap(cluster(), [queued], pods[:1])).delete_pods == ("llm-worker-0",)


def test_an_elastic_gang_started_smaller_is_adopted_at_its_own_size() -> None:
    # The operator started an elastic job (replicas 4, min 1) with the 2 workers that fit, then stopped before
    # writing its status: the 2-worker gang is whole and is taken over, not killed for missing ranks 2 and 3.
    obj = running(job("llm", replicas=2), ["s0-r0-n0", "s0-r0-n1"])
    pods = worker_pods(obj, generation=3)
    queued = job("llm", replicas=4, status={"phase": "Queued"})
    queued["spec"]["elastic"] = {"minReplicas": 1, "maxReplicas": 4}
    queued["metadata"]["annotations"] = {"powertrain.dev/gang-generation": "3"}
    plan = plan_for(snap(cluster(), [queued], pods))
    assert plan.status.phase == "Running"
    assert plan.delete_pods == ()
    assert plan.create_gang is None
    assert plan.status.placement is not None
    assert plan.status.placement.nodes == ["s0-r0-n0", "s0-r0-n1"]
    assert plan.status.gpus == 16
    assert plan.status.requested_replicas == 4
    assert plan.status.desired_replicas == 2
    # Ranks with a gap (rank 1 missing) are not a gang torchrun can continue: deleted and placed afresh.
    gap = [p for p in worker_pods(running(job("llm", replicas=3), ["s0-r0-n0", "s0-r0-n1", "s0-r0-n2"]), generation=3)]
    plan = plan_for(snap(cluster(), [queued], [gap[0], gap[2]]))
    assert set(plan.delete_pods) == {"llm-worker-0", "llm-worker-2"}
    # Fewer workers than minReplicas are not a gang either.
    queued["spec"]["elastic"] = {"minReplicas": 3, "maxReplicas": 4}
    assert len(plan_for(snap(cluster(), [queued], pods)).delete_pods) == 2
