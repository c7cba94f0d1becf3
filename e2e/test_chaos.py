"""Chaos: a mixed 20-job workload on a sandbox with sim agents while the operator is SIGKILLed at random
instants, ~10 % of API requests fail with every code the sandbox can inject (409 on watches included), watches
drop, the NodeTelemetry CRD is deleted and re-created, and an agent is restarted and cut off the API for 30 s.

After every event (and several times a second in between) the cluster must keep its invariants: no node holds
more GPUs than it has, no job has two gangs at once, no pod outlives its TrainingJob. At the end every job has
its expected outcome, no operator process ended by itself with status 0, and every agent reported the energy
its simulated GPUs used, give or take one report window.

Seeded: the seed is printed (and named in every failure); set POWERTRAIN_CHAOS_SEED to replay a run.
POWERTRAIN_CHAOS_QUIET=1 runs the same workload with no chaos (the bench's baseline), and
POWERTRAIN_CHAOS_SUMMARY=<file> writes what happened as JSON (bench/chaos_bench.py records both).
"""

from __future__ import annotations

import functools
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chaos_support import (
    TERMINAL,
    AgentTimings,
    CuttableProxy,
    EnergyAudit,
    FaultTally,
    OperatorSupervisor,
    SimAgent,
    extra_fault_parameters,
    extra_rate_parameters,
    fault_codes,
    fault_verbs,
    invariant_violations,
    proxied_kubeconfig,
    transient_watch_actions,
    view,
    watch_fault_kind_added,
)
from powertrain.api import constants as c
from powertrain.controllers.testing import training_job
from powertrain.core.workload import GANG_GENERATION_ANNOTATION
from powertrain.sandbox.cluster import Sandbox, SandboxConfig, crd_manifests
from powertrain.sandbox.restclient import RestError
from powertrain.sandbox.testing import FAST_KUBELET, Kubectl

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

SEED = int(os.environ.get("POWERTRAIN_CHAOS_SEED", "20261130"))
QUIET = os.environ.get("POWERTRAIN_CHAOS_QUIET") == "1"
CHAOS_SECONDS = 75.0  # events happen in this span; then faults stop and the jobs must converge
CONVERGE_SECONDS = 150.0
FAULT_RATE = 0.1
CUT_SECONDS = 30.0
NT_CRD = "nodetelemetries.powertrain.dev"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
AGENT_TIMINGS = AgentTimings()


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    # 2 racks of 2 nodes x 8 GPUs: rack-level gangs compete for 16-GPU domains.
    return SandboxConfig(nodes=4, gpus_per_node=8, topology="zone=1,spine=1,rack=2", kubelet=FAST_KUBELET)


# The workload ------------------------------------------------------------------------------------------------


@dataclass
class Planned:
    manifest: dict[str, Any]
    expected: str  # the phase it must end in
    wave: int


SHAPES = [  # (replicas, GPUs per replica, level, mode): each fits the cluster, so every job can finish
    (1, 8, "node", "Required"),
    (2, 4, "node", "Required"),
    (1, 2, "node", "Preferred"),
    (1, 1, "node", "Preferred"),
    (2, 8, "rack", "Required"),
    (3, 4, "rack", "Preferred"),
    (2, 2, "rack", "Required"),
    (3, 8, "zone", "Preferred"),
]


def plan_workload(rng: random.Random) -> list[Planned]:
    plans: list[Planned] = []
    for i in range(20):
        replicas, gpus, level, mode = rng.choice(SHAPES)
        wave = 1 if i < 14 else 2
        priority = rng.choice([0, 0, 10]) if wave == 1 else 100  # the second wave preempts the first
        kind = "ok"
        if i in (3, 9):
            kind = "flaky"  # fails, restarts once after the backoff, fails again: Failed
        elif i == 6:
            kind = "broken"  # fails at once with no restart allowed
        elif i in (1, 5):
            kind = "long"  # keeps GPUs busy through the agent's outage
        run = {"ok": rng.uniform(2, 6), "flaky": 2.0, "broken": 1.0, "long": 50.0}[kind]
        job = training_job(
            f"chaos-{i:02d}-{kind}",
            replicas=replicas,
            gpus=gpus,
            level=level,
            mode=mode,
            priority=50 if kind == "long" else priority,
            run_seconds=round(run, 1),
            exit_code={"flaky": 1, "broken": 3}.get(kind),
            backoff_limit={"flaky": 1, "broken": 0}.get(kind),
        )
        plans.append(Planned(job, "Failed" if kind in ("flaky", "broken") else "Succeeded", wave))
    return plans


