"""Caps are safe by construction: requests expire unless renewed, a new agent restores caps nobody asks for, a
failed set is reported and retried with backoff (never a fast loop)."""

from __future__ import annotations

from pathlib import Path

import pynvml
from agent_testing import FakeClock

from powertrain_agent.actuator import PowerActuator
from powertrain_agent.agent import Agent, AgentConfig
from powertrain_agent.collectors.nvml import NvmlCollector
from powertrain_agent.collectors.sim import SimCollector
from powertrain_agent.fake_nvml import FakeNvml
from powertrain_agent.kube import power_requests_expiry
from powertrain_agent.reporter import build_status


def _agent(clock: FakeClock, tmp_path: Path) -> tuple[Agent, SimCollector]:
    sim = SimCollector(2, seed="node-1", clock=clock)
    sim.open()
    config = AgentConfig(node="node-1", report_jitter_s=0, proc_root=tmp_path, sys_root=tmp_path)
    agent = Agent(config, sim, None, clock=clock)
    agent.step()
    return agent, sim


def test_requests_lapse_at_their_expiry_and_the_gpus_go_back_to_default(clock: FakeClock, tmp_path: Path) -> None:
    agent, sim = _agent(clock, tmp_path)
    uuid = sim.fake.gpus[0].uuid
    agent.set_power_requests({uuid: 400}, expires_at=clock() + 60)
    agent.control_step()
    assert sim.fake.gpus[0].limit_mw == 400_000
    clock.advance(30)
    agent.control_step()
    assert sim.fake.gpus[0].limit_mw == 400_000  # still valid
    clock.advance(31)  # the operator did not renew
    agent.control_step()
    assert sim.fake.gpus[0].limit_mw == 700_000
    status = build_status(agent.state.snapshot(), {}, {}, 1.0, {}, clock(), "test", agent.conditions)
    power = next(c for c in status.conditions if c.type == "PowerLimitsApplied")
    assert (power.status, power.reason) == ("False", "RequestsExpired")
    agent.set_power_requests({uuid: 400}, expires_at=clock() + 60)  # renewed: in force again
    agent.control_step()
    assert sim.fake.gpus[0].limit_mw == 400_000


def test_an_expiry_is_read_from_the_spec_and_an_unreadable_one_counts_as_expired() -> None:
    stamp, problem = power_requests_expiry({"spec": {"powerLimitsExpireAt": "2026-01-01T00:01:00Z"}})
    assert stamp == 1767225660.0
    assert problem is None
    assert power_requests_expiry({"spec": {}}) == (None, None)
    stamp, problem = power_requests_expiry({"spec": {"powerLimitsExpireAt": "soon"}})
    assert stamp == 0.0
    assert problem is not None
    assert "not an RFC 3339 time" in problem


def test_a_new_agent_restores_a_cap_nobody_asks_for_and_keeps_the_requested_ones(clock: FakeClock) -> None:
    nv = FakeNvml(count=3, seed="adopt", clock=clock)
    col = NvmlCollector(nv, clock=clock, reinit_backoff_s=0)
    col.open()
    a, b, c = (g.uuid for g in nv.gpus)
    nv.gpus[0].limit_mw = 300_000  # left by an agent that died before restoring it
    nv.gpus[1].limit_mw = 450_000
    act = PowerActuator(col.power_control(), clock=clock)
    res = act.reconcile({b: 450}, [a, b, c])
    assert res[a].action == "restored"
    assert nv.gpus[0].limit_mw == 700_000
    assert res[b].action == "unchanged"
    assert nv.gpus[1].limit_mw == 450_000
    assert c not in res  # at its default: untouched


def test_a_failed_set_is_retried_with_growing_backoff_not_at_every_reconcile(clock: FakeClock) -> None:
    nv = FakeNvml(count=1, seed="retry", clock=clock)
    col = NvmlCollector(nv, clock=clock, reinit_backoff_s=0)
    col.open()
    (a,) = (g.uuid for g in nv.gpus)
    nv.inject_error("nvmlDeviceSetPowerManagementLimit", pynvml.NVML_ERROR_UNKNOWN)
    act = PowerActuator(col.power_control(), clock=clock)
    first = act.reconcile({a: 400}, [a])[a]
    assert first.action == "failed"
    assert "retrying in 10 s" in first.message
    tries = nv.calls.get("nvmlDeviceSetPowerManagementLimit", 0)
    for _ in range(5):  # reconciles within the backoff do not touch the GPU
        clock.advance(1)
        assert act.reconcile({a: 400}, [a])[a].action == "failed"
    assert nv.calls.get("nvmlDeviceSetPowerManagementLimit", 0) == tries
    clock.advance(5)
    second = act.reconcile({a: 400}, [a])[a]
    assert "retrying in 20 s" in second.message
    nv.clear_errors()
    clock.advance(20)
    assert act.reconcile({a: 400}, [a])[a].action == "set"
    assert nv.gpus[0].limit_mw == 400_000


def test_a_pod_publishes_its_throughput_in_a_file_the_agent_reads_through_proc(tmp_path: Path) -> None:
    import os
    import time

    from powertrain_agent.throughput import read_published

    published = tmp_path / "4242" / "root" / "tmp" / "powertrain-throughput"
    published.parent.mkdir(parents=True)
    published.write_text("1234.5\n")
    now = time.time()
    assert read_published(tmp_path, 4242, now) == 1234.5
    assert read_published(tmp_path, 4243, now) is None  # no such process
    os.utime(published, (now - 120, now - 120))
    assert read_published(tmp_path, 4242, now) is None  # stale: the job stopped publishing
    published.write_text("fast\n")
    assert read_published(tmp_path, 4242, time.time()) is None
