"""Energy counter resets, clock-event reason bits, network counters and cgroup parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from powertrain_agent.cgroup import pod_uid_from_cgroup, pod_uid_of_pid
from powertrain_agent.energy import EnergyCounter
from powertrain_agent.network import NetworkMonitor, read_infiniband, read_proc_net_dev
from powertrain_agent.reasons import decode_reasons


def test_energy_counter_is_monotonic_across_a_reset() -> None:
    e = EnergyCounter()
    assert e.update(5_000_000) == 0  # the first reading only sets the origin
    assert e.update(5_010_000) == pytest.approx(10.0)
    assert e.update(2_000) == pytest.approx(12.0)  # driver reload: counter restarted from 0
    assert e.update(4_000) == pytest.approx(14.0)
    assert e.resets == 1


@pytest.mark.parametrize(
    ("mask", "names"),
    [
        (0, []),
        (0x1, ["GpuIdle"]),
        (0x4, ["SwPowerCap"]),
        (
            0x4 | 0x8 | 0x20 | 0x40 | 0x80,
            ["SwPowerCap", "HwSlowdown", "SwThermalSlowdown", "HwThermalSlowdown", "HwPowerBrakeSlowdown"],
        ),
        (0x800 | 0x4, ["SwPowerCap", "Unknown0x800"]),
    ],
)
def test_clock_event_reasons_decode_bit_by_bit(mask: int, names: list[str]) -> None:
    assert decode_reasons(mask) == names


PROC_NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compr
    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0
  eth0: {rx} 100 0 0 0 0 0 0 {tx} 200 0 0 0 0 0 0
vethabc: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0
"""


def _tree(root: Path, rx: int, tx: int, ib_rcv: int, ib_xmit: int) -> None:
    (root / "proc" / "net").mkdir(parents=True, exist_ok=True)
    (root / "proc" / "net" / "dev").write_text(PROC_NET_DEV.format(rx=rx, tx=tx))
    counters = root / "sys" / "class" / "infiniband" / "mlx5_0" / "ports" / "1" / "counters"
    counters.mkdir(parents=True, exist_ok=True)
    (counters / "port_rcv_data").write_text(f"{ib_rcv}\n")
    (counters / "port_xmit_data").write_text(f"{ib_xmit}\n")


def test_network_counters_from_fixture_files(tmp_path: Path) -> None:
    _tree(tmp_path, rx=123_456, tx=654_321, ib_rcv=1_000, ib_xmit=2_000)
    eth = read_proc_net_dev(tmp_path / "proc")
    assert [(c.interface, c.kind, c.rx_bytes, c.tx_bytes) for c in eth] == [("eth0", "ethernet", 123_456, 654_321)]
    (ib,) = read_infiniband(tmp_path / "sys")
    # port_*_data count 4-byte words
    assert (ib.interface, ib.kind, ib.rx_bytes, ib.tx_bytes) == ("mlx5_0/1", "infiniband", 4_000, 8_000)


def test_network_totals_survive_a_counter_reset(tmp_path: Path) -> None:
    mon = NetworkMonitor(tmp_path / "proc", tmp_path / "sys")
    _tree(tmp_path, rx=1_000, tx=1_000, ib_rcv=100, ib_xmit=100)
    mon.read()
    _tree(tmp_path, rx=3_000, tx=1_500, ib_rcv=150, ib_xmit=100)
    assert mon.read()["eth0"] == ("ethernet", 2_000, 500)
    _tree(tmp_path, rx=400, tx=1_600, ib_rcv=10, ib_xmit=100)  # the NIC driver reloaded: rx restarted
    totals = mon.read()
    assert totals["eth0"] == ("ethernet", 2_400, 600)
    assert totals["mlx5_0/1"] == ("infiniband", 200 + 40, 0)


def test_missing_roots_mean_no_interfaces(tmp_path: Path) -> None:
    assert NetworkMonitor(tmp_path / "x", tmp_path / "y").read() == {}


UID = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"


@pytest.mark.parametrize(
    "text",
    [
        f"12:memory:/kubepods/burstable/pod{UID}/0123abcd\n11:cpu:/kubepods/burstable/pod{UID}/0123abcd\n",
        f"0::/kubepods/pod{UID}/0123abcd\n",
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
        f"{UID.replace('-', '_')}.slice/cri-containerd-0123abcd.scope\n",
        f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/crio-0123.scope\n",
    ],
)
def test_pod_uid_from_cgroup_v1_and_v2(text: str) -> None:
    assert pod_uid_from_cgroup(text) == UID


def test_recorded_container_cgroup_is_not_a_pod(h200_data: Path) -> None:
    answers = json.loads((h200_data / "nvml_api_answers.json").read_text())
    for text in answers["process_cgroup_sample"].values():
        assert pod_uid_from_cgroup(text) is None


def test_pod_uid_of_a_pid_reads_proc(tmp_path: Path) -> None:
    (tmp_path / "419").mkdir()
    (tmp_path / "419" / "cgroup").write_text(f"0::/kubepods/besteffort/pod{UID}/abc\n")
    assert pod_uid_of_pid(419, tmp_path) == UID
    assert pod_uid_of_pid(420, tmp_path) is None  # gone process
