"""Sandbox-only fault injection (see powertrain.sandbox.faults): error rates by code, verb and resource,
Retry-After on 429, added latency, dropped watches — in process and over HTTP for out-of-process tests.

The injected errors follow the Kubernetes API docs' "Responses" section (Status objects; 429 TooManyRequests
with Retry-After, as API Priority and Fairness answers).
"""

from __future__ import annotations

import threading
import time

import pytest
from apiserver_helpers import http
from kubernetes import client as k8s


@pytest.fixture(autouse=True)
def _no_faults_after(sandbox):  # type: ignore[no-untyped-def]
    yield
    sandbox.run(sandbox.server.faults.clear)


def test_429_with_retry_after_only_for_chosen_verbs_and_resources(sandbox, api: k8s.ApiClient, ns: str) -> None:  # type: ignore[no-untyped-def]
    status, cfg = http(
        f"{sandbox.server.url}/sandbox/v1/faults",
        method="POST",
        body={
            "errorRate": 1.0,
            "codes": [429],
            "retryAfterSeconds": 3,
            "verbs": ["create"],
            "resources": ["configmaps"],
        },
    )
    assert status == 200
    assert cfg["codes"] == [429]
    core = k8s.CoreV1Api(api)
    with pytest.raises(k8s.ApiException) as err:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "x"}})
    assert err.value.status == 429
    assert err.value.headers["Retry-After"] == "3"
    core.list_namespaced_config_map(ns)  # other verbs pass
    core.create_namespaced_secret(ns, {"metadata": {"name": "s"}})  # other resources pass
    http(f"{sandbox.server.url}/sandbox/v1/faults", method="DELETE")
    core.create_namespaced_config_map(ns, {"metadata": {"name": "x"}})


def test_error_rate_is_a_fraction_of_requests(sandbox, api: k8s.ApiClient, ns: str) -> None:  # type: ignore[no-untyped-def]
    sandbox.run(lambda: sandbox.server.faults.configure(error_rate=0.5, codes=(500, 409), verbs={"get"}, seed=1))
    core = k8s.CoreV1Api(api)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "y"}})
    codes = []
    for _ in range(60):
        try:
            core.read_namespaced_config_map("y", ns)
            codes.append(200)
        except k8s.ApiException as exc:
            codes.append(exc.status)
    assert set(codes) == {200, 500, 409}
    assert 10 < codes.count(200) < 50


def test_bad_fault_configuration_is_refused_and_changes_nothing(sandbox) -> None:  # type: ignore[no-untyped-def]
    status, body = http(f"{sandbox.server.url}/sandbox/v1/faults", method="POST", body={"errorRate": 2})
    assert status == 400
    assert "errorRate" in body["message"]
    status, body = http(f"{sandbox.server.url}/sandbox/v1/faults", method="POST", body={"codes": [418]})
    assert status == 400
    assert "418" in body["message"]
    _, current = http(f"{sandbox.server.url}/sandbox/v1/faults")
    assert current["errorRate"] == 0
    status, _ = http(f"{sandbox.server.url}/sandbox/v1/faults", token=None)
    assert status == 401


def test_drop_watches_over_http_ends_open_watches(sandbox, api: k8s.ApiClient, ns: str) -> None:  # type: ignore[no-untyped-def]
    core = k8s.CoreV1Api(api)
    ended = threading.Event()

    def watch() -> None:
        core.list_namespaced_config_map(ns, watch=True, timeout_seconds=60, _preload_content=False).read()
        ended.set()

    threading.Thread(target=watch, daemon=True).start()
    for _ in range(200):
        if sandbox.run(lambda: len(sandbox.server.store.all_watchers())):
            break
        time.sleep(0.02)
    status, body = http(f"{sandbox.server.url}/sandbox/v1/faults/drop-watches", method="POST")
    assert status == 200
    assert body["dropped"] >= 1
    assert ended.wait(10)


def test_added_latency_delays_requests(sandbox, api: k8s.ApiClient, ns: str) -> None:  # type: ignore[no-untyped-def]
    http(f"{sandbox.server.url}/sandbox/v1/faults", method="POST", body={"latencySeconds": 0.3})
    start = time.monotonic()
    k8s.CoreV1Api(api).list_namespaced_config_map(ns)
    assert time.monotonic() - start >= 0.3  # a lower bound: the server slept before answering
    _, cfg = http(f"{sandbox.server.url}/sandbox/v1/faults")
    assert cfg["latencySeconds"] == 0.3


def test_watch_conflicts_close_open_watches_then_answer_409_a_counted_number_of_times(  # type: ignore[no-untyped-def]
    sandbox, api: k8s.ApiClient, ns: str
) -> None:
    core = k8s.CoreV1Api(api)
    ended = threading.Event()

    def watch() -> None:
        core.list_namespaced_config_map(ns, watch=True, timeout_seconds=60, _preload_content=False).read()
        ended.set()

    threading.Thread(target=watch, daemon=True).start()
    for _ in range(200):
        if sandbox.run(lambda: len(sandbox.server.store.all_watchers())):
            break
        time.sleep(0.02)
    status, body = http(
        f"{sandbox.server.url}/sandbox/v1/faults/watch-conflicts",
        method="POST",
        body={"count": 2, "resources": ["configmaps"]},
    )
    assert status == 200
    assert body["dropped"] >= 1
    assert body["watchConflicts"] == 2
    assert ended.wait(10)
    core.list_namespaced_secret(ns, watch=True, timeout_seconds=1, _preload_content=False).read()  # others watch
    codes = []
    for _ in range(3):
        try:
            core.list_namespaced_config_map(ns, watch=True, timeout_seconds=1, _preload_content=False).read()
            codes.append(200)
        except k8s.ApiException as exc:
            codes.append(exc.status)
            assert exc.reason == "Conflict" or "Conflict" in str(exc.body)
    assert codes == [409, 409, 200]
    core.list_namespaced_config_map(ns)  # lists are never affected


def test_bad_watch_conflicts_are_refused(sandbox) -> None:  # type: ignore[no-untyped-def]
    status, body = http(f"{sandbox.server.url}/sandbox/v1/faults/watch-conflicts", method="POST", body={"count": -1})
    assert status == 400
    assert "count" in body["message"]
    status, body = http(f"{sandbox.server.url}/sandbox/v1/faults/watch-conflicts", method="POST", body={"cnt": 1})
    assert status == 400
