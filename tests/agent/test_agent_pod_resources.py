"""GPU attribution through the kubelet's pod-resources gRPC API (against the sandbox kubelet's server), the cgroup
fallback, and the per-pod network / storage counters (io.stat, net/dev) that end up in the report."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_testing import FakeClock

from powertrain.api.telemetry import NodeTelemetryStatus
from powertrain.sandbox.podresources import PodDevices, PodResourcesServers
from powertrain_agent.agent import Agent, AgentConfig
from powertrain_agent.collectors.nvml import NvmlCollector
from powertrain_agent.collectors.sim import IO_RATES, SimCollector
from powertrain_agent.fake_nvml import FakeNvml
from powertrain_agent.podio import MonotonicTotals, PodCounters, PodIoReader, parse_io_stat, parse_net_dev
from powertrain_agent.podresources import (
    PodResourcesClient,
    PodResourcesError,
    decode_list_response,
    gpu_owners,
)
from powertrain_agent.readings import PodInfo
from powertrain_agent.reporter import StatusWriter

UID = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"


class Api:
    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []

    def create_node_telemetry(self, name: str) -> None:
        pass

    def patch_node_telemetry_status(self, name: str, status: dict[str, Any]) -> None:
        self.statuses.append(status)


class Kubelet:
    """The sandbox's pod-resources servers on a loop of their own, answering from `pods` per node."""

    def __init__(self, directory: Path) -> None:
        self.pods: dict[str, list[PodDevices]] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers = PodResourcesServers(directory, lambda node: self.pods.get(node, []))

    def start(self, *nodes: str) -> None:
        asyncio.run_coroutine_threadsafe(self.servers.start(nodes), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.servers.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def kubelet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubelet]:
    k = Kubelet(tmp_path_factory.mktemp("pr"))
    k.start("node-a")
    yield k
    k.stop()


def test_the_client_lists_pods_and_their_gpus_from_the_kubelet_socket(kubelet: Kubelet) -> None:
    kubelet.pods["node-a"] = [("ml", "w-0", ("0", "1")), ("ml", "w-1", ("GPU-abc",)), ("kube-system", "dns", ())]
    client = PodResourcesClient(kubelet.servers.socket("node-a"))
    assert client.available()
    pods = client.list()
    assert [(p.namespace, p.name, p.devices.get("nvidia.com/gpu", ())) for p in pods] == [
        ("ml", "w-0", ("0", "1")),
        ("ml", "w-1", ("GPU-abc",)),
        ("kube-system", "dns", ()),
    ]
    # Device IDs may be indices (--device-id-strategy=index) or UUIDs; unknown IDs are not attributed.
    owners = gpu_owners(pods, {"GPU-x0": 0, "GPU-x1": 1, "GPU-abc": 2, "GPU-x3": 3})
    assert owners == {"GPU-x0": ("ml", "w-0"), "GPU-x1": ("ml", "w-0"), "GPU-abc": ("ml", "w-1")}
    client.close()


def test_the_decoder_skips_fields_it_does_not_read() -> None:
    # ContainerResources with cpu_ids (varint, field 3, packed as wire type 2) and a ContainerDevices with a
    # topology (field 3) around the device IDs: only names, namespaces and device IDs are taken.
    devices = b"\x0a\x0envidia.com/gpu" + b"\x12\x013" + b"\x1a\x04\x0a\x02\x08\x01"
    container = b"\x0a\x01c" + b"\x12" + bytes([len(devices)]) + devices + b"\x1a\x02\x04\x05" + b"\x28\x07"
    pod = b"\x0a\x03w-0\x12\x02ml" + b"\x1a" + bytes([len(container)]) + container
    (decoded,) = decode_list_response(b"\x0a" + bytes([len(pod)]) + pod)
    assert (decoded.namespace, decoded.name, dict(decoded.devices)) == ("ml", "w-0", {"nvidia.com/gpu": ("3",)})
    with pytest.raises(PodResourcesError, match="truncated"):
        decode_list_response(b"\x0a" + bytes([len(pod) + 5]) + pod)


def test_a_socket_nobody_serves_is_an_error_not_a_hang(tmp_path: Path) -> None:
    path = tmp_path / "dead.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.close()  # the file stays: a kubelet that died without cleaning up
    client = PodResourcesClient(path, timeout_s=0.5)
    assert client.available()
    with pytest.raises(PodResourcesError, match="List on"):
        client.list()
    client.close()


