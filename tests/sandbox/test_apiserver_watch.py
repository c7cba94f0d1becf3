"""WATCH with the real `kubernetes` client's Watch helper.

Follows the Kubernetes API docs: "API Concepts" → "Efficient detection of changes" (watch from a
resourceVersion, 410 Gone when it is too old), "Watch bookmarks", and the `timeoutSeconds` query parameter;
"Labels and Selectors" (a watch with a selector sees an object leave the selection as DELETED).
"""

from __future__ import annotations

import logging
import threading

import pytest
from apiserver_helpers import ServerThread, write_kubeconfig
from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.config import new_client_from_config

from powertrain.sandbox.testing import wait_for


def _events(api: k8s.ApiClient, ns: str, **kw: object) -> list[tuple[str, str, str]]:
    w = watch.Watch()
    out = []
    for ev in w.stream(k8s.CoreV1Api(api).list_namespaced_config_map, ns, **kw):
        out.append((ev["type"], ev["object"].metadata.name, ev["object"].metadata.resource_version))
    return out


def test_watch_resumes_from_resource_version(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
    core.patch_namespaced_config_map("a", ns, {"data": {"x": "1"}})
    core.delete_namespaced_config_map("a", ns)
    seen = _events(api, ns, resource_version=start, timeout_seconds=1)
    assert [(t, n) for t, n, _ in seen] == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    rvs = [int(rv) for _, _, rv in seen]
    assert rvs == sorted(rvs)
    # From the middle: only what happened after.
    later = _events(api, ns, resource_version=str(rvs[0]), timeout_seconds=1)
    assert [t for t, _, _ in later] == ["MODIFIED", "DELETED"]


def test_watch_without_resource_version_starts_with_current_state(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "x"}})
    assert [(t, n) for t, n, _ in _events(api, ns, timeout_seconds=1)] == [("ADDED", "x")]


def test_live_events_arrive_and_selectors_translate_edges(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "m", "labels": {"role": "worker"}}})
    seen: list[tuple[str, str]] = []
    ready = threading.Event()

    def run() -> None:
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, ns, label_selector="role=worker", timeout_seconds=30):
            seen.append((ev["type"], ev["object"].metadata.name))
            ready.set()
            if len(seen) == 3:
                w.stop()

    t = threading.Thread(target=run)
    t.start()
    assert ready.wait(10)
    core.patch_namespaced_config_map("m", ns, {"metadata": {"labels": {"role": "master"}}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "other", "labels": {"role": "none"}}})
    core.patch_namespaced_config_map("m", ns, {"metadata": {"labels": {"role": "worker"}}})
    t.join(15)
    assert seen == [("ADDED", "m"), ("DELETED", "m"), ("ADDED", "m")]


def test_too_old_resource_version_is_410_gone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    st = ServerThread(watch_history=5)
    st.start()
    try:
        api = new_client_from_config(config_file=str(write_kubeconfig(tmp_path / "config", st.server)))
        core = k8s.CoreV1Api(api)
        start = core.list_namespaced_config_map("default").metadata.resource_version
        for i in range(10):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        with pytest.raises(k8s.ApiException) as err:
            _events(api, "default", resource_version=start, timeout_seconds=1)
        assert err.value.status == 410
        api.close()
    finally:
        st.stop()


