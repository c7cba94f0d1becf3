"""The chaos suite's own judges, checked on made-up cases: a broken invariant, a new fault kind, an error line
or a cut connection must each be noticed, or the chaos run could pass without seeing anything."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Any

import pytest

from chaos_support import (
    ClusterView,
    CuttableProxy,
    FaultTally,
    extra_fault_parameters,
    extra_rate_parameters,
    invariant_violations,
    log_errors,
    transient_watch_actions,
    watch_fault_kind_added,
)
from powertrain.api import constants as c
from powertrain.sandbox.errors import ApiError
from powertrain.sandbox.faults import Faults


def node(name: str, gpus: int = 8) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"allocatable": {c.GPU_RESOURCE: str(gpus)}}}


def job(name: str, uid: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": uid}}


def pod(
    name: str,
    job_name: str,
    owner: str,
    *,
    gpus: int = 4,
    node_name: str = "n1",
    gen: str = "1",
    phase: str = "Running",
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {c.JOB_NAME_LABEL: job_name, c.GANG_GENERATION_LABEL: gen},
            "ownerReferences": [{"uid": owner}],
        },
        "spec": {"nodeName": node_name, "containers": [{"resources": {"limits": {c.GPU_RESOURCE: str(gpus)}}}]},
        "status": {"phase": phase},
    }


def test_a_healthy_cluster_breaks_no_invariant() -> None:
    state = ClusterView(
        pods=[pod("a-0", "a", "u1"), pod("a-1", "a", "u1"), pod("b-0", "b", "u2", gpus=8, phase="Succeeded")],
        jobs=[job("a", "u1"), job("b", "u2")],
        nodes=[node("n1")],
    )
    assert invariant_violations(state) == []


def test_over_allocation_two_gangs_and_orphans_are_each_reported() -> None:
    state = ClusterView(
        pods=[
            pod("a-0", "a", "u1", gpus=6),
            pod("a-1", "a", "u1", gpus=4, gen="2"),  # a second gang of job a while the first still runs
            pod("ghost-0", "ghost", "gone", gpus=0),  # its TrainingJob no longer exists
        ],
        jobs=[job("a", "u1")],
        nodes=[node("n1")],
    )
    problems = invariant_violations(state)
    assert any(p.startswith("node n1: 10 GPUs") for p in problems), problems
    assert any("job a: pods of gang generations ['1', '2']" in p for p in problems), problems
    assert any("orphan pod ghost-0" in p for p in problems), problems


def test_an_old_gang_on_its_way_out_is_not_a_second_gang() -> None:
    leaving = pod("a-0", "a", "u1", gen="1")
    leaving["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    state = ClusterView(pods=[leaving, pod("a-1", "a", "u1", gen="2")], jobs=[job("a", "u1")], nodes=[node("n1")])
    assert invariant_violations(state) == []


def test_the_baseline_fault_kinds_are_known_and_a_new_watch_kind_is_noticed_and_fired() -> None:
    class Baseline:  # what the sandbox offered when the suite was written
        def configure(
            self,
            *,
            error_rate: float = 0.0,
            codes: tuple[int, ...] = (500,),
            retry_after_seconds: int = 1,
            verbs: tuple[str, ...] = (),
            resources: tuple[str, ...] = (),
            latency: float = 0.0,
            seed: int | None = None,
        ) -> None:
            pass

        def drop_watches(self) -> int:
            return 0

    assert not watch_fault_kind_added(Baseline())
    assert extra_rate_parameters(Baseline()) == []
    assert transient_watch_actions(Baseline()) == {}

    @dataclass
    class NewerFaults(Faults):
        def configure(self, *, watch_conflict_rate: float = 0.0, **kwargs: Any) -> None:
            super().configure(**kwargs)

        def conflict_watches(self, count: int, resources: tuple[str, ...] = ()) -> int:
            self.fired = count
            return count

        def delete_crd(self) -> None:
            raise AssertionError("a permanent action must not be fired by the chaos run")

    newer = NewerFaults()
    assert watch_fault_kind_added(newer)
    assert extra_fault_parameters(newer) == ["watch_conflict_rate"]
    assert extra_rate_parameters(newer) == ["watch_conflict_rate"]
    actions = transient_watch_actions(newer)
    assert sorted(actions) == ["conflict_watches"]
    assert actions["conflict_watches"]() == 3  # fired with a count, the only argument it needs


def test_faults_are_tallied_by_code_and_verb() -> None:
    faults = Faults()
    tally = FaultTally(faults)
    faults.configure(error_rate=1.0, codes=(409,), seed=1)
    with pytest.raises(ApiError):
        faults.maybe_fail("watch", "pods", "")
    faults.clear()
    faults.maybe_fail("watch", "pods", "")
    assert tally.by_kind == {"409 on watch": 1}
    assert tally.by_code() == {"409": 1}


def test_error_lines_and_tracebacks_are_found_in_json_and_plain_logs() -> None:
    text = "\n".join(
        [
            '{"message": "handler ok", "severity": "info"}',
            '{"message": "scheduling pass failed; retrying", "exc_info": "Traceback ...", "severity": "error"}',
            "Traceback (most recent call last):",
            "INFO all good",
        ]
    )
    found = log_errors(text)
    assert len(found) == 2
    assert "scheduling pass failed" in found[0]


def test_a_cut_proxy_closes_open_connections_and_refuses_new_ones_until_restored() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def echo() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(
                target=lambda c=conn: [c.sendall(d) for d in iter(lambda: c.recv(1024), b"")], daemon=True
            ).start()

    threading.Thread(target=echo, daemon=True).start()
    proxy = CuttableProxy("127.0.0.1", port)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
            client.sendall(b"ping")
            assert client.recv(16) == b"ping"
            proxy.cut()
            assert client.recv(16) == b"", "an open connection survived the cut"
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
            assert client.recv(16) == b"", "a new connection got through while cut"
        proxy.restore()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
            client.sendall(b"pong")
            assert client.recv(16) == b"pong"
    finally:
        proxy.close()
        server.close()
