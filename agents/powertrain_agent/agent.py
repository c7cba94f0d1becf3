"""The agent: wires a collector to the exporter, the reporter, the health tracker and the actuator.

Threads (no asyncio: every call here is blocking, so each kind of work gets its own thread and nothing
can stall the per-sample path):
- main: the fast sample every `interval_s` (a few µs per NVML call, GPM included);
- slow: energy, PCIe, ECC, NVLink, processes, network counters every `slow_interval_s`;
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
from powertrain_agent.readings import GpuEvent, GpuSample, PodInfo
from powertrain_agent.reporter import ConditionBook, ReportPolicy, StatusWriter, build_status, fingerprint
from powertrain_agent.rollup import Rollup
from powertrain_agent.state import AgentState
from powertrain_agent.throughput import read_published

log = logging.getLogger(__name__)

FINISHED_PHASES = frozenset({"Succeeded", "Failed"})


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
        pods = self._attribute(slow)
        throughput = self._throughput(slow, pods, now)
        self.state.set_slow(slow, time.perf_counter() - started)
        with self.state.lock:
            self.state.data.network = network
            self.state.data.pods = pods
            self.state.data.throughput = throughput

    def _attribute(self, slow: list[Any]) -> dict[str, PodInfo]:
        """GPU uuid -> pod: from the simulator directly, else from the GPU's processes and their cgroups."""
        owners = self.collector.pod_owners()
        by_uid = self._pods
        out: dict[str, PodInfo] = {}
        if owners is not None:
            for uuid, uid in owners.items():
                if uid in by_uid:
                    out[uuid] = by_uid[uid]
            return out
        for s in slow:
            for pid in s.pids:
                pod_uid = pod_uid_of_pid(pid, self.config.proc_root)
                if pod_uid is not None and pod_uid in by_uid:
                    out[s.uuid] = by_uid[pod_uid]
                    break
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
        rates = self._network_rates(now, snap.network)
        status = build_status(
            snap, closed.windows, closed.energy_joules, closed.length_s, rates, now, __version__, self.conditions
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
        start = self._net_at_window_start
        self._net_at_window_start = (now, dict(totals))
        if start is None or now <= start[0]:
            return {}
        elapsed = now - start[0]
        rates = {}
        for name, (kind, rx, tx) in totals.items():
            if name in start[1]:
                _, rx0, tx0 = start[1][name]
                rates[name] = (kind, max(rx - rx0, 0) / elapsed, max(tx - tx0, 0) / elapsed)
        return rates

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
        """Stop threads, put power limits back to default, release NVML."""
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=5)
        for act in self.actuator.restore_all():
            log.info("shutdown: GPU %s power limit %s (%s)", act.uuid, act.action, act.message)
        try:
            self.collector.close()
        except Exception:
            log.exception("closing the collector failed")