def test_bookmarks_carry_the_current_resource_version(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    resp = core.list_namespaced_config_map(
        ns, watch=True, allow_watch_bookmarks=True, resource_version=rv, timeout_seconds=1, _preload_content=False
    )
    lines = [line for line in resp.read().decode().splitlines() if line]
    assert lines
    import json

    events = [json.loads(line) for line in lines]
    assert {e["type"] for e in events} == {"BOOKMARK"}
    assert int(events[-1]["object"]["metadata"]["resourceVersion"]) >= int(rv)


def test_dropped_watches_end_and_clients_resume(sandbox, api: k8s.ApiClient, ns: str) -> None:  # type: ignore[no-untyped-def]
    core = k8s.CoreV1Api(api)
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    done = threading.Event()

    def run() -> None:
        resp = core.list_namespaced_config_map(
            ns, watch=True, resource_version=rv, timeout_seconds=30, _preload_content=False
        )
        resp.read()
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    for _ in range(100):
        if sandbox.run(lambda: len(sandbox.server.store.all_watchers())) > 0:
            break
        threading.Event().wait(0.05)
    assert sandbox.run(sandbox.server.faults.drop_watches) >= 1
    assert done.wait(10)


def test_per_node_watch_sees_its_pods_only(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    for node in ("a", "b"):
        core.create_node({"metadata": {"name": f"{ns}-{node}"}})
    start = core.list_namespaced_pod(ns).metadata.resource_version
    core.create_namespaced_pod(ns, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
    core.create_namespaced_pod(
        ns, {"metadata": {"name": "q"}, "spec": {"containers": [{"name": "c", "image": "i"}], "nodeName": f"{ns}-b"}}
    )
    # The server answers a Status, as Kubernetes does, which this client cannot read as a Binding.
    core.create_namespaced_pod_binding(
        "p", ns, {"metadata": {"name": "p"}, "target": {"kind": "Node", "name": f"{ns}-a"}}, _preload_content=False
    )
    core.delete_namespaced_pod("p", ns, grace_period_seconds=0)
    w = watch.Watch()
    seen = [
        (ev["type"], ev["object"].metadata.name)
        for ev in w.stream(
            core.list_pod_for_all_namespaces,
            field_selector=f"spec.nodeName={ns}-a",
            resource_version=start,
            timeout_seconds=1,
        )
    ]
    # Binding makes the pod appear on the node's watch as ADDED, as with a real API server.
    assert seen == [("ADDED", "p"), ("DELETED", "p")]


def test_send_initial_events_ends_with_a_marked_bookmark(api: k8s.ApiClient, ns: str) -> None:
    import json

    core = k8s.CoreV1Api(api)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "one"}})
    resp = core.list_namespaced_config_map(
        ns,
        watch=True,
        send_initial_events=True,
        allow_watch_bookmarks=True,
        resource_version_match="NotOlderThan",
        timeout_seconds=1,
        _preload_content=False,
    )
    events = [json.loads(line) for line in resp.read().decode().splitlines() if line]
    assert events[0]["type"] == "ADDED"
    assert events[0]["object"]["metadata"]["name"] == "one"
    marker = events[1]
    assert marker["type"] == "BOOKMARK"
    assert marker["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_a_watcher_that_falls_behind_is_closed_and_can_resume(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    st = ServerThread(watch_queue_size=5)
    st.start()
    try:
        api = new_client_from_config(config_file=str(write_kubeconfig(tmp_path / "config", st.server)))
        core = k8s.CoreV1Api(api)
        rv = core.list_namespaced_config_map("default").metadata.resource_version
        resp = core.list_namespaced_config_map(
            "default", watch=True, resource_version=rv, timeout_seconds=60, _preload_content=False
        )
        registry = st.server.registry
        for _ in range(200):  # wait until the watch is registered, then write faster than it can be served
            if st.run(lambda: len(st.server.store.all_watchers())):
                break
            threading.Event().wait(0.02)
        st.run(
            lambda: [
                registry.create(registry.types["configmaps"], "v1", "default", {"metadata": {"name": f"c{i}"}})
                for i in range(50)
            ]
        )
        seen = [json.loads(line) for line in resp.read().decode().splitlines() if line]  # ends: the server closed it
        assert len(seen) < 50
        last = seen[-1]["object"]["metadata"]["resourceVersion"] if seen else rv
        rest = _events(api, "default", resource_version=last, timeout_seconds=1)
        assert len(seen) + len(rest) == 50  # nothing lost: resuming from the last event delivers the others
        api.close()
    finally:
        st.stop()


def test_a_client_that_hangs_up_is_a_quiet_expected_event(
    tmp_path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import socket
    import ssl

    from aiohttp import web_request
    from apiserver_helpers import TOKEN, http

    st = ServerThread(bookmark_interval=0.01)
    st.start()
    caplog.set_level(logging.DEBUG)
    try:
        host, port = st.server.url.removeprefix("https://").split(":")
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        for _ in range(3):
            raw = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=10))
            raw.sendall(
                f"GET /api/v1/configmaps?watch=1&allowWatchBookmarks=true HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
            )
            assert raw.recv(12) == b"HTTP/1.1 200"
            raw.close()  # mid-stream, while bookmarks and events are still being written to it
        registry = st.server.registry
        st.run(
            lambda: [
                registry.create(registry.types["configmaps"], "v1", "default", {"metadata": {"name": f"c{i}"}})
                for i in range(20)
            ]
        )
        wait_for(lambda: not st.run(st.server.store.all_watchers), what="the server to drop the hung-up watches")
        # A client gone while its request body is read (the same ConnectionError, from the other direction).
        monkeypatch.setattr(web_request.BaseRequest, "read", _connection_lost)
        http(
            f"{st.server.url}/api/v1/namespaces/default/configmaps",
            method="POST",
            body={"metadata": {"name": "x"}},
            raw=True,
        )
        monkeypatch.undo()
        assert http(f"{st.server.url}/api/v1/namespaces/default/configmaps")[0] == 200  # still serving
    finally:
        st.stop()
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not loud, [(r.name, r.getMessage()) for r in loud]


async def _connection_lost(self: object) -> bytes:
    raise ConnectionResetError("Connection lost")
