"""The `sim` backend: the real NVML collector over `FakeNvml`, with GPUs given to the pods running on the node.

A running pod that requests `nvidia.com/gpu` gets that many GPUs (lowest free indices; a pod keeps its GPUs
while it runs). Its GPUs run the workload named by the pod annotation `powertrain.dev/sim-workload`
(matmul | memcopy | starved | held | idle; default matmul), drawing power and showing activity as the recorded
H200 did; GPUs without a pod are idle. Power limits applied through the actuator really change the simulated
draw and SM clock and raise the SwPowerCap reason bit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from powertrain_agent.collectors.nvml import NvmlCollector
from powertrain_agent.fake_nvml import DEFAULT_WORKLOAD, H200_HGX, WORKLOADS, FakeNvml, GpuSpec
from powertrain_agent.readings import PodInfo

log = logging.getLogger(__name__)

WORKLOAD_ANNOTATION = "powertrain.dev/sim-workload"


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

    def assign_pods(self, pods: Iterable[PodInfo]) -> None:
        """Give GPUs to the running GPU pods; pods that ended give them back."""
        running = {p.uid: p for p in pods if p.phase == "Running" and p.gpus_requested > 0}
        with self._pods_lock:
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
            for gpu in self.fake.gpus:
                owner = owners.get(gpu.index)
                if owner is None:
                    if gpu.owner is not None:
                        self.fake.set_workload(gpu.index, "idle", None)
                    continue
                uid = owner
                name = running[uid].annotations.get(WORKLOAD_ANNOTATION, DEFAULT_WORKLOAD)
                if name not in WORKLOADS:
                    log.warning(
                        "sim: pod %s has unknown %s=%r (known: %s); using %s",
                        running[uid].name,
                        WORKLOAD_ANNOTATION,
                        name,
                        ", ".join(WORKLOADS),
                        DEFAULT_WORKLOAD,
                    )
                    name = DEFAULT_WORKLOAD
                if gpu.owner != uid or gpu.workload.name != name:
                    self.fake.set_workload(gpu.index, name, uid)
            self._owners = owners

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
