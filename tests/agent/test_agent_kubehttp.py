"""The agent's own Kubernetes client reads kubeconfigs the way kubectl does: client certificates over TLS,
paths relative to the kubeconfig, exec credential plugins (run again when their credential expires), and a
clear refusal of what it cannot do. Run against real servers: a TLS one that demands a client certificate, and
the agent tests' API server."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from agent_testing import FakeClock
from api_server import api_server

from powertrain.api.telemetry import NodeTelemetryStatus
from powertrain.sandbox.tls import self_signed
from powertrain_agent.kube import KubeClient, KubeUnavailable, load_client
from powertrain_agent.kubehttp import ApiError
from powertrain_agent.reporter import StatusWriter


def kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def mtls_server(tmp_path: Path) -> Iterator[tuple[str, bytes, bytes, bytes]]:
    with tls_server(tmp_path, ("127.0.0.1",)) as server:
        yield server


@contextmanager
def tls_server(tmp_path: Path, names: tuple[str, ...]) -> Iterator[tuple[str, bytes, bytes, bytes]]:
    """An HTTPS server whose certificate names `names`, that answers only clients holding the certificate it
    trusts: (url, server CA, client cert, client key)."""
    server_cert, server_key = self_signed(names)
    client_cert, client_key = self_signed(("agent",))
    (tmp_path / "srv.crt").write_bytes(server_cert)
    (tmp_path / "srv.key").write_bytes(server_key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "srv.crt", tmp_path / "srv.key")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=client_cert.decode())

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps({"kind": "Node", "metadata": {"name": "n1", "uid": "uid-n1"}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", server_cert, client_cert, client_key
    finally:
        server.shutdown()
        server.server_close()


def test_a_client_certificate_from_the_kubeconfig_authenticates_over_tls(
    mtls_server: tuple[str, bytes, bytes, bytes], tmp_path: Path
) -> None:
    url, ca, cert, key = mtls_server
    (tmp_path / "ca.crt").write_bytes(ca)
    path = kubeconfig(
        tmp_path / "config",
        {"server": url, "certificate-authority": "ca.crt"},  # relative to the kubeconfig's directory
        {
            "client-certificate-data": base64.b64encode(cert).decode(),
            "client-key-data": base64.b64encode(key).decode(),
        },
    )
    kube = KubeClient(load_client(str(path)))
    assert kube.node_owner_reference("n1") == {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "uid-n1"}


def test_tls_server_name_checks_the_certificate_against_that_name(tmp_path: Path) -> None:
    with tls_server(tmp_path, ("apiserver.internal",)) as (url, ca, cert, key):
        cluster = {"server": url, "certificate-authority-data": base64.b64encode(ca).decode()}
        user = {
            "client-certificate-data": base64.b64encode(cert).decode(),
            "client-key-data": base64.b64encode(key).decode(),
        }
        plain = KubeClient(load_client(str(kubeconfig(tmp_path / "plain", cluster, user))))
        with pytest.raises(ApiError, match=r"127\.0\.0\.1"):  # the certificate does not name the address
            plain.node_owner_reference("n1")
        named = {**cluster, "tls-server-name": "apiserver.internal"}
        kube = KubeClient(load_client(str(kubeconfig(tmp_path / "named", named, user))))
        assert kube.node_owner_reference("n1") is not None


def test_without_the_client_certificate_the_tls_server_refuses(
    mtls_server: tuple[str, bytes, bytes, bytes], tmp_path: Path
) -> None:
    url, ca, _, _ = mtls_server
    path = kubeconfig(
        tmp_path / "config", {"server": url, "certificate-authority-data": base64.b64encode(ca).decode()}, {}
    )
    with pytest.raises(ApiError) as err:
        KubeClient(load_client(str(path))).node_owner_reference("n1")
    assert err.value.status == 0  # no answer: the handshake failed


def test_an_exec_plugins_token_is_used_and_renewed_when_it_expires(clock: FakeClock, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    plugin = tmp_path / "plugin.py"
    # Each run hands out the token in ./token and says it already expired, so every call asks again.
    plugin.write_text(
        "import json, pathlib, sys\n"
        f"runs = pathlib.Path({str(runs)!r})\n"
        "runs.write_text(runs.read_text() + 'x' if runs.exists() else 'x')\n"
        f"token = pathlib.Path({str(tmp_path / 'token')!r}).read_text()\n"
        "json.dump({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',\n"
        "           'status': {'token': token, 'expirationTimestamp': '2000-01-01T00:00:00Z'}}, sys.stdout)\n"
    )
    with api_server(clock) as (api, url):
        (tmp_path / "token").write_text(api.token)
        exec_spec = {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable, "args": [str(plugin)]}
        path = kubeconfig(tmp_path / "config", {"server": url}, {"exec": exec_spec})
        source = load_client(str(path))
        writer = StatusWriter(KubeClient(source), "node-1")
        assert writer.write(NodeTelemetryStatus(backend="sim")) == "created"
        api.token = "token-b"
        (tmp_path / "token").write_text("token-b")  # the plugin now hands out the new token
        assert writer.write(NodeTelemetryStatus(backend="sim")) == "ok"
    assert len(api.statuses) == 2
    assert source.reloads >= 2
    assert len(runs.read_text()) == source.reloads + 1


def test_a_rotated_token_file_named_by_the_kubeconfig_is_picked_up(clock: FakeClock, tmp_path: Path) -> None:
    with api_server(clock) as (api, url):
        (tmp_path / "token").write_text(api.token)
        path = kubeconfig(tmp_path / "config", {"server": url}, {"tokenFile": "token"})  # next to the kubeconfig
        source = load_client(str(path))
        writer = StatusWriter(KubeClient(source), "node-1")
        assert writer.write(NodeTelemetryStatus(backend="sim")) == "created"
        api.token = "token-b"
        (tmp_path / "token").write_text("token-b")  # the kubeconfig itself is unchanged
        assert writer.write(NodeTelemetryStatus(backend="sim")) == "ok"
    assert len(api.statuses) == 2
    assert source.reloads == 1


def test_a_failing_exec_plugin_says_which_and_why(tmp_path: Path) -> None:
    exec_spec = {"command": sys.executable, "args": ["-c", "import sys; sys.exit('no credentials for you')"]}
    path = kubeconfig(tmp_path / "config", {"server": "https://127.0.0.1:1"}, {"exec": exec_spec})
    with pytest.raises(KubeUnavailable, match=r"exec plugin .* exited 1: no credentials for you"):
        load_client(str(path))


def test_a_removed_auth_provider_is_refused_with_what_to_use_instead(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", {"server": "https://127.0.0.1:1"}, {"auth-provider": {"name": "gcp"}})
    with pytest.raises(KubeUnavailable, match=r"auth-provider 'gcp' is not supported.*exec credential plugin"):
        load_client(str(path))


def test_a_context_naming_a_missing_cluster_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {"contexts": [{"name": "x", "context": {"cluster": "gone", "user": "u"}}], "current-context": "x"}
        )
    )
    with pytest.raises(KubeUnavailable, match="context 'x' names cluster 'gone', which is not defined"):
        load_client(str(path))


def test_the_reporting_path_loads_neither_the_kubernetes_package_nor_the_cel_engine(tmp_path: Path) -> None:
    # Together ~64 MiB resident on every GPU node: the agent's memory goal (< 80 MiB) depends on this.
    config = kubeconfig(tmp_path / "config", {"server": "http://127.0.0.1:1"}, {"token": "t"})
    code = (
        "import sys\n"
        "from powertrain_agent import cli, kube, agent\n"
        f"kube.KubeClient(kube.load_client({str(config)!r}))\n"
        "from powertrain_agent.reporter import ConditionBook, build_status\n"
        "from powertrain_agent.state import Snapshot\n"
        "build_status(Snapshot('n', 'sim'), {}, {}, 1.0, {}, 0.0, 'v', ConditionBook()).to_wire()\n"
        "print(sorted(m for m in ('kubernetes', 'cel', 'aiohttp') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