# Running the chaos --------------------------------------------------------------------------------------------


@dataclass
class Record:
    seed: int
    quiet: bool
    events: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    samples: int = 0
    faults_by_kind: dict[str, int] = field(default_factory=dict)
    converge_seconds: float | None = None

    def note(self, event: str, at: float) -> None:
        self.events.append(f"{at:6.1f}s {event}")


class InvariantSampler(threading.Thread):
    """Checks the invariants several times a second, and notes when every job first reached its end."""

    def __init__(self, sandbox: Sandbox, record: Record, jobs: int) -> None:
        super().__init__(daemon=True, name="invariants")
        self.sandbox = sandbox
        self.record = record
        self.jobs = jobs
        self.began = time.monotonic()
        self.halt = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.halt.wait(0.3):
            self.check("sample")

    def check(self, after: str) -> None:
        state = view(self.sandbox)
        problems = [f"after {after}: {p}" for p in invariant_violations(state)]
        phases = state.job_phases()
        with self.lock:
            self.record.samples += 1
            self.record.violations += [p for p in problems if p not in self.record.violations]
            done = len(phases) == self.jobs and all(ph in TERMINAL for ph in phases.values())
            if done and self.record.converge_seconds is None:
                self.record.converge_seconds = time.monotonic() - self.began


def retrying(what: str, action: Callable[[], Any], attempts: int = 40) -> Any:
    """An API call of the test's own, repeated through the faults it injects itself."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return action()
        except (RestError, AssertionError) as exc:
            last = exc
            time.sleep(0.25)
    raise AssertionError(f"{what} kept failing: {last}")


def apply_jobs(kubectl: Kubectl, plans: list[Planned]) -> None:
    retrying("kubectl apply", lambda: kubectl.apply(*(p.manifest for p in plans)))


def delete_and_recreate_crd(sandbox: Sandbox) -> None:
    manifest = next(m for m in crd_manifests() if m["metadata"]["name"] == NT_CRD)

    def gone() -> bool:
        try:
            sandbox.api("GET", f"{CRD_PATH}/{NT_CRD}")
        except RestError as exc:
            if exc.code == 404:
                return True
            raise
        return False

    def delete() -> None:
        try:
            sandbox.api("DELETE", f"{CRD_PATH}/{NT_CRD}")
        except RestError as exc:
            if exc.code != 404:
                raise

    retrying("deleting the NodeTelemetry CRD", delete)
    deadline = time.monotonic() + 30
    while not retrying("reading the CRD", gone):
        assert time.monotonic() < deadline, "the NodeTelemetry CRD was not removed within 30 s"
        time.sleep(0.2)
    time.sleep(3.0)  # long enough for watches and agent writes to meet the missing type

    def create() -> None:
        try:
            sandbox.api("POST", CRD_PATH, manifest)
        except RestError as exc:
            if exc.code != 409:
                raise

    retrying("re-creating the NodeTelemetry CRD", create)


def busiest_node(sandbox: Sandbox, fallback: str) -> str:
    """The node of a running long job, so the cut agent's GPUs are busy while it cannot report."""
    for pod in view(sandbox).pods:
        job = (pod["metadata"].get("labels") or {}).get(c.JOB_NAME_LABEL, "")
        if (
            job.endswith("-long")
            and pod["spec"].get("nodeName")
            and (pod.get("status") or {}).get("phase") == "Running"
        ):
            return str(pod["spec"]["nodeName"])
    return fallback


