"""Power in the simulator: the same GPU physics as the sim agent, the caps the modes' search settles on, and
energy per job and in total."""

from __future__ import annotations

import pytest

from powertrain.sim.cluster import parse_cluster
from powertrain.sim.engine import Policy, simulate
from powertrain.sim.power import PowerProfile, job_power, profile_of, settled_cap
from powertrain.sim.report import summarize
from powertrain.sim.trace import TraceJob
from powertrain_agent.fake_nvml import H200, WORKLOADS, FakeGpu


@pytest.mark.parametrize("workload", ["matmul", "memcopy", "starved"])
def test_the_simulator_and_the_sim_agent_share_one_gpu_model(workload: str) -> None:
    w = WORKLOADS[workload]
    profile = PowerProfile(workload, w.compute, w.demand_watts)
    gpu = FakeGpu(0, "u", H200, w, limit_mw=700_000)
    for cap in (700, 600, 450, 300, 200):
        gpu.limit_mw = cap * 1000
        assert profile.draw(cap) == pytest.approx(gpu.draw_watts())
        assert profile.clock(cap) == pytest.approx(gpu.sm_clock_mhz(), abs=1)
        assert 1 / (1 + profile.slowdown(cap)) == pytest.approx(gpu.throughput() / w.rate_per_second, rel=1e-3)


def test_modes_settle_on_the_lowest_cap_within_their_bound() -> None:
    transformer, recommendation = (
        profile_of("Transformer (batch size 64)"),
        profile_of("Recommendation (batch size 512)"),
    )
    assert settled_cap(transformer, "Performance") is None
    assert settled_cap(transformer, "Balanced") is None  # even 650 W slows it more than 2 %
    efficient = settled_cap(transformer, "Efficiency")
    assert efficient is not None
    assert transformer.slowdown(efficient) <= 0.05 < transformer.slowdown(efficient - 50)
    low = settled_cap(recommendation, "Efficiency")
    assert low is not None
    assert low < recommendation.demand_watts  # below what it draws uncapped
    assert recommendation.slowdown(low) <= 0.05


def test_a_trace_replay_records_energy_per_job_and_efficiency_saves_energy_for_some_run_time() -> None:
    jobs = [
        TraceJob("a", 0.0, 8, "Transformer (batch size 64)", 3600.0, 7200.0),
        TraceJob("b", 0.0, 4, "Recommendation (batch size 512)", 3600.0, 3600.0),
    ]
    nodes = parse_cluster("nodes=2,gpus-per-node=8")
    base = simulate(jobs, nodes, Policy.TOPOLOGY, power_mode="Performance")
    eff = simulate(jobs, nodes, Policy.TOPOLOGY, power_mode="Efficiency")
    power = job_power("Transformer (batch size 64)", None)
    assert base.records[0].energy_j == pytest.approx(8 * power.watts_per_gpu * 3600.0)
    assert summarize(eff).energy_kwh < summarize(base).energy_kwh
    for b, e in zip(base.records, eff.records, strict=True):
        assert b.end_s is not None
        assert e.end_s is not None
        assert b.start_s is not None
        assert e.start_s is not None
        assert (e.end_s - e.start_s) <= (b.end_s - b.start_s) * 1.05 + 1e-6
