"""NodeTelemetry reports (rate limit, content, create-if-missing) and the Prometheus exposition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pynvml
import pytest
from agent_testing import FakeClock
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from powertrain.api.telemetry import NodeTelemetryStatus
from powertrain_agent.agent import Agent, AgentConfig
from powertrain_agent.collectors.sim import SimCollector
from powertrain_agent.fake_nvml import FakeNvml
from powertrain_agent.metrics import RESERVED_LABELS, AgentCollector, markdown_table, metric_names
from powertrain_agent.readings import PodInfo
from powertrain_agent.reporter import ApiConflict, ApiNotFound, GpuFingerprint, ReportPolicy, StatusWriter


class FakeApi:
    def __init__(self) -> None:
        self.exists = False
        self.statuses: list[dict[str, Any]] = []
        self.creates = 0

    def create_node_telemetry(self, name: str) -> None:
        self.creates += 1
        if self.exists:
            raise ApiConflict(name)
        self.exists = True

    def patch_node_telemetry_status(self, name: str, status: dict[str, Any]) -> None:
        if not self.exists:
            raise ApiNotFound(name)
        self.statuses.append(status)


def _fp(power: float = 100, healthy: bool = True, pod: str | None = None) -> dict[str, GpuFingerprint]:
    return {"g": GpuFingerprint(healthy, pod, power, 50, 700, None)}


def test_policy_writes_first_then_only_on_change_past_min_interval_or_as_heartbeat() -> None:
    p = ReportPolicy(min_interval_s=20, max_interval_s=60, power_deadband_w=50)
    assert p.decide(0, _fp()) == "first"
    p.written(0, _fp())
    assert p.decide(5, _fp(healthy=False)) is None  # even a health change waits for the minimum interval
    assert p.decide(25, _fp(power=130)) is None  # inside the deadband
    assert p.decide(25, _fp(power=200)) == "changed: power of g"
    assert p.decide(25, _fp(healthy=False)) == "changed: health of g"
    assert p.decide(25, _fp(pod="uid")) == "changed: pod on g"
    assert p.decide(59, _fp()) is None
    assert p.decide(60, _fp()) == "heartbeat"


def test_write_rate_is_bounded_over_an_hour_of_constant_change() -> None:
    p = ReportPolicy(min_interval_s=20, max_interval_s=60)
    writes = 0
    for second in range(3600):
        fp = _fp(power=100 if second % 2 else 600)  # worst case: power swings every second
        if p.decide(second, fp):
            p.written(second, fp)
            writes += 1
    assert 60 <= writes <= 180  # never more than one per 20 s


def test_first_write_is_jittered() -> None:
    p = ReportPolicy(initial_jitter_s=7)
    assert p.decide(100, _fp()) is None
    assert p.decide(107, _fp()) == "first"


def test_writer_creates_the_object_when_missing_and_tolerates_a_race() -> None:
    api = FakeApi()
    status = NodeTelemetryStatus(backend="sim")
    assert StatusWriter(api, "n1").write(status) == "created"
    assert StatusWriter(api, "n1").write(status) == "ok"
    api2 = FakeApi()

    def racing_patch(name: str, body: dict[str, Any]) -> None:
        if not api2.exists:
            api2.exists = True  # someone else created it between our 404 and our create
            raise ApiNotFound(name)
        api2.statuses.append(body)

    api2.patch_node_telemetry_status = racing_patch  # type: ignore[method-assign]
    assert StatusWriter(api2, "n1").write(status) == "created"
    assert len(api2.statuses) == 1


def _agent(clock: FakeClock, tmp_path: Path, gpus: int = 2) -> tuple[Agent, SimCollector, FakeApi]:
    sim = SimCollector(gpus, seed="node-1", clock=clock)
    sim.open()
    api = FakeApi()
    config = AgentConfig(node="node-1", report_jitter_s=0, proc_root=tmp_path, sys_root=tmp_path)
    return Agent(config, sim, StatusWriter(api, "node-1"), clock=clock), sim, api


POD = PodInfo("uid-1", "ml", "llm-worker-0", "llm", 1, "Running", {})


def test_agent_reports_window_averages_energy_pods_and_health(clock: FakeClock, tmp_path: Path) -> None:
    agent, _sim, api = _agent(clock, tmp_path)
    agent.set_pods({POD.uid: POD})
    agent.slow_step()
    agent.control_step()  # first report (empty window)
    for _ in range(30):
        clock.advance(1)
        agent.step()
    agent.slow_step()
    agent.control_step()  # 30 s later, with busy GPU 0: report due
    status = NodeTelemetryStatus.model_validate(api.statuses[-1])
    busy, idle = status.gpus
    assert status.window_seconds == pytest.approx(30)
    assert busy.power_watts == pytest.approx(682.5)
    assert idle.power_watts == pytest.approx(77)
    assert busy.energy_joules == pytest.approx(682.5 * 30, rel=1e-3)
    assert busy.tensor_activity_percent == pytest.approx(91.8)
    assert busy.clock_event_reasons == ["SwPowerCap"]
    assert idle.clock_event_reasons == ["GpuIdle"]
    assert busy.pod is not None
    assert (busy.pod.name, busy.pod.training_job) == ("llm-worker-0", "llm")
    assert [p.name for p in status.pods] == ["llm-worker-0"]
    assert status.pods[0].throughput_per_second == pytest.approx(100.0)  # the sim publishes its samples/s
    assert all(g.healthy for g in status.gpus)
    assert {c.type: c.status for c in status.conditions} == {
        "Ready": "True",
        "GpusHealthy": "True",
        "PowerLimitsApplied": "True",
    }


def test_agent_reports_an_unhealthy_gpu_and_applies_a_requested_cap(clock: FakeClock, tmp_path: Path) -> None:
    agent, sim, api = _agent(clock, tmp_path)
    agent.set_pods({POD.uid: POD})
    agent.step()
    agent.slow_step()
    agent.control_step()
    uuid0, _uuid1 = (g.uuid for g in sim.fake.gpus)
    agent.set_power_requests({uuid0: 400})
    sim.fake.push_xid(1, 79)
    agent.handle_events(sim.wait_events(0.5))
    clock.advance(21)
    agent.control_step()  # reconciles at once (request changed)
    agent.step()
    agent.slow_step()
    agent.control_step()
    status = NodeTelemetryStatus.model_validate(api.statuses[-1])
    capped, sick = status.gpus
    assert (capped.requested_power_limit_watts, capped.power_limit_watts) == (400, 400)
    assert not sick.healthy
    assert sick.health_reason == "critical XID 79"
    assert {c.type: c.status for c in status.conditions}["GpusHealthy"] == "False"
    assert sim.fake.gpus[0].limit_mw == 400_000
    agent.shutdown()
    assert sim.fake.gpus[0].limit_mw == 700_000  # restored on shutdown


def _scrape(agent: Agent) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent.state.snapshot, "test"))
    return generate_latest(registry).decode()


def test_exposition_parses_uses_no_reserved_labels_and_only_documented_names(clock: FakeClock, tmp_path: Path) -> None:
    agent, sim, _ = _agent(clock, tmp_path)
    agent.set_pods({POD.uid: POD})
    agent.set_power_requests({sim.fake.gpus[0].uuid: 500})
    sim.fake.push_xid(0, 13)
    agent.handle_events(sim.wait_events(0.5))
    agent.step()
    agent.control_step()  # applies the cap
    agent.step()
    agent.step()  # GPM metrics need two samples
    agent.slow_step()
    families = list(text_string_to_metric_families(_scrape(agent)))
    documented = set(metric_names())
    seen = set()
    for fam in families:
        for sample in fam.samples:
            seen.add(sample.name)
            assert not RESERVED_LABELS & set(sample.labels), (sample.name, sample.labels)
    assert seen <= documented, seen - documented
    for must in (
        "powertrain_gpu_energy_joules_total",
        "powertrain_gpu_power_watts",
        "powertrain_gpu_xid_errors_total",
        "powertrain_gpu_tensor_activity_percent",
        "powertrain_agent_power_actions",
    ):
        assert must in seen
    power = {
        s.labels["exported_pod"]: s.value for f in families for s in f.samples if s.name == "powertrain_gpu_power_watts"
    }
    assert power == {"llm-worker-0": pytest.approx(487.5), "": pytest.approx(77)}  # capped at 500 W


def test_series_of_a_gone_pod_disappear(clock: FakeClock, tmp_path: Path) -> None:
    agent, _, _ = _agent(clock, tmp_path)
    agent.set_pods({POD.uid: POD})
    agent.step()
    agent.slow_step()
    assert 'exported_pod="llm-worker-0"' in _scrape(agent)
    agent.set_pods({})
    agent.step()
    agent.slow_step()
    assert "llm-worker-0" not in _scrape(agent)


def test_metric_table_documents_every_metric() -> None:
    table = markdown_table()
    assert all(f"`{name}`" in table for name in metric_names())
    assert len(metric_names()) == len(set(metric_names()))
    assert all(name.startswith("powertrain_") for name in metric_names())


def test_dry_run_reports_no_applied_request(clock: FakeClock, tmp_path: Path) -> None:
    sim = SimCollector(1, seed="node-1", clock=clock)
    sim.open()
    api = FakeApi()
    config = AgentConfig(node="node-1", report_jitter_s=0, proc_root=tmp_path, sys_root=tmp_path, dry_run_power=True)
    agent = Agent(config, sim, StatusWriter(api, "node-1"), clock=clock)
    agent.step()
    agent.set_power_requests({sim.fake.gpus[0].uuid: 300})
    agent.control_step()
    (gpu,) = NodeTelemetryStatus.model_validate(api.statuses[-1]).gpus
    assert gpu.requested_power_limit_watts is None  # nothing was applied
    assert gpu.power_limit_watts == 700
    assert sim.fake.set_calls == []


def test_model_label_matches_the_node_product_label_form() -> None:
    from powertrain_agent.metrics import product_label

    # GPU feature discovery writes nvidia.com/gpu.product with spaces as dashes; the operator groups by that label.
    assert product_label("NVIDIA H200") == "NVIDIA-H200"
    assert product_label("NVIDIA H100 80GB HBM3") == "NVIDIA-H100-80GB-HBM3"


def test_a_finished_pod_stops_holding_its_gpus_at_once(clock: FakeClock, tmp_path: Path) -> None:
    agent, _, _ = _agent(clock, tmp_path)
    agent.set_pods({POD.uid: POD})
    agent.step()
    agent.slow_step()
    assert 'exported_pod="llm-worker-0"' in _scrape(agent)
    done = PodInfo(POD.uid, POD.namespace, POD.name, POD.training_job, POD.gpus_requested, "Succeeded", POD.annotations)
    agent.set_pods({POD.uid: done})  # the kubelet marked it Succeeded; no slow sample has run since
    assert "llm-worker-0" not in _scrape(agent)


def test_gpus_that_cannot_be_opened_at_start_are_reported_lost_not_dropped(clock: FakeClock, tmp_path: Path) -> None:
    fake = FakeNvml(count=3, clock=clock, seed="node-1")
    fake.lose_gpu(1)  # off the bus before the agent starts
    fake.inject_error("nvmlDeviceGetUUID", pynvml.NVML_ERROR_UNKNOWN, index=2)
    sim = SimCollector(seed="node-1", clock=clock, fake=fake)
    sim.open()
    api = FakeApi()
    config = AgentConfig(node="node-1", report_jitter_s=0, proc_root=tmp_path, sys_root=tmp_path)
    agent = Agent(config, sim, StatusWriter(api, "node-1"), clock=clock)
    agent.step()
    agent.control_step()
    status = NodeTelemetryStatus.model_validate(api.statuses[-1])
    assert [g.index for g in status.gpus] == [0, 1, 2]
    ok, lost, broken = status.gpus
    assert ok.healthy
    assert (lost.healthy, broken.healthy) == (False, False)
    assert lost.health_reason is not None
    assert "GPU is lost" in lost.health_reason
    assert broken.health_reason is not None
    assert "Unknown Error" in broken.health_reason
    gpus_healthy = {c.type: c for c in status.conditions}["GpusHealthy"]
    assert (gpus_healthy.status, gpus_healthy.reason) == ("False", "NeedsDrain")
    # Once NVML can open them, they report under their real UUIDs.
    fake.recover_gpu(1)
    fake.clear_errors()
    agent.step()
    snap = agent.state.snapshot()
    assert sorted(snap.gpus) == sorted(g.uuid for g in fake.gpus)
