"""The agent: wires a collector to the exporter, the reporter, the health tracker and the actuator.

Threads (no asyncio: every call here is blocking, so each kind of work gets its own thread and nothing
can stall the per-sample path):
- main: the fast sample every `interval_s` (a few µs per NVML call, GPM included);
- slow: energy, PCIe, ECC, NVLink, processes, network counters, which pod holds which GPU (the kubelet's
  pod-resources API, else the GPUs' processes' cgroups) and each such pod's network/storage counters, every
  `slow_interval_s`;
- events: nvmlEventSetWait, woken by XIDs and ECC events as they happen;
- control: actuator reconcile and NodeTelemetry writes (API calls may take seconds);
- two list-watches (pods on this node, this node's NodeTelemetry) and the HTTP exporter.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from powertrain_agent import __version__
from powertrain_agent.actuator import PowerActuator
from powertrain_agent.cgroup import pod_uid_of_pid
from powertrain_agent.collectors import Collector
from powertrain_agent.health import HealthTracker
from powertrain_agent.network import NetworkMonitor
from powertrain_agent.podio import MonotonicTotals, PodCounters, PodIoReader
from powertrain_agent.podresources import PodResourcesClient, PodResourcesError, gpu_owners
from powertrain_agent.readings import GpuEvent, GpuSample, PodInfo
from powertrain_agent.reporter import (
    ConditionBook,
    PodRates,
    ReportPolicy,
    StatusWriter,
    build_status,
    fingerprint,
)
from powertrain_agent.rollup import Rollup
from powertrain_agent.state import AgentState
from powertrain_agent.throughput import read_published

log = logging.getLogger(__name__)

FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
FINAL_REPORT_ATTEMPTS = 3
FINAL_REPORT_PAUSE_S = 0.5


@dataclass
class AgentConfig:
    node: str
    interval_s: float = 1.0
    slow_interval_s: float = 5.0
    reconcile_interval_s: float = 10.0
    dry_run_power: bool = False
    proc_root: Path = Path("/proc")
    sys_root: Path = Path("/sys")
    report_min_interval_s: float = 20.0
    report_max_interval_s: float = 60.0
    report_jitter_s: float = 5.0
    health_clear_s: float = 300.0
    xid_hold_s: float = 600.0
    # The kubelet's pod-resources socket; None (or a missing socket) attributes GPUs through cgroups instead.
    pod_resources_socket: Path | None = None
    # The host's cgroup v2 tree (pods' io.stat); None: <sys_root>/fs/cgroup. In a container with its own cgroup
    # namespace that is the container's own tree, so the chart mounts the host's elsewhere.
    cgroup_root: Path | None = None


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        collector: Collector,
        writer: StatusWriter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.collector = collector
        self.writer = writer
        self.clock = clock
        self.state = AgentState(config.node, collector.name)
        self.health = HealthTracker(config.health_clear_s, config.xid_hold_s)
        self.rollup = Rollup()
        self.network = NetworkMonitor(config.proc_root, config.sys_root)
        self.pod_resources = PodResourcesClient(config.pod_resources_socket) if config.pod_resources_socket else None
        self._pod_resources_failing = False
        self.pod_io = PodIoReader(config.proc_root, config.cgroup_root or config.sys_root / "fs" / "cgroup")
        self._pod_totals = MonotonicTotals()
        self._pod_io_at_window_start: tuple[float, dict[str, PodCounters]] | None = None
        self._last_net_rates: dict[str, tuple[str, float, float]] = {}
        self._last_pod_rates: dict[str, PodRates] = {}
        self._pod_first_seen: dict[str, float] = {}  # pod UID -> when its counters were first read (totals 0)
        self.actuator = PowerActuator(collector.power_control(), dry_run=config.dry_run_power, clock=clock)
        self.policy = ReportPolicy(
            config.report_min_interval_s,
            config.report_max_interval_s,
            initial_jitter_s=random.uniform(0, config.report_jitter_s),
        )
        self.conditions = ConditionBook()
        self.stop_event = threading.Event()
        self._rollup_lock = threading.Lock()
        self._pods: dict[str, PodInfo] = {}
        self._requests: dict[str, float] = {}
        self._requests_expire_at: float | None = None
        self._expired = False
        self._requests_changed = threading.Event()
        self._last_reconcile = float("-inf")
        self._reconciled_generation = -1
        self._net_at_window_start: tuple[float, dict[str, tuple[str, int, int]]] | None = None
        self._threads: list[threading.Thread] = []

    # ---- inputs from the API server (called from watch threads) ----

    def set_pods(self, pods: dict[str, PodInfo]) -> None:
        self._pods = dict(pods)
        assign = getattr(self.collector, "assign_pods", None)
        if assign is not None:
            assign(list(pods.values()))
        # A pod that finished or went away holds no GPU from now on: drop it at once rather than at the next slow
        # sample (seconds later), so GPUs are never shown as held by a job that has ended.
        with self.state.lock:
            self.state.data.pods = {
                uuid: pod
                for uuid, pod in self.state.data.pods.items()
                if (current := pods.get(pod.uid)) is not None and current.phase not in FINISHED_PHASES
            }

    def set_power_requests(self, requests: dict[str, float], expires_at: float | None = None) -> None:
        """The operator's requests; past `expires_at` (epoch seconds) they lapse and the GPUs go back to default."""
        if requests != self._requests or expires_at != self._requests_expire_at:
            self._requests = dict(requests)
            self._requests_expire_at = expires_at
            self._requests_changed.set()

    def effective_requests(self, now: float) -> dict[str, float]:
        """The requests in force: none once they expired (the operator stopped renewing them)."""
        expired = self._requests_expire_at is not None and now >= self._requests_expire_at and bool(self._requests)
        if expired and not self._expired:
            log.warning(
                "power-limit requests expired %.0f s ago without renewal (is the operator running?): "
                "GPUs go back to their default limits",
                now - (self._requests_expire_at or now),
            )
        self._expired = expired
        return {} if expired else dict(self._requests)

    # ---- one step of each loop (public so tests and benchmarks drive them with a fake clock) ----

    def step(self) -> list[GpuSample]:
        started = time.perf_counter()
        samples = self.collector.sample()
        now = self.clock()
        health = {s.uuid: self.health.observe_sample(s, now) for s in samples}
        self.state.set_samples(samples, health, time.perf_counter() - started)
        with self._rollup_lock:
            self.rollup.add(samples, now)
        errors = getattr(self.collector, "errors", None)
        if errors is not None:
            with self.state.lock:
                self.state.data.nvml_errors = type(errors)(errors)
                self.state.data.driver_version = getattr(self.collector, "driver_version", None)
        return samples

    def slow_step(self) -> None:
        started = time.perf_counter()
        slow = self.collector.sample_slow()
        now = self.clock()
        for s in slow:
            self.health.observe_slow(s, now)
        network = self.network.read()
        network_at = self.clock()
        pods, attribution = self._attribute(slow)
        pod_io = self._pod_totals.update(self._read_pod_io({p.uid for p in pods.values()}))
        pod_io_at = self.clock()
        self._pod_first_seen = {uid: self._pod_first_seen.get(uid, pod_io_at) for uid in pod_io}
        throughput = self._throughput(slow, pods, now)
        self.state.set_slow(slow, time.perf_counter() - started)
        with self.state.lock:
            before = {uuid: pod.uid for uuid, pod in self.state.data.pods.items()}
        changed = {u for u in set(before) | set(pods) if before.get(u) != (pods[u].uid if u in pods else None)}
        if changed:
            # Samples taken before a GPU changed hands are not the new pod's (nor the old one's, once it is gone).
            with self._rollup_lock:
                self.rollup.restart(changed)
        with self.state.lock:
            self.state.data.network = network
            self.state.data.network_at = network_at
            self.state.data.pods = pods
            self.state.data.attribution = attribution
            self.state.data.pod_io = pod_io
            self.state.data.pod_io_at = pod_io_at
            self.state.data.throughput = throughput

    def _read_pod_io(self, uids: set[str]) -> dict[str, PodCounters]:
        simulated = getattr(self.collector, "pod_io_counters", None)
        if simulated is not None:
            counters: dict[str, PodCounters] = simulated(uids)
            return counters
        self.pod_io.forget(uids)
        return {uid: self.pod_io.read(uid) for uid in uids}

    def _attribute(self, slow: list[Any]) -> tuple[dict[str, PodInfo], str]:
        """GPU uuid -> pod, and how it was found: the kubelet's pod-resources API when its socket is there, else
        the simulator's own map, else the GPUs' processes and their cgroups."""
        kubelet = self._attribute_by_kubelet()
        if kubelet is not None:
            return kubelet, "pod-resources"
        owners = self.collector.pod_owners()
        by_uid = self._pods
        out: dict[str, PodInfo] = {}
        if owners is not None:
            for uuid, uid in owners.items():
                if uid in by_uid:
                    out[uuid] = by_uid[uid]
            return out, "simulator"
        for s in slow:
            for pid in s.pids:
                pod_uid = pod_uid_of_pid(pid, self.config.proc_root)
                if pod_uid is not None and pod_uid in by_uid:
                    out[s.uuid] = by_uid[pod_uid]
                    break
        return out, "cgroup"

    def _attribute_by_kubelet(self) -> dict[str, PodInfo] | None:
        client = self.pod_resources
        if client is None or not client.available():
            return None
        try:
            listed = client.list()
        except PodResourcesError as exc:
            if not self._pod_resources_failing:  # once per outage, not every slow sample
                log.warning("%s; attributing GPUs through cgroups until it answers", exc)
            self._pod_resources_failing = True
            return None
        if self._pod_resources_failing:
            log.info("kubelet pod-resources answers again")
        self._pod_resources_failing = False
        with self.state.lock:
            indices = {uuid: sample.index for uuid, sample in self.state.data.gpus.items()}
        by_name = {(p.namespace, p.name): p for p in self._pods.values() if p.phase not in FINISHED_PHASES}
        out = {uuid: by_name[key] for uuid, key in gpu_owners(listed, indices).items() if key in by_name}
        follow = getattr(self.collector, "follow_kubelet", None)
        if follow is not None:
            follow(out)
        return out

    def _throughput(self, slow: list[Any], pods: dict[str, PodInfo], now: float) -> dict[str, float]:
        """Pod UID -> the throughput it publishes (see powertrain_agent.throughput)."""
        direct = getattr(self.collector, "pod_throughput", None)
        if direct is not None:
            rates: dict[str, float] = direct()
            return rates
        out: dict[str, float] = {}
        wall = time.time()
        for s in slow:
            pod = pods.get(s.uuid)
            if pod is None or pod.uid in out:
                continue
            for pid in s.pids:
                rate = read_published(self.config.proc_root, pid, wall)
                if rate is not None:
                    out[pod.uid] = rate
                    break
        return out

    def handle_events(self, events: list[GpuEvent]) -> None:
        now = self.clock()
        for e in events:
            log.warning("GPU %s event %s=%d", e.uuid, e.kind, e.value)
            self.health.observe_event(e, now)
            with self.state.lock:
                if e.kind == "xid":
                    self.state.data.xids[(e.uuid, e.value)] += 1
                    self.state.data.last_xid[e.uuid] = e.value
                sample = self.state.data.gpus.get(e.uuid)
                if sample is not None:  # publish the verdict now, not at the next sample
                    self.state.data.health[e.uuid] = self.health.observe_sample(sample, now)

    def control_step(self) -> None:
        """Reconcile power limits when asked, after a re-init, or periodically (drift); then maybe report."""
        now = self.clock()
        generation = self.collector.generation
        was_expired = self._expired
        requests = self.effective_requests(now)
        due = (
            self._requests_changed.is_set()
            or self._expired != was_expired
            or generation != self._reconciled_generation
            or now - self._last_reconcile >= self.config.reconcile_interval_s
        )
        if due:
            self._requests_changed.clear()
            with self.state.lock:
                gpus = [uuid for uuid, s in self.state.data.gpus.items() if not s.lost]
            if gpus or requests:
                results = self.actuator.reconcile(requests, gpus)
                with self.state.lock:
                    self.state.data.actuations = results
                    self.state.data.operator_requests = requests
                    self.state.data.requests_expired = self._expired
                    # Report the limits just read back, not the ones from the sample before the change.
                    for uuid, act in results.items():
                        sample = self.state.data.gpus.get(uuid)
                        if sample is not None and act.action in ("set", "restored"):
                            sample.power_limit_watts = act.enforced_watts
                            sample.configured_power_limit_watts = act.target_watts
                self._reconciled_generation = generation
            self._last_reconcile = now
        self.report(now)

    def report(self, now: float, force: bool = False) -> str | None:
        if self.writer is None:
            return None
        snap = self.state.snapshot()
        fp = fingerprint(snap)
        why = "forced" if force else self.policy.decide(now, fp)
        if why is None:
            return None
        with self._rollup_lock:
            closed = self.rollup.take(now, snap.energy_joules)
        net_start = self._net_at_window_start
        rates = self._network_rates(snap.network_at if snap.network_at is not None else now, snap.network)
        status = build_status(
            snap,
            closed.windows,
            closed.energy_joules,
            closed.length_s,
            rates,
            now,
            __version__,
            self.conditions,
            pod_rates=self._pod_io_rates(snap.pod_io_at if snap.pod_io_at is not None else now, snap.pod_io),
        )
        try:
            result = self.writer.write(status)
        except Exception as exc:
            # Keep what this report carried: the next one covers the whole span, so energy is not lost.
            with self._rollup_lock:
                self.rollup.put_back(closed)
            self._net_at_window_start = net_start
            delay = self.policy.failed(now)
            log.warning(
                "writing NodeTelemetry/%s status failed (%d in a row): %s; retrying in %.0f s",
                self.config.node,
                self.policy.failures,
                exc,
                delay,
            )
            result = "error"
        with self.state.lock:
            self.state.data.report_writes[result] += 1
        if result != "error":
            self.policy.written(now, fp)
            log.debug("NodeTelemetry/%s written (%s)", self.config.node, why)
        return result

    def _network_rates(
        self, now: float, totals: dict[str, tuple[str, int, int]]
    ) -> dict[str, tuple[str, float, float]]:
        """Per interface, bytes/s between the counters read at the last report and those read now (`now` is when
        they were read); with no new read since the last report, the rates that report gave."""
        start = self._net_at_window_start
        if start is not None and now == start[0]:
            return self._last_net_rates
        self._net_at_window_start = (now, dict(totals))
        if start is None or now < start[0]:
            return {}
        elapsed = now - start[0]
        rates = {}
        for name, (kind, rx, tx) in totals.items():
            if name in start[1]:
                _, rx0, tx0 = start[1][name]
                rates[name] = (kind, max(rx - rx0, 0) / elapsed, max(tx - tx0, 0) / elapsed)
        self._last_net_rates = rates
        return rates

    def _pod_io_rates(self, now: float, totals: dict[str, PodCounters]) -> dict[str, PodRates]:
        """Per pod, bytes/s over the report window; a pod first seen during the window, over the time since
        (its totals started from zero then), so a new pod has rates in its first report."""
        start = self._pod_io_at_window_start
        if start is not None and now == start[0]:
            return self._last_pod_rates
        self._pod_io_at_window_start = (now, dict(totals))
        out: dict[str, PodRates] = {}
        for uid, current in totals.items():
            before = start[1].get(uid) if start is not None else None
            since = start[0] if before is not None and start is not None else self._pod_first_seen.get(uid)
            if before is None:
                before = PodCounters(0, 0, 0, 0)
            if since is None or now <= since:
                continue
            elapsed = now - since
            out[uid] = PodRates(
                *(
                    _rate(getattr(before, f), getattr(current, f), elapsed)
                    for f in ("net_rx_bytes", "net_tx_bytes", "read_bytes", "write_bytes")
                )
            )
        self._last_pod_rates = out
        return out

    def _final_report(self) -> None:
        """Write the open window once more before exiting (a rollout, a drain). Without it a stop drops up to one
        report window, and after an API outage, while the backed-off retry waits, everything the outage held back.
        Limits come first: a write to an API server that is still away must not delay them."""
        if self.writer is None:
            return
        if any(t.is_alive() for t in self._threads):  # the control thread is stuck in a write: no second writer
            log.warning("shutdown: a report is still being written; no final report")
            return
        # A few quick tries: one transient answer (a 500, a reset connection) must not drop a whole outage's energy,
        # and three tries half a second apart stay far inside a pod's termination grace period.
        result: str | None = "error"
        for attempt in range(FINAL_REPORT_ATTEMPTS):
            if attempt:
                time.sleep(FINAL_REPORT_PAUSE_S)
            try:
                result = self.report(self.clock(), force=True)
            except Exception:
                log.exception("the final NodeTelemetry report failed")
                return
            if result != "error":
                return
        log.warning("shutdown: the energy since the last written report is not reported (the API is away)")

    # ---- running ----

    def start_threads(self) -> None:
        def loop(name: str, period: float, body: Callable[[], None]) -> threading.Thread:
            def run() -> None:
                while not self.stop_event.is_set():
                    try:
                        body()
                    except Exception:
                        log.exception("%s step failed; continuing", name)
                    self.stop_event.wait(period)

            return threading.Thread(target=run, name=name, daemon=True)

        def events() -> None:
            while not self.stop_event.is_set():
                try:
                    self.handle_events(self.collector.wait_events(1.0))
                except Exception:
                    log.exception("event wait failed; continuing")
                    self.stop_event.wait(1.0)

        self._threads = [
            loop("slow-sampler", self.config.slow_interval_s, self.slow_step),
            loop("control", 1.0, self.control_step),
            threading.Thread(target=events, name="nvml-events", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def run(self) -> None:
        """The fast sample loop, on a fixed cadence, until `stop_event` is set."""
        self.slow_step()  # so energy counters are primed before the first report
        self.start_threads()
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            try:
                self.step()
            except Exception:
                log.exception("sample failed; continuing")
            next_at += self.config.interval_s
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (a slow sample): skip ahead instead of bursting
                next_at = time.monotonic()
                delay = 0
            self.stop_event.wait(delay)

    def shutdown(self) -> None:
        """Stop threads, put power limits back to default, write what is not reported yet, release NVML."""
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=5)
        for act in self.actuator.restore_all():
            log.info("shutdown: GPU %s power limit %s (%s)", act.uuid, act.action, act.message)
        self._final_report()
        try:
            self.collector.close()
        except Exception:
            log.exception("closing the collector failed")
        if self.pod_resources is not None:
            self.pod_resources.close()


def _rate(before: int | None, after: int | None, elapsed: float) -> float | None:
    if before is None or after is None:
        return None
    return max(after - before, 0) / elapsed
