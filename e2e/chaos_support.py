"""Helpers for the chaos and fuzz suites: a consistent view of the sandbox's objects, the invariants every
moment of a run must keep, an operator that is killed and restarted, sim agents whose API access can be cut,
and the fault kinds the sandbox can inject (read from its faults module, so a kind added there is used here
without editing this file)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import inspect
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from powertrain.api import constants as c
from powertrain.controllers.testing import OperatorProcess
from powertrain.sandbox import faults as faults_module
from powertrain.sandbox.cluster import Sandbox
from powertrain_agent.agent import Agent, AgentConfig
from powertrain_agent.cli import start_watches
from powertrain_agent.collectors.sim import SimCollector
from powertrain_agent.kube import KubeClient, load_client
from powertrain_agent.reporter import StatusWriter

PODS = "pods"
JOBS = "trainingjobs.powertrain.dev"
NODES = "nodes"
TERMINAL = ("Succeeded", "Failed")


# A view of the cluster read straight from the sandbox's store on its own loop: one consistent instant, and
# never failed by the faults the test injects into API requests.


@dataclass
class ClusterView:
    pods: list[dict[str, Any]]
    jobs: list[dict[str, Any]]
    nodes: list[dict[str, Any]]

    def job_phases(self) -> dict[str, str]:
        return {j["metadata"]["name"]: (j.get("status") or {}).get("phase", "") for j in self.jobs}


def view(sandbox: Sandbox) -> ClusterView:
    assert sandbox.server is not None
    store = sandbox.server.store

    async def read(_client: object) -> ClusterView:
        return ClusterView(
            pods=[copy.deepcopy(p) for p in store.iter(PODS)],
            jobs=[copy.deepcopy(j) for j in store.iter(JOBS)],
            nodes=[copy.deepcopy(n) for n in store.iter(NODES)],
        )

    return sandbox.call(read)


def pod_gpus(pod: dict[str, Any]) -> int:
    """GPUs a pod asks for: the larger of request and limit over its containers, as the kubelet admits it."""
    total = 0
    for container in pod["spec"].get("containers") or []:
        resources = container.get("resources") or {}
        asked = [int((resources.get(k) or {}).get(c.GPU_RESOURCE, 0)) for k in ("requests", "limits")]
        total += max(asked)
    return total


def holds_gpus(pod: dict[str, Any]) -> bool:
    return bool(pod["spec"].get("nodeName")) and (pod.get("status") or {}).get("phase") not in TERMINAL


def invariant_violations(state: ClusterView) -> list[str]:
    """What is wrong at this instant: a node holding more GPUs than it has, a job with two gangs alive at once,
    a pod whose TrainingJob is gone."""
    problems: list[str] = []
    allocatable = {
        n["metadata"]["name"]: int(((n.get("status") or {}).get("allocatable") or {}).get(c.GPU_RESOURCE, 0))
        for n in state.nodes
    }
    held: dict[str, int] = {}
    for pod in state.pods:
        if holds_gpus(pod):
            node = pod["spec"]["nodeName"]
            held[node] = held.get(node, 0) + pod_gpus(pod)
    for node, gpus in sorted(held.items()):
        if gpus > allocatable.get(node, 0):
            problems.append(f"node {node}: {gpus} GPUs held by pods, {allocatable.get(node, 0)} allocatable")

    live_uids = {j["metadata"]["uid"] for j in state.jobs if not j["metadata"].get("deletionTimestamp")}
    generations: dict[str, set[str]] = {}
    for pod in state.pods:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        job = labels.get(c.JOB_NAME_LABEL)
        if job is None:
            continue
        owners = {ref.get("uid") for ref in meta.get("ownerReferences") or []}
        if not owners & live_uids:
            problems.append(f"orphan pod {meta['name']} (job {job}): no live TrainingJob owns it")
        # A gang being replaced releases its pods one by one; the one to watch is the set still running.
        if holds_gpus(pod) and not meta.get("deletionTimestamp"):
            generations.setdefault(job, set()).add(labels.get(c.GANG_GENERATION_LABEL, "?"))
    for job, gens in sorted(generations.items()):
        if len(gens) > 1:
            problems.append(f"job {job}: pods of gang generations {sorted(gens)} hold GPUs at once")
    return problems


# The operator, killed and restarted; every way a process ended is kept, to tell a SIGKILL from a silent exit.


@dataclass
class Ending:
    code: int
    killed_by_test: bool
    after: str  # the last chaos event before it ended
    work_left: bool  # whether some job had not finished when the end was seen

    def __str__(self) -> str:
        how = "SIGKILLed by the test" if self.killed_by_test else "exited by itself"
        left = "with work left" if self.work_left else "with every job finished"
        return f"exit code {self.code} ({how}, {left}) after {self.after}"


class OperatorSupervisor:
    """Keeps one `powertrain operator` running like a Deployment would, and records how every process ended."""

    def __init__(self, kubeconfig: Path, log_path: Path, work_left: Callable[[], bool]) -> None:
        self.work_left = work_left
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.endings: list[Ending] = []
        self.last_event = "start"
        self.current = OperatorProcess(kubeconfig, log_path).start()

    def _ended(self, killed: bool) -> None:
        proc = self.current.proc
        assert proc is not None
        assert proc.returncode is not None
        self.endings.append(Ending(proc.returncode, killed, self.last_event, self.work_left()))

    def kill_and_restart(self) -> None:
        if self.current.alive:
            self.current.kill()
            self._ended(killed=True)
        else:
            self._ended(killed=False)
        self.current = OperatorProcess(self.kubeconfig, self.log_path).start()

    def revive_if_exited(self) -> bool:
        """Restart a process that ended on its own (as the Deployment would); True when one had."""
        if self.current.alive:
            return False
        self._ended(killed=False)
        self.current = OperatorProcess(self.kubeconfig, self.log_path).start()
        return True

    def stop(self) -> None:
        if self.current.alive:
            self.current.stop()
        elif self.current.proc is not None:
            self._ended(killed=False)

    def silent_exits(self) -> list[Ending]:
        return [e for e in self.endings if not e.killed_by_test]

    def kills(self) -> int:
        return sum(1 for e in self.endings if e.killed_by_test and e.code == -9)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def log_errors(text: str) -> list[str]:
    """Tracebacks and ERROR/CRITICAL lines in an operator log (kopf's JSON lines, or plain text)."""
    found: list[str] = []
    for line in text.splitlines():
        if "Traceback (most recent call last)" in line:
            found.append(line.strip()[:400])
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if re.search(r"\b(ERROR|CRITICAL)\b", line):
                found.append(line.strip()[:400])
            continue
        if isinstance(record, dict):
            level = str(record.get("severity") or record.get("level") or record.get("levelname") or "").upper()
            if level in ("ERROR", "CRITICAL") or "Traceback" in str(record.get("exc_info") or ""):
                found.append(line.strip()[:400])
    return found


# Fault kinds the sandbox supports.


def fault_codes() -> tuple[int, ...]:
    return tuple(faults_module.ALLOWED_CODES)


def fault_verbs() -> tuple[str, ...]:
    return tuple(faults_module.ALLOWED_VERBS)


KNOWN_FAULT_PARAMETERS = {"error_rate", "codes", "retry_after_seconds", "verbs", "resources", "latency", "seed"}
KNOWN_FAULT_ACTIONS = {"configure", "clear", "drop_watches", "applies", "maybe_fail", "to_json", "from_json"}


COUNT_PARAMETERS = {"count", "n", "times"}  # an action such as conflict_watches(count) fires that many faults
ACTION_COUNT = 3


def extra_fault_actions(faults: Any) -> dict[str, Callable[[], Any]]:
    """Public actions the faults object gained beyond dropping watches (e.g. 409s sent on the next watches)
    that need no argument but a count: the chaos run can fire each of them like drop_watches."""
    actions: dict[str, Callable[[], Any]] = {}
    fields = {f.name for f in dataclasses.fields(faults)} if dataclasses.is_dataclass(faults) else set()
    for name, member in inspect.getmembers(faults, callable):
        if name.startswith("_") or name in KNOWN_FAULT_ACTIONS or name in fields or name.endswith("_json"):
            continue
        try:
            params = inspect.signature(member).parameters.values()
        except (TypeError, ValueError):
            continue
        required = [
            p.name
            for p in params
            if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        if all(r in COUNT_PARAMETERS for r in required):
            actions[name] = functools.partial(member, **{r: ACTION_COUNT for r in required})
    return actions


def extra_fault_parameters(faults: Any) -> list[str]:
    """configure() parameters this suite does not know yet; listed in the summary so they get a chaos step."""
    params = inspect.signature(faults.configure).parameters
    named = {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return sorted(named - KNOWN_FAULT_PARAMETERS)


def extra_rate_parameters(faults: Any) -> list[str]:
    """New configure() parameters that are rates (a name ending in `rate`, a float default of 0): the chaos
    run sets each to its fault rate; any other new parameter is only reported."""
    params = inspect.signature(faults.configure).parameters
    return [
        name
        for name in extra_fault_parameters(faults)
        if name.endswith("rate") and isinstance(params[name].default, float) and params[name].default == 0.0
    ]


def transient_watch_actions(faults: Any) -> dict[str, Any]:
    """The new no-argument actions about watches (a 409 sent on open watches, say): transient by nature, so
    the chaos run fires them. Others (deleting a CRD for good?) could end the run rather than test it."""
    return {name: action for name, action in extra_fault_actions(faults).items() if "watch" in name}


# Everything the faults object offered when this suite was written; anything else is a newer kind.
BASELINE_FAULT_NAMES = {
    *KNOWN_FAULT_ACTIONS,
    *KNOWN_FAULT_PARAMETERS,
    "codes",
    "dropper",
    "injected",
}


def watch_fault_kind_added(faults: Any) -> bool:
    """Whether the sandbox gained a fault kind aimed at watches or CRDs beyond dropping watches: it lands with
    the operator's fix for watch loss (issue 14, defect 2), so its presence says that fix is in."""
    names = {n for n in dir(faults) if not n.startswith("_")} - BASELINE_FAULT_NAMES
    names |= set(extra_fault_parameters(faults))
    return any(word in name.lower() for name in names for word in ("watch", "crd", "conflict"))


class FaultTally:
    """Counts the faults the sandbox injects by kind (status code and request verb), by wrapping its
    maybe_fail on this one instance: the sandbox itself is unchanged."""

    def __init__(self, faults: Any) -> None:
        self.by_kind: dict[str, int] = {}
        original = faults.maybe_fail

        def counting(verb: str, plural: str, group: str) -> None:
            try:
                original(verb, plural, group)
            except Exception as exc:
                code = getattr(exc, "code", None) or getattr(exc, "status", None) or type(exc).__name__
                key = f"{code} on {verb}"
                self.by_kind[key] = self.by_kind.get(key, 0) + 1
                raise

        faults.maybe_fail = counting

    def by_code(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for key, n in self.by_kind.items():
            code = key.split(" ", 1)[0]
            totals[code] = totals.get(code, 0) + n
        return dict(sorted(totals.items()))


# A TCP forwarder in front of the API server, so one client's access can be cut while every other keeps it.


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to the sandbox API server; cut() closes every connection and refuses new ones
    (as a network partition or a revoked route would), restore() lets them through again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass  # the other side went away, or cut() closed it
        finally:
            for s in (src, dst):
                self._close(s)

    def _close(self, s: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(s)
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            open_sockets = list(self._sockets)
        for s in open_sockets:
            self._close(s)

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self.listener.close()


def proxied_kubeconfig(sandbox: Sandbox, proxy: CuttableProxy, path: Path) -> Path:
    """A copy of the sandbox's kubeconfig that reaches the API server through `proxy` (same CA and token; the
    certificate names 127.0.0.1, which the proxy listens on)."""
    config = yaml.safe_load(sandbox.kubeconfig_path.read_text())
    for cluster in config["clusters"]:
        server = cluster["cluster"]["server"]
        cluster["cluster"]["server"] = re.sub(r"//[^/]+", f"//127.0.0.1:{proxy.port}", server, count=1)
    path.write_text(yaml.safe_dump(config))
    return path


# Sim agents whose reported energy is counted write by write.


class CountingKube(KubeClient):
    """The agent's own API client, counting the energy in every NodeTelemetry status write the server took."""

    def __init__(self, api_client: Any) -> None:
        super().__init__(api_client)
        self.reported_joules = 0.0
        self.writes = 0
        self.peak_watts = 0.0  # highest mean power of a window between two accepted writes
        self._last_write: float | None = None

    def patch_node_telemetry_status(self, name: str, status: dict[str, Any]) -> None:
        super().patch_node_telemetry_status(name, status)
        now = time.monotonic()
        joules = sum(float(g.get("energyJoules") or g.get("energy_joules") or 0.0) for g in status.get("gpus") or [])
        if self._last_write is not None and now > self._last_write:
            self.peak_watts = max(self.peak_watts, joules / (now - self._last_write))
        self._last_write = now
        self.reported_joules += joules
        self.writes += 1


@dataclass
class AgentTimings:
    interval_s: float = 0.5
    slow_interval_s: float = 1.0
    report_min_interval_s: float = 1.0
    report_max_interval_s: float = 2.0


@dataclass
class SimAgent:
    """One incarnation of the agent on a sandbox node, in this process, over a simulated NVML whose energy
    counters are the truth the reports are checked against."""

    node: str
    kubeconfig: Path
    timings: AgentTimings = field(default_factory=AgentTimings)

    def __post_init__(self) -> None:
        self.sim = SimCollector(8, seed=self.node)
        self.sim.open()
        self.kube = CountingKube(load_client(str(self.kubeconfig)))
        t = self.timings
        config = AgentConfig(
            node=self.node,
            interval_s=t.interval_s,
            slow_interval_s=t.slow_interval_s,
            report_min_interval_s=t.report_min_interval_s,
            report_max_interval_s=t.report_max_interval_s,
            report_jitter_s=0,
            health_clear_s=1.0,
            xid_hold_s=0.5,
        )
        self.agent = Agent(config, self.sim, StatusWriter(self.kube, self.node))
        start_watches(self.agent, self.kube, self.node)
        self.thread = threading.Thread(target=self.agent.run, name=f"agent-{self.node}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.agent.stop_event.set()
        self.thread.join(timeout=15)
        self.agent.shutdown()

    def true_joules(self) -> float:
        """Energy the simulated GPUs used between the agent's first and last reading of their counters."""
        return sum(gpu.energy_mj for gpu in self.sim.fake.gpus) / 1000.0


@dataclass
class EnergyAudit:
    node: str
    true_joules: float
    reported_joules: float
    writes: int
    peak_watts: float
    seconds: float

    @property
    def lost_joules(self) -> float:
        return self.true_joules - self.reported_joules

    def allowance(self, window_s: float) -> float:
        """One report window at the node's highest power between writes: what a stop may leave unreported.
        (A window merged over an outage does not raise it: its mean power is an ordinary one.)"""
        mean_watts = self.true_joules / self.seconds if self.seconds > 0 else 0.0
        return max(self.peak_watts, mean_watts) * window_s

    def __str__(self) -> str:
        share = self.reported_joules / self.true_joules if self.true_joules else 1.0
        return (
            f"{self.node}: simulated {self.true_joules / 1000:.1f} kJ, reported {self.reported_joules / 1000:.1f} kJ "
            f"({share:.0%}) in {self.writes} writes over {self.seconds:.0f} s"
        )


def iter_docs(objs: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(objs), size):
        yield objs[i : i + size]
