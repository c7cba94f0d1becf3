"""Per-pod network and storage byte counters, read from the host's /proc and cgroup v2 tree.

- Storage: the pod's cgroup `io.stat` (cgroup v2; hierarchical, so the pod-level file covers every container),
  `rbytes=` and `wbytes=` summed over devices. The pod's cgroup is found by its UID at the paths the kubelet
  uses with either cgroup driver (a handful of stat calls, no tree walk):
    systemd:  kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid with _>.slice
    cgroupfs: kubepods[/<qos>]/pod<uid>
- Network: /proc/<pid>/net/dev of a process of the pod, which shows the pod's network namespace (every
  interface but lo). The process comes from a container cgroup's `cgroup.procs`, so this needs the host's PIDs
  (the DaemonSet's hostPID). A pod in the host's network namespace (hostNetwork) would show the node's
  counters: it gets none.

Counters are kept monotonic per pod: a container restart (new namespace, counters from zero) adds from zero.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_QOS = ("burstable", "besteffort")


@dataclass(frozen=True, slots=True)
class PodCounters:
    """Byte totals of one pod; None where it could not be read."""

    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None
    read_bytes: int | None = None
    write_bytes: int | None = None


def parse_io_stat(text: str) -> tuple[int, int]:
    """(read bytes, write bytes) summed over the devices of a cgroup v2 io.stat file."""
    read = write = 0
    for line in text.splitlines():
        for item in line.split()[1:]:
            key, _, value = item.partition("=")
            if key in ("rbytes", "wbytes") and value.isdigit():
                if key == "rbytes":
                    read += int(value)
                else:
                    write += int(value)
    return read, write


def parse_net_dev(text: str) -> tuple[int, int]:
    """(rx bytes, tx bytes) summed over the interfaces of a /proc/<pid>/net/dev file, loopback excluded."""
    rx = tx = 0
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or name.strip() == "lo" or len(fields) < 9:
            continue
        if fields[0].isdigit() and fields[8].isdigit():
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx


def pod_cgroup_candidates(cgroup_root: Path, uid: str) -> list[Path]:
    """Where the kubelet puts a pod's cgroup, for both drivers and every QoS class."""
    systemd_uid = uid.replace("-", "_")
    out = [cgroup_root / "kubepods.slice" / f"kubepods-pod{systemd_uid}.slice"]
    out += [
        cgroup_root / "kubepods.slice" / f"kubepods-{qos}.slice" / f"kubepods-{qos}-pod{systemd_uid}.slice"
        for qos in _QOS
    ]
    out.append(cgroup_root / "kubepods" / f"pod{uid}")
    out += [cgroup_root / "kubepods" / qos / f"pod{uid}" for qos in _QOS]
    return out


class PodIoReader:
    """Reads the counters of the pods on this node from the host's cgroup v2 tree and /proc."""

    def __init__(self, proc_root: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")) -> None:
        self.proc_root = proc_root
        self.cgroup_root = cgroup_root
        self._dirs: dict[str, Path] = {}
        self._host_netns: str | None = None

    def _pod_dir(self, uid: str) -> Path | None:
        cached = self._dirs.get(uid)
        if cached is not None and cached.is_dir():
            return cached
        for candidate in pod_cgroup_candidates(self.cgroup_root, uid):
            if candidate.is_dir():
                self._dirs[uid] = candidate
                return candidate
        self._dirs.pop(uid, None)
        return None

    def _a_pid(self, pod_dir: Path) -> int | None:
        """A process of the pod visible in our PID namespace (containers live in child cgroups)."""
        try:
            children = sorted(p for p in pod_dir.iterdir() if p.is_dir())
        except OSError:
            return None
        for cgroup in [pod_dir, *children]:
            try:
                pids = (cgroup / "cgroup.procs").read_text().split()
            except OSError:
                continue
            for pid in pids:
                if pid.isdigit() and pid != "0" and (self.proc_root / pid).is_dir():
                    return int(pid)
        return None

    def _netns(self, pid: int | str) -> str | None:
        try:
            return os.readlink(self.proc_root / str(pid) / "ns" / "net")
        except OSError:
            return None

    def read(self, uid: str) -> PodCounters:
        pod_dir = self._pod_dir(uid)
        if pod_dir is None:
            return PodCounters()
        read = write = None
        with contextlib.suppress(OSError):
            read, write = parse_io_stat((pod_dir / "io.stat").read_text())
        rx = tx = None
        pid = self._a_pid(pod_dir)
        if pid is not None:
            if self._host_netns is None:
                self._host_netns = self._netns(1) or ""
            netns = self._netns(pid)
            if netns is None or netns != self._host_netns:
                with contextlib.suppress(OSError):
                    rx, tx = parse_net_dev((self.proc_root / str(pid) / "net" / "dev").read_text())
        return PodCounters(rx, tx, read, write)

    def forget(self, live: Iterable[str]) -> None:
        keep = set(live)
        for uid in [u for u in self._dirs if u not in keep]:
            del self._dirs[uid]


class MonotonicTotals:
    """Per-pod totals that only grow: a counter that went backwards restarted from zero (a new container)."""

    def __init__(self) -> None:
        self._last: dict[str, PodCounters] = {}
        self.totals: dict[str, PodCounters] = {}

    def update(self, current: dict[str, PodCounters]) -> dict[str, PodCounters]:
        for uid, now in current.items():
            prev = self._last.get(uid)
            total = self.totals.get(uid, PodCounters())
            self.totals[uid] = PodCounters(
                *(
                    _advance(getattr(total, f), getattr(prev, f) if prev else None, getattr(now, f))
                    for f in ("net_rx_bytes", "net_tx_bytes", "read_bytes", "write_bytes")
                )
            )
            self._last[uid] = now
        for gone in set(self.totals) - set(current):
            del self.totals[gone]
            self._last.pop(gone, None)
        return dict(self.totals)


def _advance(total: int | None, prev: int | None, now: int | None) -> int | None:
    if now is None:
        return total
    if prev is None:
        return total if total is not None else 0
    return (total or 0) + (now - prev if now >= prev else now)