@dataclass
class Agents:
    sandbox: Sandbox
    directory: Path
    proxies: dict[str, CuttableProxy] = field(default_factory=dict)
    running: dict[str, SimAgent] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    audits: list[EnergyAudit] = field(default_factory=list)

    def start(self, node: str) -> None:
        if node not in self.proxies:
            host, port = self.sandbox.url.split("//", 1)[1].rsplit(":", 1)
            self.proxies[node] = CuttableProxy("127.0.0.1" if host in ("localhost", "0.0.0.0") else host, int(port))
        kubeconfig = proxied_kubeconfig(self.sandbox, self.proxies[node], self.directory / f"agent-{node}.kubeconfig")
        self.running[node] = SimAgent(node, kubeconfig, AGENT_TIMINGS)
        self.started[node] = time.monotonic()

    def stop(self, node: str) -> None:
        agent = self.running.pop(node)
        agent.stop()
        kube = agent.kube
        self.audits.append(
            EnergyAudit(
                node=node,
                true_joules=agent.true_joules(),
                reported_joules=kube.reported_joules,
                writes=kube.writes,
                peak_watts=kube.peak_watts,
                seconds=time.monotonic() - self.started.pop(node),
            )
        )

    def restart(self, node: str) -> None:
        self.stop(node)
        self.start(node)

    def stop_all(self) -> None:
        for node in list(self.running):
            self.stop(node)
        for proxy in self.proxies.values():
            proxy.close()


@pytest.fixture
def agents(sandbox: Sandbox, tmp_path: Path) -> Iterator[Agents]:
    running = Agents(sandbox, tmp_path)
    for node in sandbox.node_names:
        running.start(node)
    yield running
    running.stop_all()


