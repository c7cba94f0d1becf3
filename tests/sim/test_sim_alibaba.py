"""Alibaba's GPU pod list as a simulator trace: which pods count, fractional GPUs, priorities, and a replay of
the packaged pods on the packaged fleet."""

from __future__ import annotations

import pytest

from powertrain.data import ALIBABA_NODES, ALIBABA_PODS
from powertrain.sim.alibaba import load_pods, parse_pods, repeated
from powertrain.sim.cluster import load_fleet, parse_cluster
from powertrain.sim.engine import Policy, simulate
from powertrain.sim.report import summarize
from powertrain.sim.trace import TraceError

HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time"


def test_pods_become_one_worker_jobs_with_whole_gpus_and_qos_priorities() -> None:
    text = "\n".join(
        [
            HEADER,
            "cpu-only,4000,1024,0,0,,BE,Running,0,100,0",
            "shared,6000,12288,1,460,,LS,Running,10,1010,15",
            "eight,88000,327680,8,1000,,BE,Succeeded,5,605,5",
            "never-ran,1000,1024,1,1000,,LS,Pending,20,500,",
        ]
    )
    eight, shared = parse_pods(text, "pods.csv")
    assert (shared.gpus, shared.gpus_per_replica, shared.replicas) == (1, 1, 1)  # 0.46 GPU → one whole GPU
    assert shared.packed_s == shared.spread_s == 995  # deletion − scheduled
    assert shared.priority == 1
    assert (eight.gpus, eight.gpus_per_replica, eight.replicas, eight.priority) == (8, 8, 1, 0)


def test_a_pod_list_without_its_columns_is_refused_with_a_clear_message() -> None:
    with pytest.raises(TraceError, match=r"pods\.csv: missing column"):
        parse_pods("name,num_gpu\nx,1\n", "pods.csv")


def test_repeated_copies_shift_by_the_span_and_keep_ids_apart() -> None:
    pods = load_pods(ALIBABA_PODS)[:3]
    copies = repeated(pods, 3)
    assert len(copies) == 9
    assert len({j.job_id for j in copies}) == 9
    span = pods[-1].submit_s + 1
    assert copies[3].submit_s == pods[0].submit_s + span


def test_the_packaged_pods_replay_on_the_packaged_fleet() -> None:
    jobs = load_pods(ALIBABA_PODS)[:300]
    result = simulate(jobs, load_fleet(ALIBABA_NODES), Policy.TOPOLOGY)
    summary = summarize(result)
    assert summary.completed == 300
    for r in result.records:
        assert r.servers == 1  # one pod never spans nodes
        assert r.end_s is not None
        assert r.start_s is not None
        assert r.end_s - r.start_s == pytest.approx(r.job.packed_s)


def test_latency_sensitive_pods_preempt_best_effort_ones_which_pay_the_restart_cost() -> None:
    text = "\n".join(
        [
            HEADER,
            "be,1000,1024,8,1000,,BE,Running,0,10000,0",
            "ls,1000,1024,8,1000,,LS,Running,100,1100,100",
        ]
    )
    be, ls = simulate(parse_pods(text), parse_cluster("nodes=1,gpus-per-node=8"), Policy.TOPOLOGY).records
    assert be.preemptions == 1
    assert ls.start_s == pytest.approx(101)  # once the preempted pod is gone
    assert ls.end_s == pytest.approx(1101)
    assert be.end_s is not None
    # 100 s done before, 9,900 s left after the preemptor's hour, plus the 120 s restart cost.
    assert be.end_s == pytest.approx(1101 + 120 + 9900)
