"""The LAS queue order: least attained GPU-time first within a priority, bounded preemption between bands,
a starvation guard, and attained service kept in the job's status (it survives operator restarts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core_builders import cluster, job, policy, running, snap, worker_pods

from powertrain.api.policy import Queueing
from powertrain.core import conditions as cond
from powertrain.core.lifecycle import decide_all
from powertrain.core.scheduler import schedule
from powertrain.core.snapshot import ClusterSnapshot
from powertrain.sim.cluster import parse_cluster
from powertrain.sim.engine import Policy, simulate
from powertrain.sim.trace import TraceJob

T0 = datetime(2026, 1, 1, tzinfo=UTC)
D = "default"
HOUR = 3600


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _iso(seconds: float) -> str:
    return _at(seconds).isoformat()


def _las(**queueing: Any) -> dict[str, Any]:
    return policy(queueing={"order": "LAS", **queueing})


def _stopped(attained_gpu_hours: float, stopped_at: float = 0) -> dict[str, Any]:
    """The status the lifecycle leaves on a gang that ran before and was stopped."""
    return {
        "phase": "Queued",
        "attainedGpuSeconds": attained_gpu_hours * HOUR,
        "conditions": [{"type": "Scheduled", "status": "False", "lastTransitionTime": _iso(stopped_at)}],
    }


def _one_node(jobs: list[dict[str, Any]], pol: dict[str, Any], pods: list[dict[str, Any]] = ()) -> ClusterSnapshot:  # type: ignore[assignment]
    return snap(cluster(spines=1, racks=1, nodes=1), jobs, list(pods), policy=pol)


def test_less_attained_service_goes_first_within_a_priority() -> None:
    served = job("served", replicas=1, created=_iso(0), status=_stopped(20))
    fresh = job("fresh", replicas=1, created=_iso(60))
    blocker = running(job("blocker", replicas=1, priority=5), ["s0-r0-n0"])
    jobs = [blocker, served, fresh]
    pods = worker_pods(blocker)
    fifo = schedule(_one_node(jobs, policy()), _at(120))
    las = schedule(_one_node(jobs, _las()), _at(120))
    assert fifo.positions[(D, "served")] < fifo.positions[(D, "fresh")]
    assert las.positions[(D, "fresh")] < las.positions[(D, "served")]
    del pods


def _long_runner(started: float, **status: Any) -> dict[str, Any]:
    obj = running(job("long", replicas=1, created=_iso(0)), ["s0-r0-n0"], start=_iso(started), **status)
    return obj


def test_a_job_in_a_lower_band_preempts_a_gang_that_attained_more_and_the_status_keeps_the_count() -> None:
    long = _long_runner(0)
    fresh = job("fresh", replicas=1, created=_iso(3 * HOUR))
    jobs = [long, fresh]
    pods = worker_pods(long)
    now = _at(3 * HOUR)  # 8 GPUs × 3 h = 24 GPU-hours: band 2; fresh is in band 0
    assert not schedule(_one_node(jobs, policy(), pods), now).preemptions  # FairShare: equal priority never preempts
    s = _one_node(jobs, _las(), pods)
    d = schedule(s, now)
    assert (D, "long") in d.preemptions
    assert "least attained service" in d.preemptions[(D, "long")].message
    assert d.waiting[(D, "fresh")].reason == cond.REASON_WAITING_FOR_PREEMPTION
    plan = next(p for p in decide_all(s, now, d) if p.key == (D, "long"))
    assert plan.status.preemptions == 1
    assert plan.status.attained_gpu_seconds == 8 * 3 * HOUR


def test_las_preemption_is_bounded_per_job_and_by_run_time() -> None:
    fresh = job("fresh", replicas=1, created=_iso(3 * HOUR))
    now = _at(3 * HOUR)
    # Already preempted maxPreemptionsPerJob (3) times: never again.
    worn = _long_runner(0, preemptions=3)
    assert not schedule(_one_node([worn, fresh], _las(), worker_pods(worn)), now).preemptions
    # Restarted 15 min ago with 30 GPU-hours attained before: below 10 × restartCostSeconds (120 s) = 20 min of run.
    recent = _long_runner(3 * HOUR - 900, attainedGpuSeconds=30 * HOUR)
    assert not schedule(_one_node([recent, fresh], _las(), worker_pods(recent)), now).preemptions
    # With a 60 s restart cost, 10 min of run are enough.
    assert schedule(_one_node([recent, fresh], _las(restartCostSeconds=60), worker_pods(recent)), now).preemptions


def test_the_starvation_guard_puts_a_long_waiting_job_back_in_band_0() -> None:
    served = job("served", replicas=1, created=_iso(0), status=_stopped(100, stopped_at=0))
    fresh = job("fresh", replicas=1, created=_iso(60))
    blocker = running(job("blocker", replicas=1, priority=5), ["s0-r0-n0"])
    jobs = [blocker, served, fresh]
    pol = _las(starvationSeconds=4 * HOUR)
    before = schedule(_one_node(jobs, pol, worker_pods(blocker)), _at(4 * HOUR - 1))
    after = schedule(_one_node(jobs, pol, worker_pods(blocker)), _at(4 * HOUR))
    assert before.positions[(D, "fresh")] < before.positions[(D, "served")]
    assert after.positions[(D, "served")] < after.positions[(D, "fresh")]


def test_las_cannot_starve_a_long_job_under_a_stream_of_short_ones() -> None:
    # One 8-GPU node; a 10-hour job and, from the start, an unending stream of 1-hour jobs (one every 50 min):
    # without the starvation guard and the preemption bounds the long one would lose the node forever.
    long = TraceJob("long", 0.0, 8, "m", 10 * HOUR, 10 * HOUR)
    shorts = [TraceJob(f"s{i}", 60.0 + i * 3000, 8, "m", HOUR, HOUR) for i in range(200)]
    node = parse_cluster("nodes=1,gpus-per-node=8")
    queueing = Queueing.model_validate({"order": "LAS", "starvationSeconds": 6 * HOUR})
    result = simulate([long, *shorts], node, Policy.TOPOLOGY, queueing=queueing)
    record = result.records[0]
    assert record.end_s is not None
    assert record.end_s < shorts[-1].submit_s  # it finished while the stream still ran
    assert record.preemptions <= queueing.max_preemptions_per_job
    assert all(r.end_s is not None for r in result.records)


def test_suspending_a_running_gang_adds_its_gpu_time_to_the_attained_service() -> None:
    long = _long_runner(0, attainedGpuSeconds=100.0)
    long["spec"]["runPolicy"] = {"suspend": True}
    s = _one_node([long], _las(), worker_pods(long))
    plan = next(p for p in decide_all(s, _at(HOUR), schedule(s, _at(HOUR))) if p.key == (D, "long"))
    assert plan.status.attained_gpu_seconds == 100 + 8 * HOUR


def test_fifo_ignores_queue_weights_and_takes_submission_order() -> None:
    queues = [{"name": "a", "weight": 1}, {"name": "b", "weight": 100}]
    blocker = running(job("blocker", replicas=1, priority=5, queue="a"), ["s0-r0-n0"])  # queue a holds 8 GPUs
    early = job("early", replicas=1, queue="a", created=_iso(0))
    late = job("late", replicas=1, queue="b", created=_iso(60))
    jobs = [blocker, early, late]
    pods = worker_pods(blocker)
    fair = schedule(_one_node(jobs, policy(queues=queues), pods), _at(120))
    fifo = schedule(_one_node(jobs, policy(queues=queues, queueing={"order": "FIFO"}), pods), _at(120))
    assert list(fair.waiting) == [(D, "late"), (D, "early")]
    assert list(fifo.waiting) == [(D, "early"), (D, "late")]


def test_under_las_a_fresh_gang_takes_a_node_from_a_more_served_gang_rather_than_run_scattered() -> None:
    # Two nodes, each half held by a 4-GPU gang that ran 3 h (12 GPU-hours: band 1). A fresh 8-GPU gang that wants one
    # node could start scattered over the two free halves; LAS instead preempts one of them for a whole node.
    a = running(job("a", replicas=4, gpus=1, level="node", created=_iso(0)), ["s0-r0-n0"] * 4)
    b = running(job("b", replicas=4, gpus=1, level="node", created=_iso(0)), ["s0-r0-n1"] * 4)
    fresh = job("fresh", replicas=8, gpus=1, level="node", created=_iso(3 * HOUR))
    fresh["spec"]["topology"]["localitySensitivity"] = 3
    pods = worker_pods(a) + worker_pods(b)
    now = _at(3 * HOUR)

    def two_nodes(pol: dict[str, Any]) -> ClusterSnapshot:
        return snap(cluster(spines=1, racks=1, nodes=2), [a, b, fresh], pods, policy=pol)

    assert not schedule(two_nodes(policy()), now).preemptions  # FairShare: it waits or scatters, nobody is stopped
    d = schedule(two_nodes(_las()), now)
    assert len(d.preemptions) == 1
    assert d.waiting[(D, "fresh")].reason == cond.REASON_WAITING_FOR_PREEMPTION