def test_mixed_workload_survives_kills_faults_crd_loss_and_agent_outage(
    sandbox: Sandbox, kubectl: Kubectl, agents: Agents, tmp_path: Path
) -> None:
    assert sandbox.server is not None
    faults = sandbox.server.faults
    rng = random.Random(SEED)
    print(f"chaos seed {SEED} (replay with POWERTRAIN_CHAOS_SEED={SEED}); quiet={QUIET}")
    record = Record(SEED, QUIET)
    plans = plan_workload(rng)
    expected = {p.manifest["metadata"]["name"]: p.expected for p in plans}
    extra_actions = transient_watch_actions(faults)
    extra_rates: dict[str, Any] = {name: FAULT_RATE for name in extra_rate_parameters(faults)}
    tally = FaultTally(faults)

    # The supervisor restarts an operator that ended on its own, as its Deployment would; how each ended is kept.
    def work_left() -> bool:
        phases = view(sandbox).job_phases()
        return len(phases) < len(plans) or any(ph not in TERMINAL for ph in phases.values())

    operator = OperatorSupervisor(sandbox.kubeconfig_path, tmp_path / "operator.log", work_left)
    sampler = InvariantSampler(sandbox, record, len(plans))
    sampler.start()
    began = sampler.began

    def now() -> float:
        return time.monotonic() - began

    def event(name: str, action: Callable[[], Any]) -> None:
        action()
        operator.last_event = name
        record.note(name, now())
        if operator.revive_if_exited():
            record.note(f"operator had exited by itself: {operator.endings[-1]}", now())
        sampler.check(name)

    # The schedule: instants drawn from the seed, the big events at fixed points so each meets work in flight.
    kills = sorted(rng.uniform(4, CHAOS_SECONDS - 5) for _ in range(6))
    schedule: list[tuple[float, str, Callable[[], Any]]] = [
        (
            12.0,
            "second wave applied (priority 100: preempts)",
            lambda: apply_jobs(kubectl, [p for p in plans if p.wave == 2]),
        ),
    ]
    if not QUIET:
        codes = fault_codes()
        schedule += [(t, "operator SIGKILLed and restarted", operator.kill_and_restart) for t in kills]
        schedule += [(t, "watches dropped", faults.drop_watches) for t in range(3, int(CHAOS_SECONDS), 4)]
        schedule += [
            (
                2.0,
                f"faults on: {FAULT_RATE:.0%} of requests fail with {list(codes)}, verbs {list(fault_verbs())}"
                f"{f', and {sorted(extra_rates)} at the same rate' if extra_rates else ''}",
                lambda: faults.configure(
                    error_rate=FAULT_RATE, codes=codes, retry_after_seconds=0, seed=SEED, **extra_rates
                ),
            ),
            (20.0, "latency 20 ms on every request", lambda: setattr(faults, "latency", 0.02)),
            (30.0, "latency off", lambda: setattr(faults, "latency", 0.0)),
            (24.0, "NodeTelemetry CRD deleted and re-created", lambda: delete_and_recreate_crd(sandbox)),
        ]
        schedule += [  # each newer watch fault (409s on the next watches, say) a few times over the run
            (t + i, f"sandbox fault action {name}", action)
            for i, (name, action) in enumerate(extra_actions.items())
            for t in (10.5, 30.5, 50.5)
        ]
    schedule.sort(key=lambda item: item[0])

    cut_node = ""
    cut_at: float | None = None
    apply_jobs(kubectl, [p for p in plans if p.wave == 1])
    record.note("first wave applied", now())
    try:
        while now() < CHAOS_SECONDS or schedule:
            while schedule and schedule[0][0] <= now():
                _, name, action = schedule.pop(0)
                event(name, action)
            if not QUIET and not cut_node and now() >= 34.0:
                cut_node = busiest_node(sandbox, sandbox.node_names[0])
                event(f"agent on {cut_node} restarted", functools.partial(agents.restart, cut_node))
                # Cut it once it has seen its pods and reported: its GPUs are then busy through the outage.
                fresh = agents.running[cut_node].kube
                deadline = time.monotonic() + 15
                while fresh.writes < 2 and time.monotonic() < deadline:
                    time.sleep(0.2)
                event(f"agent on {cut_node} cut off the API for {CUT_SECONDS:.0f} s", agents.proxies[cut_node].cut)
                cut_at = now()
            if cut_at is not None and now() >= cut_at + CUT_SECONDS:
                event(f"agent on {cut_node} reaches the API again", agents.proxies[cut_node].restore)
                cut_at = None
            if now() >= CHAOS_SECONDS and cut_at is None:
                break
            if QUIET and not schedule and record.converge_seconds is not None:
                break
            time.sleep(0.1)
        record.faults_by_kind = dict(sorted(tally.by_kind.items()))
        event("faults off", faults.clear)

        def converged() -> bool:
            phases = view(sandbox).job_phases()
            return len(phases) == len(plans) and all(ph in TERMINAL for ph in phases.values())

        deadline = time.monotonic() + CONVERGE_SECONDS
        while not converged():
            if operator.revive_if_exited():
                record.note(f"operator had exited by itself: {operator.endings[-1]}", now())
            assert time.monotonic() < deadline, (
                f"seed {SEED}: not converged {CONVERGE_SECONDS:.0f} s after the chaos: {view(sandbox).job_phases()}"
            )
            time.sleep(0.5)
        if record.converge_seconds is None:  # the sampler may not have looked since the last job ended
            record.converge_seconds = now()
        record.note(f"every job finished (first at {record.converge_seconds:.1f} s)", now())
    finally:
        sampler.halt.set()
        sampler.join(5)
        operator.stop()
        agents.stop_all()
        print("\n".join(record.events))
        print(operator.log_text()[-4000:])
        summary = os.environ.get("POWERTRAIN_CHAOS_SUMMARY")
        if summary:
            Path(summary).write_text(
                json.dumps(
                    {
                        "seed": SEED,
                        "quiet": QUIET,
                        "jobs": len(plans),
                        "kills_survived": operator.kills(),
                        "operator_endings": [str(e) for e in operator.endings],
                        "faults_injected": faults.injected,
                        "faults_by_code": tally.by_code(),
                        "faults_by_kind": record.faults_by_kind,
                        "fault_codes": list(fault_codes()),
                        "fault_verbs": list(fault_verbs()),
                        "extra_fault_actions": sorted(extra_actions),
                        "extra_fault_rates": sorted(extra_rates),
                        "unused_fault_parameters": sorted(set(extra_fault_parameters(faults)) - set(extra_rates)),
                        "events": record.events,
                        "invariant_samples": record.samples,
                        "violations": record.violations,
                        "converge_seconds": record.converge_seconds,
                        "energy": [str(a) for a in agents.audits],
                        "energy_lost_joules": [[a.node, round(a.lost_joules)] for a in agents.audits],
                        "energy_allowed_joules": [
                            [a.node, round(a.allowance(AGENT_TIMINGS.report_max_interval_s + AGENT_TIMINGS.interval_s))]
                            for a in agents.audits
                        ],
                    },
                    indent=2,
                )
            )

    assert record.samples > 50
    assert record.violations == [], f"seed {SEED}: invariants broken:\n" + "\n".join(record.violations[:20])
    outcomes = view(sandbox).job_phases()
    wrong = {name: (outcomes.get(name), want) for name, want in expected.items() if outcomes.get(name) != want}
    assert wrong == {}, f"seed {SEED}: jobs that ended otherwise than expected (got, wanted): {wrong}"
    final = view(sandbox)
    replicas = {p.manifest["metadata"]["name"]: p.manifest["spec"]["replicas"] for p in plans}
    for job in final.jobs:
        name = job["metadata"]["name"]
        conds = (job.get("status") or {}).get("conditions") or []
        assert conds, f"seed {SEED}: {name} finished without a condition saying why"
        # What is left of a job belongs to its last gang only, one pod per worker: nothing was duplicated.
        members = [
            p
            for p in final.pods
            if (p["metadata"].get("labels") or {}).get(c.JOB_NAME_LABEL) == name
            and not p["metadata"].get("deletionTimestamp")
        ]
        assert len(members) <= replicas[name], f"seed {SEED}: {name} has {len(members)} pods for {replicas[name]}"
        generation = (job["metadata"].get("annotations") or {}).get(GANG_GENERATION_ANNOTATION)
        stale = {p["metadata"]["labels"].get(c.GANG_GENERATION_LABEL) for p in members} - {generation}
        assert not stale, f"seed {SEED}: {name} (gang {generation}) keeps pods of gang(s) {stale}"
    assert all(e.code == -9 for e in operator.endings if e.killed_by_test)
    if not QUIET:
        assert operator.kills() >= 5

    # Energy: a failed write, or one the API cannot take, must not drop its window (issue 14, defect 4).
    window = AGENT_TIMINGS.report_max_interval_s + AGENT_TIMINGS.interval_s
    lost = [
        f"{a} — lost {a.lost_joules / 1000:.1f} kJ, allowed {a.allowance(window) / 1000:.1f} kJ"
        for a in agents.audits
        if a.lost_joules > a.allowance(window)
    ]
    assert lost == [], f"seed {SEED}: energy lost beyond one report window:\n" + "\n".join(lost)

    # A process that ends with status 0 tells its Deployment all is well while jobs still wait (issue 14, defect 2).
    silent = [str(e) for e in operator.silent_exits() if e.code == 0 and e.work_left]
    if silent and not watch_fault_kind_added(faults):
        pytest.xfail(
            f"seed {SEED}: the operator exited 0 after watch faults / CRD loss ({silent}); known (issue 14, defect "
            "2): this becomes a failure once the sandbox gains its watch/CRD fault kind with the operator's fix"
        )
    assert silent == [], f"seed {SEED}: the operator exited 0 while work was left: {silent}"
