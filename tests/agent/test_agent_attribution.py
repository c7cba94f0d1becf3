"""Pod attribution through NVML processes and cgroups, API-object parsing, and network rates in the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from agent_testing import FakeClock

from powertrain.api.telemetry import NodeTelemetryStatus
from powertrain_agent.agent import Agent, AgentConfig
from powertrain_agent.collectors.nvml import NvmlCollector
from powertrain_agent.fake_nvml import FakeNvml
from powertrain_agent.kube import pod_info, power_requests
from powertrain_agent.reporter import StatusWriter

UID = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"


class Api:
    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []

    def create_node_telemetry(self, name: str) -> None:
        pass

    def patch_node_telemetry_status(self, name: str, status: dict[str, Any]) -> None:
        self.statuses.append(status)


def _pod_object(**meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"uid": UID, "name": "w-0", "namespace": "ml", **meta},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "4"}}}]},
        "status": {"phase": "Running"},
    }


def test_pod_info_reads_gpus_and_training_job() -> None:
    info = pod_info(_pod_object(labels={"powertrain.dev/job-name": "llm"}))
    assert info is not None
    assert (info.gpus_requested, info.training_job, info.phase) == (4, "llm", "Running")
    owned = pod_info(_pod_object(ownerReferences=[{"kind": "TrainingJob", "name": "bert"}]))
    assert owned is not None
    assert owned.training_job == "bert"
    assert pod_info({"metadata": {"name": "no-uid"}}) is None


def test_power_requests_skip_bad_entries_with_a_reason() -> None:
    obj = {
        "spec": {
            "powerLimits": [
                {"uuid": "GPU-a", "watts": 450},
                {"uuid": "", "watts": 300},
                {"uuid": "GPU-b", "watts": "lots"},
                {"uuid": "GPU-c", "watts": -5},
            ]
        }
    }
    requests, problems = power_requests(obj)
    assert requests == {"GPU-a": 450.0}
    assert problems == [
        "spec.powerLimits[1].uuid: '' is not a GPU UUID",
        "spec.powerLimits[2].watts: 'lots' is not a positive number of watts",
        "spec.powerLimits[3].watts: -5 is not a positive number of watts",
    ]
    assert power_requests(None) == ({}, [])


def _net(root: Path, rx: int, tx: int) -> None:
    (root / "net").mkdir(parents=True, exist_ok=True)
    (root / "net" / "dev").write_text(f"h1\nh2\n  eth0: {rx} 0 0 0 0 0 0 0 {tx} 0 0 0 0 0 0 0\n")


def test_real_collector_attributes_gpus_by_process_cgroup_and_reports_network_rates(
    clock: FakeClock, tmp_path: Path
) -> None:
    nv = FakeNvml(count=2, seed="attr", clock=clock)
    col = NvmlCollector(nv, clock=clock)
    col.open()
    nv.set_workload(1, "matmul")  # its process is pid 100001
    (tmp_path / "100001").mkdir()
    (tmp_path / "100001" / "cgroup").write_text(
        f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/cri-containerd-1.scope\n"
    )
    _net(tmp_path, rx=0, tx=0)
    api = Api()
    agent = Agent(
        AgentConfig(node="n", report_jitter_s=0, proc_root=tmp_path, sys_root=tmp_path),
        col,
        StatusWriter(api, "n"),
        clock=clock,
    )
    info = pod_info(_pod_object(labels={"powertrain.dev/job-name": "llm"}))
    assert info is not None
    agent.set_pods({UID: info})
    agent.step()
    agent.slow_step()
    agent.control_step()
    clock.advance(60)  # nothing changed: the next write is the 60 s heartbeat
    _net(tmp_path, rx=6_000_000, tx=1_200_000)
    agent.step()
    agent.slow_step()
    agent.control_step()
    assert len(api.statuses) == 2
    status = NodeTelemetryStatus.model_validate(api.statuses[-1])
    assert status.window_seconds == pytest.approx(60)
    assert status.gpus[0].pod is None
    assert status.gpus[1].pod is not None
    assert (status.gpus[1].pod.name, status.gpus[1].pod.training_job) == ("w-0", "llm")
    (eth,) = status.network
    assert (eth.interface, eth.kind) == ("eth0", "ethernet")
    assert eth.rx_bytes_per_second == pytest.approx(100_000)
    assert eth.tx_bytes_per_second == pytest.approx(20_000)


def test_a_gpu_given_to_a_pod_mid_window_reports_only_the_pods_own_samples(clock: FakeClock, tmp_path: Path) -> None:
    # Idle before the pod came, busy after: the pod's first report must not average in the idle time before it
    # (a just-started worker would read ~25 % SM activity and look like a straggler beside its busy peers).
    nv = FakeNvml(count=1, seed="attr", clock=clock)
    col = NvmlCollector(nv, clock=clock)
    col.open()
    (tmp_path / "100000").mkdir()
    (tmp_path / "100000" / "cgroup").write_text(
        f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/cri-containerd-1.scope\n"
    )
    _net(tmp_path, rx=0, tx=0)
    api = Api()
    agent = Agent(
        AgentConfig(node="n", report_jitter_s=0, proc_root=tmp_path, sys_root=tmp_path),
        col,
        StatusWriter(api, "n"),
        clock=clock,
    )
    info = pod_info(_pod_object(labels={"powertrain.dev/job-name": "llm"}))
    assert info is not None
    agent.set_pods({UID: info})
    agent.step()
    agent.slow_step()
    agent.control_step()  # the first report: an idle GPU, no pod
    for _ in range(6):  # most of the next window idle, then the pod's process starts
        clock.advance(10)
        agent.step()
    nv.set_workload(0, "matmul")
    agent.slow_step()
    for _ in range(2):
        clock.advance(5)
        agent.step()
    agent.slow_step()
    clock.advance(1)
    agent.control_step()
    assert len(api.statuses) == 2
    (gpu,) = NodeTelemetryStatus.model_validate(api.statuses[-1]).gpus
    assert gpu.pod is not None
    assert gpu.pod.name == "w-0"
    assert gpu.sm_activity_percent == pytest.approx(94.6)
