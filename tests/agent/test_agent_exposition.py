"""The agent's exposition as Prometheus scrapes it over HTTP (OpenMetrics and the classic text format):
`--dcgm-compat` adds dcgm-exporter's names, units and labels for the readings both have, only when asked;
counters of known label sets start at 0."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from agent_testing import FakeClock
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from powertrain.controllers.testing import free_port
from powertrain_agent.agent import Agent, AgentConfig
from powertrain_agent.cli import add_arguments, start_exporter
from powertrain_agent.collectors.sim import SimCollector
from powertrain_agent.health import CRITICAL_XIDS
from powertrain_agent.metrics import DCGM_LABELS, DCGM_METRICS
from powertrain_agent.readings import PodInfo

POD = PodInfo("uid-1", "ml", "llm-worker-0", "llm", 1, "Running", {})
OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


def busy_agent(clock: FakeClock, tmp_path: Path) -> tuple[Agent, SimCollector]:
    sim = SimCollector(2, seed="node-1", clock=clock)
    sim.open()
    agent = Agent(AgentConfig(node="node-1", proc_root=tmp_path, sys_root=tmp_path), sim, None, clock=clock)
    agent.set_pods({POD.uid: POD})  # GPU 0 runs the pod's matmul, GPU 1 idles
    for xid in (13, 31):
        sim.fake.push_xid(1, xid)
        agent.handle_events(sim.wait_events(0.5))
    sim.fake.gpus[1].remapped = (2, 1, 0, 1)
    agent.step()
    clock.advance(1)
    agent.step()  # GPM metrics need two samples
    agent.slow_step()
    return agent, sim


def scrape(agent: Agent, dcgm: bool, accept: str) -> str:
    port = free_port()
    server = start_exporter(agent, "127.0.0.1", port, dcgm_compat=dcgm)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": accept})
        with urllib.request.urlopen(request, timeout=5) as rsp:
            return str(rsp.read().decode())
    finally:
        server.shutdown()


def dcgm_samples(text: str, openmetrics: bool) -> dict[tuple[str, str], tuple[dict[str, str], float]]:
    """(name, gpu) → (labels, value) of every DCGM_FI_* sample."""
    families = parse_openmetrics(text) if openmetrics else parse_text(text)
    return {
        (s.name, s.labels["gpu"]): (dict(s.labels), s.value)
        for fam in families
        for s in fam.samples
        if s.name.startswith("DCGM_FI_")
    }


@pytest.mark.parametrize("openmetrics", [True, False], ids=["openmetrics", "text"])
def test_dcgm_names_units_and_labels(clock: FakeClock, tmp_path: Path, openmetrics: bool) -> None:
    agent, sim = busy_agent(clock, tmp_path)
    got = dcgm_samples(scrape(agent, True, OPENMETRICS if openmetrics else "text/plain"), openmetrics)
    assert {name for name, _ in got} == {m.name for m in DCGM_METRICS}  # DCGM's own names: no _total added
    busy, _idle = sim.fake.gpus
    labels, _ = got[("DCGM_FI_DEV_POWER_USAGE", "0")]
    assert set(labels) == set(DCGM_LABELS)
    assert labels == {
        "gpu": "0",
        "UUID": busy.uuid,
        "device": "nvidia0",
        "modelName": "NVIDIA H200",  # NVML's name, as DCGM reports it (not the node label's NVIDIA-H200)
        "Hostname": "node-1",
        "namespace": "ml",
        "pod": "llm-worker-0",
    }
    assert got[("DCGM_FI_DEV_POWER_USAGE", "1")][0]["pod"] == ""  # an idle GPU: empty, as dcgm-exporter does

    def value(name: str, gpu: int) -> float:
        return got[(name, str(gpu))][1]

    snap = agent.state.snapshot()
    b = snap.gpus[busy.uuid]
    assert value("DCGM_FI_DEV_POWER_USAGE", 0) == pytest.approx(b.power_watts)  # W
    assert value("DCGM_FI_DEV_GPU_UTIL", 0) == pytest.approx(98)  # percent, 0-100
    assert value("DCGM_FI_PROF_SM_ACTIVE", 0) == pytest.approx(0.946)  # ratio 0-1 (94.6 %)
    assert value("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", 0) == pytest.approx(0.918)
    assert value("DCGM_FI_PROF_DRAM_ACTIVE", 0) == pytest.approx(0.169)
    assert value("DCGM_FI_DEV_FB_USED", 0) == pytest.approx(b.memory_used_bytes / 2**20)  # MiB
    assert b.memory_total_bytes is not None
    assert b.memory_used_bytes is not None
    assert value("DCGM_FI_DEV_FB_FREE", 0) == pytest.approx((b.memory_total_bytes - b.memory_used_bytes) / 2**20)
    assert value("DCGM_FI_DEV_SM_CLOCK", 0) == pytest.approx(b.sm_clock_mhz)  # MHz
    assert value("DCGM_FI_DEV_GPU_TEMP", 0) == pytest.approx(b.temperature_celsius)  # C
    energy_mj = snap.slow[busy.uuid].energy_millijoules
    assert energy_mj
    assert value("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 0) == pytest.approx(energy_mj)
    assert value("DCGM_FI_DEV_XID_ERRORS", 0) == 0  # none yet
    assert value("DCGM_FI_DEV_XID_ERRORS", 1) == 31  # the value of the latest XID, as DCGM reports it
    assert value("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", 1) == 1
    assert value("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", 1) == 2
    assert value("DCGM_FI_DEV_ROW_REMAP_FAILURE", 1) == 1
    assert value("DCGM_FI_DEV_ROW_REMAP_FAILURE", 0) == 0


def test_dcgm_names_only_when_asked_and_a_lost_gpu_leaves_them(clock: FakeClock, tmp_path: Path) -> None:
    agent, sim = busy_agent(clock, tmp_path)
    plain = scrape(agent, False, OPENMETRICS)
    assert "DCGM_FI_" not in plain
    assert "powertrain_gpu_power_watts" in plain
    sim.fake.lose_gpu(1)
    agent.step()
    got = dcgm_samples(scrape(agent, True, OPENMETRICS), True)
    assert {gpu for _, gpu in got} == {"0"}  # a GPU that fell off the bus has no readings to give


def test_flag_parses() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--dcgm-compat"]).dcgm_compat is True
    assert parser.parse_args([]).dcgm_compat is False


def test_critical_xid_counters_and_report_results_start_at_zero(clock: FakeClock, tmp_path: Path) -> None:
    """A counter first seen at 1 shows no increase in Prometheus: the critical XIDs (those that make a GPU
    unhealthy) and the report-write results are exported at 0 before anything happens."""
    sim = SimCollector(1, seed="node-1", clock=clock)
    sim.open()
    agent = Agent(AgentConfig(node="node-1", proc_root=tmp_path, sys_root=tmp_path), sim, None, clock=clock)
    agent.step()
    samples = [s for f in parse_text(scrape(agent, False, "text/plain")) for s in f.samples]
    xids = {s.labels["xid"]: s.value for s in samples if s.name == "powertrain_gpu_xid_errors_total"}
    assert xids == {str(x): 0 for x in CRITICAL_XIDS}
    writes = {s.labels["result"]: s.value for s in samples if s.name == "powertrain_agent_report_writes_total"}
    assert writes == {"ok": 0, "created": 0, "error": 0}
    sim.fake.push_xid(0, 79)
    sim.fake.push_xid(0, 13)  # not critical: appears when first seen
    agent.handle_events(sim.wait_events(0.5))
    agent.handle_events(sim.wait_events(0.5))
    samples = [s for f in parse_text(scrape(agent, False, "text/plain")) for s in f.samples]
    xids = {s.labels["xid"]: s.value for s in samples if s.name == "powertrain_gpu_xid_errors_total"}
    assert (xids["79"], xids["13"], xids["48"]) == (1, 1, 0)
