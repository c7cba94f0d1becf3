"""The sim backend (GPUs driven by the node's pods, honouring caps) and the replay backend (a recorded trace)."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_testing import FakeClock

from powertrain_agent.collectors import CollectorUnavailable
from powertrain_agent.collectors.replay import ReplayCollector
from powertrain_agent.collectors.sim import WORKLOAD_ANNOTATION, SimCollector
from powertrain_agent.readings import PodInfo


def _pod(uid: str, gpus: int, phase: str = "Running", workload: str | None = None) -> PodInfo:
    ann = {WORKLOAD_ANNOTATION: workload} if workload else {}
    return PodInfo(uid, "ml", f"pod-{uid}", "job-a", gpus, phase, ann)


def test_running_gpu_pods_make_their_gpus_busy(clock: FakeClock) -> None:
    sim = SimCollector(4, seed="node-a", clock=clock)
    sim.open()
    sim.assign_pods([_pod("a", 2), _pod("b", 1, workload="starved"), _pod("c", 1, phase="Pending")])
    sim.sample()
    samples = sim.sample()
    power = [s.power_watts for s in samples]
    assert power[0] == power[1] == pytest.approx(682.5)
    assert power[2] == pytest.approx(326)
    assert power[3] == pytest.approx(77)  # the pending pod's GPU stays idle
    owners = sim.pod_owners()
    assert owners is not None
    assert sorted(owners.values()) == ["a", "a", "b"]


def test_gpus_are_given_back_when_the_pod_ends(clock: FakeClock) -> None:
    sim = SimCollector(2, seed="node-a", clock=clock)
    sim.open()
    sim.assign_pods([_pod("a", 2)])
    sim.assign_pods([_pod("a", 2, phase="Succeeded"), _pod("b", 1)])
    assert sim.pod_owners() == {sim.fake.gpus[0].uuid: "b"}
    assert [s.power_watts for s in sim.sample()] == [pytest.approx(682.5), pytest.approx(77)]


def test_a_cap_lowers_power_and_clock_and_sets_the_power_cap_reason(clock: FakeClock) -> None:
    sim = SimCollector(1, seed="node-a", clock=clock)
    sim.open()
    sim.assign_pods([_pod("a", 1)])
    uncapped = sim.sample()[0]
    sim.power_control().set_limit(sim.fake.gpus[0].uuid, 400)
    capped = sim.sample()[0]
    assert capped.power_watts == pytest.approx(390)
    assert capped.power_limit_watts == 400
    assert capped.sm_clock_mhz is not None
    assert uncapped.sm_clock_mhz is not None
    assert capped.sm_clock_mhz < uncapped.sm_clock_mhz
    assert capped.clock_event_reasons == 0x4


def test_unknown_workload_annotation_falls_back_to_the_default(clock: FakeClock) -> None:
    sim = SimCollector(1, seed="node-a", clock=clock)
    sim.open()
    sim.assign_pods([_pod("a", 1, workload="bitcoin")])
    assert sim.sample()[0].power_watts == pytest.approx(682.5)


def test_different_nodes_get_different_gpu_uuids() -> None:
    a, b = SimCollector(2, seed="node-a"), SimCollector(2, seed="node-b")
    assert {g.uuid for g in a.fake.gpus}.isdisjoint(g.uuid for g in b.fake.gpus)


def test_replay_plays_the_recorded_trace(h200_data: Path, clock: FakeClock) -> None:
    col = ReplayCollector(h200_data / "nvml_trace.csv", 1, clock=clock)
    col.open()
    clock.advance(30)  # inside the bf16 matmul phase (12 s idle, then 30 s of matmul)
    s = col.sample()[0]
    assert s.power_watts is not None
    assert s.power_watts > 600
    assert s.tensor_activity_percent is not None
    assert s.tensor_activity_percent > 80
    e1 = col.sample_slow()[0].energy_millijoules
    clock.advance(col.duration)  # one whole loop later: the counter keeps growing
    e2 = col.sample_slow()[0].energy_millijoules
    assert e1 is not None
    assert e2 is not None
    assert e2 > e1
    assert col.power_control() is None


def test_replay_reports_a_bad_file_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "trace.csv"
    bad.write_text("t,power_mw\n1,2\n")
    with pytest.raises(CollectorUnavailable, match="missing column"):
        ReplayCollector(bad).open()
    with pytest.raises(CollectorUnavailable, match="No such file"):
        ReplayCollector(tmp_path / "nope.csv").open()
