"""The `sim` backend: the real NVML collector over `FakeNvml`, with GPUs given to the pods running on the node.

A running pod that requests `nvidia.com/gpu` gets that many GPUs (lowest free indices; a pod keeps its GPUs
while it runs). Its GPUs run the workload named by the pod annotation `powertrain.dev/sim-workload`
(matmul | memcopy | starved | held | idle; default matmul), drawing power and showing activity as the recorded
H200 did; GPUs without a pod are idle. Power limits applied through the actuator really change the simulated
draw and SM clock and raise the SwPowerCap reason bit.

With a kubelet pod-resources socket (the sandbox's simulated kubelet serves one per node) the agent reads which
GPUs each pod holds from it, as on a real node, and the simulator follows that map (`follow_kubelet`) instead of
choosing GPUs itself.

Each pod also moves bytes, per GPU it holds, at the rates of its workload (`IO_RATES`, ±5 % noise per pod),
read by the agent as the per-pod network and storage counters a real node would show.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from powertrain_agent.collectors.nvml import NvmlCollector
from powertrain_agent.fake_nvml import DEFAULT_WORKLOAD, H200_HGX, WORKLOADS, FakeNvml, GpuSpec
from powertrain_agent.podio import PodCounters
from powertrain_agent.readings import PodInfo

log = logging.getLogger(__name__)

WORKLOAD_ANNOTATION = "powertrain.dev/sim-workload"


@dataclass(frozen=True)
class IoRates:
    """Bytes/s per GPU a workload moves: network receive/transmit and storage read/write."""

    net_rx: float
    net_tx: float
    read: float
    write: float


MB = 1_000_000
# Per GPU. matmul: a data-parallel step all-reduces gradients (symmetric, GB/s) and streams a modest input
# shard; starved: the input pipeline reads hard while the GPU waits; memcopy: local only; held/idle: nothing.
IO_RATES: dict[str, IoRates] = {
    "matmul": IoRates(1_200 * MB, 1_200 * MB, 40 * MB, 2 * MB),
    "memcopy": IoRates(5 * MB, 5 * MB, 10 * MB, 1 * MB),
    "starved": IoRates(20 * MB, 20 * MB, 900 * MB, 1 * MB),
    "held": IoRates(0.01 * MB, 0.01 * MB, 0.0, 0.0),
    "idle": IoRates(0.0, 0.0, 0.0, 0.0),
}


class SimCollector(NvmlCollector):
    name = "sim"

    def __init__(
        self,
        gpus: int = 8,
        *,
        seed: str = "sim",
        spec: GpuSpec = H200_HGX,
        clock: Callable[[], float] = time.time,
        fake: FakeNvml | None = None,
    ) -> None:
        self.fake = fake or FakeNvml(count=gpus, spec=spec, seed=seed, clock=clock)
        super().__init__(self.fake, clock=clock, reinit_backoff_s=1.0)
        self._owners: dict[int, str] = {}
        self._pods_lock = threading.Lock()
        self._kubelet_owned = False
        self._workloads: dict[str, str] = {}  # pod UID -> workload name, for its I/O
        self._io: dict[str, tuple[float, list[float]]] = {}  # pod UID -> (last advance, byte totals)

    def assign_pods(self, pods: Iterable[PodInfo]) -> None:
        """Give GPUs to the running GPU pods; pods that ended give them back. A no-op once the kubelet's
        pod-resources map is followed (the kubelet decides which GPUs a pod holds)."""
        running = {p.uid: p for p in pods if p.phase == "Running" and p.gpus_requested > 0}
        with self._pods_lock:
            if self._kubelet_owned:
                return
            owners = {i: uid for i, uid in self._owners.items() if uid in running}
            held = set(owners.values())
            free = [g.index for g in self.fake.gpus if g.index not in owners and not g.lost]
            for uid, pod in sorted(running.items(), key=lambda kv: (kv[1].namespace, kv[1].name)):
                if uid in held:
                    continue
                if len(free) < pod.gpus_requested:
                    log.warning(
                        "sim: pod %s/%s wants %d GPUs, %d free", pod.namespace, pod.name, pod.gpus_requested, len(free)
                    )
                    continue
                for index in free[: pod.gpus_requested]:
                    owners[index] = uid
                free = free[pod.gpus_requested :]
            self._apply(owners, running)

    def follow_kubelet(self, owners: Mapping[str, PodInfo]) -> None:
        """Run each pod's workload on the GPUs the kubelet gave it (GPU UUID -> pod, from pod-resources)."""
        index = {g.uuid: g.index for g in self.fake.gpus}
        with self._pods_lock:
            self._kubelet_owned = True
            by_index = {index[uuid]: pod.uid for uuid, pod in owners.items() if uuid in index}
            self._apply(by_index, {pod.uid: pod for pod in owners.values()})

    def _apply(self, owners: dict[int, str], pods: Mapping[str, PodInfo]) -> None:
        workloads: dict[str, str] = {}
        for gpu in self.fake.gpus:
            owner = owners.get(gpu.index)
            if owner is None:
                if gpu.owner is not None:
                    self.fake.set_workload(gpu.index, "idle", None)
                continue
            uid = owner
            name = pods[uid].annotations.get(WORKLOAD_ANNOTATION, DEFAULT_WORKLOAD)
            if name not in WORKLOADS:
                log.warning(
                    "sim: pod %s has unknown %s=%r (known: %s); using %s",
                    pods[uid].name,
                    WORKLOAD_ANNOTATION,
                    name,
                    ", ".join(WORKLOADS),
                    DEFAULT_WORKLOAD,
                )
                name = DEFAULT_WORKLOAD
            workloads[uid] = name
            if gpu.owner != uid or gpu.workload.name != name:
                self.fake.set_workload(gpu.index, name, uid)
        self._owners = owners
        self._workloads = workloads

    def pod_throughput(self) -> dict[str, float]:
        """Pod UID -> the simulated samples/s of its GPUs (what a training script would publish)."""
        out: dict[str, float] = {}
        with self._pods_lock:
            for gpu in self.fake.gpus:
                if gpu.owner is not None and not gpu.lost:
                    out[gpu.owner] = out.get(gpu.owner, 0.0) + gpu.throughput()
        return out

    def pod_owners(self) -> dict[str, str] | None:
        with self._pods_lock:
            return {self.fake.gpus[i].uuid: uid for i, uid in self._owners.items()}

    def pod_io_counters(self, uids: Iterable[str]) -> dict[str, PodCounters]:
        """Byte totals of the pods holding GPUs here, advanced at their workload's rates since the last call."""
        now = self.clock()
        with self._pods_lock:
            gpus: dict[str, int] = {}
            for uid in self._owners.values():
                gpus[uid] = gpus.get(uid, 0) + 1
            workloads = dict(self._workloads)
        out: dict[str, PodCounters] = {}
        for uid in uids:
            last, totals = self._io.get(uid, (now, [0.0, 0.0, 0.0, 0.0]))
            rates = IO_RATES.get(workloads.get(uid, "idle"), IO_RATES["idle"])
            noise = 0.95 + 0.1 * _unit(f"{uid}/{int(now)}")
            elapsed = max(now - last, 0.0) * gpus.get(uid, 0) * noise
            for i, rate in enumerate((rates.net_rx, rates.net_tx, rates.read, rates.write)):
                totals[i] += rate * elapsed
            self._io[uid] = (now, totals)
            out[uid] = PodCounters(*(int(t) for t in totals))
        for gone in set(self._io) - set(out):
            del self._io[gone]
        return out


def _unit(key: str) -> float:
    """A repeatable number in [0, 1) for `key` (noise that tests can rely on being bounded)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32
