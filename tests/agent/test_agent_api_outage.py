"""The agent's reporting path through an API outage and a credential rotation, against a real HTTP API server:
no energy is lost, failed writes back off, the write budget holds, and a rotated token does not stop reports."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_testing import FakeClock
from api_server import ApiState, api_server, write_kubeconfig

from powertrain.api.telemetry import NodeTelemetryStatus
from powertrain.sandbox.tls import self_signed
from powertrain_agent.agent import Agent, AgentConfig
from powertrain_agent.cli import start_watches
from powertrain_agent.collectors.sim import SimCollector
from powertrain_agent.kube import KubeClient, load_client
from powertrain_agent.readings import PodInfo
from powertrain_agent.reporter import ReportPolicy, StatusWriter

NODE = "node-1"
POD = PodInfo("uid-1", "ml", "llm-worker-0", "llm", 1, "Running", {})
MIN_INTERVAL = 20.0


class Harness:
    """One agent on simulated GPUs, driven second by second with a fake clock, writing to the test server."""

    def __init__(self, clock: FakeClock, api: ApiState, url: str, tmp_path: Path) -> None:
        self.clock = clock
        self.api = api
        self.url = url
        self.kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url, api.token)
        self.kube = KubeClient(load_client(str(self.kubeconfig)))
        self.sim = SimCollector(2, seed=NODE, clock=clock)
        self.sim.open()
        config = AgentConfig(node=NODE, report_jitter_s=0, proc_root=tmp_path, sys_root=tmp_path)
        self.agent = Agent(config, self.sim, StatusWriter(self.kube, NODE), clock=clock)
        self.agent.policy.rng = random.Random(14)
        self.agent.set_pods({POD.uid: POD})
        self.agent.step()
        self.agent.slow_step()

    def rotate(self, token: str) -> None:
        write_kubeconfig(self.kubeconfig, self.url, token)

    def run(self, seconds: int) -> None:
        for _ in range(seconds):
            self.clock.advance(1)
            self.agent.step()
            if int(self.clock.t) % 5 == 0:  # the slow cadence: the energy counter is read every 5 s
                self.agent.slow_step()
            self.agent.control_step()

    def draw_watts(self) -> float:
        return sum(g.draw_watts() for g in self.sim.fake.gpus)


@pytest.fixture
def harness(clock: FakeClock, tmp_path: Path) -> Iterator[Harness]:
    with api_server(clock) as (api, url):
        h = Harness(clock, api, url, tmp_path)
        yield h
        h.agent.stop_event.set()


def attempt_times(api: ApiState, since: float = float("-inf"), until: float = float("inf")) -> list[float]:
    """When the agent tried to write (a write that had to create the object first is one attempt)."""
    return sorted({r.at for r in api.patches(since, until)})


def test_an_api_outage_loses_no_energy_and_retries_back_off_within_the_write_budget(harness: Harness) -> None:
    api, clock = harness.api, harness.clock
    harness.agent.control_step()  # the first report opens the accounting
    assert len(api.statuses) == 1
    start = clock.t
    harness.run(41)
    outage_start = clock.t
    api.down = True
    harness.run(120)
    outage_end = clock.t
    api.down = False
    harness.run(200)

    reports = [NodeTelemetryStatus.model_validate(s) for _, s in api.statuses]
    last = api.statuses[-1][0]
    reported = sum(g.energy_joules or 0.0 for r in reports[1:] for g in r.gpus)
    integrated = harness.draw_watts() * (last - start)  # the simulated GPUs draw a constant power
    one_window = harness.draw_watts() * harness.agent.config.slow_interval_s
    assert abs(reported - integrated) <= one_window, (reported, integrated)
    # The report after the outage covers the whole span it could not write.
    covering = [r for t, r in zip((t for t, _ in api.statuses), reports, strict=True) if t >= outage_end]
    assert covering[0].window_seconds > outage_end - outage_start

    during = attempt_times(api, outage_start, outage_end)
    assert 2 <= len(during) <= 4  # every second before the fix: 120 attempts
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert gaps[-1] > gaps[0]  # the waits grow
    every = attempt_times(api)
    assert all(b - a >= MIN_INTERVAL for a, b in itertools.pairwise(every))  # failed or not
    after = attempt_times(api, outage_end)
    assert after[0] - outage_end <= ReportPolicy().backoff_max_s  # reporting resumes
    assert len(after) <= 200 / MIN_INTERVAL + 1


def test_backoff_is_jittered_and_capped() -> None:
    delays = {}
    for seed in (1, 2):
        p = ReportPolicy(min_interval_s=20, backoff_max_s=120, rng=random.Random(seed))
        delays[seed] = [p.failed(0) for _ in range(8)]
        assert all(20 <= d <= 120 for d in delays[seed])
        assert p.decide(delays[seed][-1] - 1, {}) is None
        assert p.decide(delays[seed][-1], {}) == "retry 8"
        p.written(200, {})
        assert p.failures == 0
    assert delays[1] != delays[2]  # agents that failed together do not retry together
    assert max(delays[1][4:]) > 60  # the waits grew to the cap's range


def test_a_rotated_token_is_picked_up_without_a_restart(harness: Harness) -> None:
    api = harness.api
    harness.agent.control_step()
    assert len(api.statuses) == 1
    api.token = "token-b"  # the old token is now refused
    harness.run(61)  # the heartbeat falls due
    assert len(api.statuses) == 1
    assert api.requests[-1].status == 401
    harness.rotate("token-b")
    harness.run(120)
    assert len(api.statuses) >= 2
    assert harness.kube.source is not None
    assert harness.kube.source.reloads == 1


def test_the_pod_watch_asks_only_for_this_nodes_pods_with_current_credentials(harness: Harness) -> None:
    api = harness.api
    api.token = "token-b"
    harness.rotate("token-b")
    start_watches(harness.agent, harness.kube, NODE)
    deadline = time.monotonic() + 30
    lists: list[dict[str, list[str]]] = []
    while time.monotonic() < deadline and not lists:
        lists = [r.query for r in api.requests if r.path == "/api/v1/pods" and r.status == 200]
        time.sleep(0.05)
    harness.agent.stop_event.set()
    assert lists, [(r.path, r.status) for r in api.requests]
    assert all(q.get("fieldSelector") == [f"spec.nodeName={NODE}"] for q in lists)


def test_an_in_cluster_token_is_reread_as_soon_as_the_kubelet_rotates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from powertrain_agent import kubehttp

    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("first")
    ca.write_bytes(self_signed()[0])
    monkeypatch.setattr(kubehttp, "SERVICE_TOKEN_FILENAME", token)
    monkeypatch.setattr(kubehttp, "SERVICE_CERT_FILENAME", ca)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    source = load_client()
    assert source.files == [token]
    assert source.current().conn.host == "https://10.96.0.1:443"
    assert source.current().token == "first"
    rotated = tmp_path / "token.new"
    rotated.write_text("second")
    rotated.replace(token)  # the kubelet swaps the projected token atomically
    # At once, not after a client library's own refresh period.
    assert source.current().token == "second"
    assert source.reloads == 1


def test_an_agent_stopped_while_a_retry_waits_writes_what_the_outage_held_back(harness: Harness) -> None:
    """A rollout (SIGTERM) right after an outage: the API answers again but the backed-off retry is not due yet.
    The stopping agent writes the carried-over span instead of dropping it (everything since the outage began)."""
    api, clock, agent = harness.api, harness.clock, harness.agent
    agent.control_step()  # the first report opens the accounting
    start = clock.t
    harness.run(41)
    api.down = True
    harness.run(150)  # long enough for the back-off to grow past a minute
    api.down = False
    assert agent.policy.retry_at is not None
    assert agent.policy.retry_at > clock.t + 1  # the retry is still far off
    harness.run(1)
    writes_before = len(api.statuses)

    agent.shutdown()

    assert len(api.statuses) == writes_before + 1
    reports = [NodeTelemetryStatus.model_validate(s) for _, s in api.statuses]
    reported = sum(g.energy_joules or 0.0 for r in reports[1:] for g in r.gpus)
    integrated = harness.draw_watts() * (clock.t - start)
    one_window = harness.draw_watts() * agent.config.slow_interval_s
    assert abs(reported - integrated) <= one_window, (reported, integrated)


def test_a_stopping_agent_that_cannot_reach_the_api_still_restores_the_power_limits(harness: Harness) -> None:
    api, agent = harness.api, harness.agent
    agent.set_power_requests({harness.sim.fake.gpus[0].uuid: 400.0})
    agent.control_step()
    assert harness.sim.fake.gpus[0].limit_mw == 400_000
    api.down = True

    agent.shutdown()  # the final write fails; nothing raises

    assert harness.sim.fake.gpus[0].limit_mw == harness.sim.fake.gpus[0].spec.default_limit_mw


def test_one_transient_fault_does_not_drop_the_final_report(harness: Harness) -> None:
    # Seen in the chaos suite: an agent restarted right after an outage met one 429 on its final write and gave
    # up, dropping everything the outage had held back.
    api, agent = harness.api, harness.agent
    writes_before = len(api.statuses)
    api.fail_next = 1

    agent.shutdown()

    assert len(api.statuses) == writes_before + 1  # the second try landed
