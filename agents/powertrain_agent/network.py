"""Network byte counters: /proc/net/dev per interface and InfiniBand/RoCE port counters under /sys/class/infiniband.

InfiniBand `port_xmit_data` / `port_rcv_data` count 4-byte words (octets divided by four), so they are
multiplied by 4. Both roots are parameters so tests can point them at fixture trees.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

IB_WORD_BYTES = 4
_SKIPPED_PREFIXES = ("lo", "veth", "cali", "flannel", "cni", "docker", "virbr", "kube-ipvs")


@dataclass(frozen=True, slots=True)
class NetCounters:
    interface: str
    kind: str  # "ethernet" | "infiniband" | "other"
    rx_bytes: int
    tx_bytes: int


def read_proc_net_dev(proc_root: Path) -> list[NetCounters]:
    """Per-interface byte counters; virtual per-pod interfaces are skipped to bound label cardinality."""
    try:
        lines = (proc_root / "net" / "dev").read_text().splitlines()
    except OSError:
        return []
    out: list[NetCounters] = []
    for line in lines[2:]:
        if ":" not in line:
            continue
        name, _, rest = line.partition(":")
        name = name.strip()
        fields = rest.split()
        if name.startswith(_SKIPPED_PREFIXES) or len(fields) < 9:
            continue
        try:
            rx, tx = int(fields[0]), int(fields[8])
        except ValueError:
            continue
        kind = "ethernet" if name.startswith(("eth", "en", "bond")) else "other"
        out.append(NetCounters(name, kind, rx, tx))
    return out


def read_infiniband(sys_root: Path) -> list[NetCounters]:
    """Per-port byte counters of every InfiniBand/RoCE device, named `device/port`."""
    base = sys_root / "class" / "infiniband"
    out: list[NetCounters] = []
    try:
        devices = sorted(base.iterdir())
    except OSError:
        return []
    for device in devices:
        try:
            ports = sorted((device / "ports").iterdir())
        except OSError:
            continue
        for port in ports:
            counters = port / "counters"
            try:
                rx = int((counters / "port_rcv_data").read_text().strip()) * IB_WORD_BYTES
                tx = int((counters / "port_xmit_data").read_text().strip()) * IB_WORD_BYTES
            except (OSError, ValueError):
                continue
            out.append(NetCounters(f"{device.name}/{port.name}", "infiniband", rx, tx))
    return out


class NetworkMonitor:
    """Reads all counters and keeps monotonic totals (a counter that goes backwards restarted from zero)."""

    def __init__(self, proc_root: Path = Path("/proc"), sys_root: Path = Path("/sys")) -> None:
        self.proc_root = proc_root
        self.sys_root = sys_root
        self._last: dict[str, NetCounters] = {}
        self.totals: dict[str, tuple[str, int, int]] = {}  # interface -> (kind, rx total, tx total)

    def read(self) -> dict[str, tuple[str, int, int]]:
        current = read_proc_net_dev(self.proc_root) + read_infiniband(self.sys_root)
        seen: set[str] = set()
        for c in current:
            seen.add(c.interface)
            prev = self._last.get(c.interface)
            _kind, rx_total, tx_total = self.totals.get(c.interface, (c.kind, 0, 0))
            if prev is not None:
                rx_total += c.rx_bytes - prev.rx_bytes if c.rx_bytes >= prev.rx_bytes else c.rx_bytes
                tx_total += c.tx_bytes - prev.tx_bytes if c.tx_bytes >= prev.tx_bytes else c.tx_bytes
            self.totals[c.interface] = (c.kind, rx_total, tx_total)
            self._last[c.interface] = c
        for gone in set(self.totals) - seen:
            del self.totals[gone]
            self._last.pop(gone, None)
        return dict(self.totals)