def _pod(uid: str, name: str, gpus: int, workload: str | None = None) -> PodInfo:
    ann = {"powertrain.dev/sim-workload": workload} if workload else {}
    return PodInfo(uid, "ml", name, "llm", gpus, "Running", ann)


def test_the_sim_agent_runs_workloads_on_the_gpus_the_kubelet_gave_and_reports_pod_io(
    kubelet: Kubelet, clock: FakeClock
) -> None:
    sim = SimCollector(4, seed="node-a", clock=clock)
    sim.open()
    api = Api()
    config = AgentConfig(node="node-a", report_jitter_s=0, pod_resources_socket=kubelet.servers.socket("node-a"))
    agent = Agent(config, sim, StatusWriter(api, "node-a"), clock=clock)
    # The kubelet gave GPUs 2 and 3 to w-0, not the lowest free ones the simulator would have picked itself.
    kubelet.pods["node-a"] = [("ml", "w-0", ("2", "3")), ("ml", "w-1", ("0",))]
    agent.set_pods({"u0": _pod("u0", "w-0", 2), "u1": _pod("u1", "w-1", 1, workload="starved")})
    agent.step()
    agent.slow_step()
    clock.advance(5)
    agent.step()
    agent.slow_step()
    agent.control_step()
    first = {p.name: p for p in NodeTelemetryStatus.model_validate(api.statuses[-1]).pods}
    # Pods seen since the last slow samples have rates in the very first report (over the time since).
    assert first["w-0"].network_rx_bytes_per_second == pytest.approx(2 * IO_RATES["matmul"].net_rx, rel=0.06)
    clock.advance(60)
    agent.step()
    agent.slow_step()
    agent.control_step()
    status = NodeTelemetryStatus.model_validate(api.statuses[-1])
    assert status.pod_attribution == "pod-resources"
    owners = {g.index: g.pod.name if g.pod else None for g in status.gpus}
    assert owners == {0: "w-1", 1: None, 2: "w-0", 3: "w-0"}
    power = {g.index: g.power_watts for g in status.gpus}
    assert power[1] is not None
    assert power[2] is not None
    assert power[1] < 100 < power[2]
    pods = {p.name: p for p in status.pods}
    assert pods["w-0"].gpus == 2
    matmul = IO_RATES["matmul"]
    assert pods["w-0"].network_rx_bytes_per_second == pytest.approx(2 * matmul.net_rx, rel=0.06)
    starved = IO_RATES["starved"]
    assert pods["w-1"].storage_read_bytes_per_second == pytest.approx(starved.read, rel=0.06)
    assert pods["w-1"].infiniband is None  # the sim node has no InfiniBand ports


def test_without_the_socket_gpus_are_attributed_through_cgroups(clock: FakeClock, tmp_path: Path) -> None:
    nv = FakeNvml(count=2, seed="attr", clock=clock)
    col = NvmlCollector(nv, clock=clock)
    col.open()
    nv.set_workload(0, "matmul")  # its process is pid 100000
    (tmp_path / "100000").mkdir()
    (tmp_path / "100000" / "cgroup").write_text(f"0::/kubepods/besteffort/pod{UID}/c1\n")
    api = Api()
    config = AgentConfig(
        node="n",
        report_jitter_s=0,
        proc_root=tmp_path,
        sys_root=tmp_path,
        pod_resources_socket=tmp_path / "absent.sock",
    )
    agent = Agent(config, col, StatusWriter(api, "n"), clock=clock)
    agent.set_pods({UID: _pod(UID, "w-0", 1)})
    agent.step()
    agent.slow_step()
    agent.control_step()
    status = NodeTelemetryStatus.model_validate(api.statuses[-1])
    assert status.pod_attribution == "cgroup"
    assert status.gpus[0].pod is not None
    assert status.gpus[0].pod.name == "w-0"


def test_io_stat_and_net_dev_parsing() -> None:
    io_stat = (
        "259:0 rbytes=1048576 wbytes=4096 rios=10 wios=1 dbytes=0 dios=0\n"
        "8:16 rbytes=100 wbytes=50 rios=1 wios=1 dbytes=0 dios=0\n"
        "253:1 rbytes=oops wbytes=2\n"
    )
    assert parse_io_stat(io_stat) == (1048676, 4148)
    net_dev = (
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls\n"
        "    lo: 5000 10 0 0 0 0 0 0 5000 10 0 0 0 0 0 0\n"
        "  eth0: 123456 100 0 0 0 0 0 0 654321 90 0 0 0 0 0 0\n"
        "  net1: 1000 1 0 0 0 0 0 0 2000 2 0 0 0 0 0 0\n"
    )
    assert parse_net_dev(net_dev) == (124456, 656321)


def _pod_tree(root: Path, pid: int, rx: int, tx: int, read: int, write: int, systemd: bool = True) -> None:
    cg = root / "fs" / "cgroup"
    if systemd:
        pod_dir = (
            cg / "kubepods.slice" / "kubepods-burstable.slice" / f"kubepods-burstable-pod{UID.replace('-', '_')}.slice"
        )
    else:
        pod_dir = cg / "kubepods" / f"pod{UID}"
    container = pod_dir / "cri-containerd-abc.scope"
    container.mkdir(parents=True, exist_ok=True)
    (pod_dir / "cgroup.procs").write_text("")
    (container / "cgroup.procs").write_text(f"{pid}\n")
    (pod_dir / "io.stat").write_text(f"259:0 rbytes={read} wbytes={write} rios=1 wios=1 dbytes=0 dios=0\n")
    proc = root / str(pid) / "net"
    proc.mkdir(parents=True, exist_ok=True)
    header = "Inter-| Receive | Transmit\n face |bytes packets|bytes packets\n"
    (proc / "dev").write_text(header + f"  eth0: {rx} 1 0 0 0 0 0 0 {tx} 1 0 0 0 0 0 0\n")


@pytest.mark.parametrize("systemd", [True, False])
def test_pod_counters_come_from_the_pods_cgroup_and_network_namespace(tmp_path: Path, systemd: bool) -> None:
    _pod_tree(tmp_path, 4242, rx=1000, tx=2000, read=300, write=400, systemd=systemd)
    reader = PodIoReader(proc_root=tmp_path, cgroup_root=tmp_path / "fs" / "cgroup")
    assert reader.read(UID) == PodCounters(1000, 2000, 300, 400)
    assert reader.read("ffffffff-0000-0000-0000-000000000000") == PodCounters()  # not on this node: unknown


def test_pod_totals_survive_a_container_restart() -> None:
    totals = MonotonicTotals()
    totals.update({"p": PodCounters(100, 10, 1000, None)})
    totals.update({"p": PodCounters(400, 40, 1500, None)})
    after = totals.update({"p": PodCounters(50, 5, 200, None)})  # a new network namespace, counters from zero
    assert after["p"] == PodCounters(350, 35, 700, None)


def test_pod_rates_divide_by_the_time_between_counter_reads_not_between_reports(
    clock: FakeClock, tmp_path: Path
) -> None:
    nv = FakeNvml(count=1, seed="io", clock=clock)
    col = NvmlCollector(nv, clock=clock)
    col.open()
    nv.set_workload(0, "matmul")  # its process is pid 100000
    (tmp_path / "100000").mkdir()
    (tmp_path / "100000" / "cgroup").write_text(f"0::/kubepods/pod{UID}/c1\n")
    api = Api()
    config = AgentConfig(node="n", report_jitter_s=0, proc_root=tmp_path, sys_root=tmp_path)
    agent = Agent(config, col, StatusWriter(api, "n"), clock=clock)
    agent.set_pods({UID: _pod(UID, "w-0", 1)})
    _pod_tree(tmp_path, 4242, rx=0, tx=0, read=0, write=0, systemd=False)
    agent.step()
    agent.slow_step()
    agent.control_step()  # first report: the window starts at the read above
    clock.advance(60)
    _pod_tree(tmp_path, 4242, rx=6_000_000, tx=600_000, read=60_000_000, write=0, systemd=False)
    agent.step()
    agent.slow_step()  # read 60 s after the previous one
    clock.advance(4)  # the report comes a while after the read
    agent.control_step()
    (pod,) = NodeTelemetryStatus.model_validate(api.statuses[-1]).pods
    assert pod.network_rx_bytes_per_second == pytest.approx(100_000)
    assert pod.network_tx_bytes_per_second == pytest.approx(10_000)
    assert pod.storage_read_bytes_per_second == pytest.approx(1_000_000)
    assert pod.storage_write_bytes_per_second == 0
