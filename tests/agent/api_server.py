"""A small Kubernetes API server for the agent's tests: NodeTelemetry create/status patch, pod and node reads,
bearer-token checks, and an outage switch. It records every request with the test's (fake) clock, so tests
count write attempts and their spacing without sleeping."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TELEMETRY = "/apis/powertrain.dev/v1alpha1/nodetelemetries"


@dataclass
class Request:
    at: float
    method: str
    path: str
    query: dict[str, list[str]]
    status: int


@dataclass
class ApiState:
    clock: Callable[[], float]
    token: str = "token-a"
    down: bool = False
    fail_next: int = 0
    """Answer this many more requests with a 500, as one transient fault each."""
    telemetry: dict[str, dict[str, Any]] = field(default_factory=dict)
    statuses: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def patches(self, since: float = float("-inf"), until: float = float("inf")) -> list[Request]:
        """Status patches (the write attempts), one per report, in the window [since, until)."""
        return [r for r in self.requests if r.method == "PATCH" and since <= r.at < until]


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


def _handler(state: ApiState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _answer(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            code, answer = self._route(method, url.path, query, body)
            with state.lock:
                state.requests.append(Request(state.clock(), method, url.path, query, code))
            if "watch" in query and code == 200:
                time.sleep(0.2)  # an idle watch that ends: the client lists again
                answer = {}
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._answer(code, answer)

        def _route(
            self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]
        ) -> tuple[int, dict[str, Any]]:
            if state.down:
                return 503, _status(503, "ServiceUnavailable", "the API server is down")
            if state.fail_next > 0:
                state.fail_next -= 1
                return 500, _status(500, "InternalError", "a transient fault")
            if self.headers.get("Authorization", "").lower() != f"bearer {state.token}":
                return 401, _status(401, "Unauthorized", "Unauthorized")
            with state.lock:
                if path == TELEMETRY and method == "POST":
                    name = body["metadata"]["name"]
                    if name in state.telemetry:
                        return 409, _status(409, "AlreadyExists", f"{name} exists")
                    state.telemetry[name] = body
                    return 201, body
                if path.startswith(TELEMETRY + "/") and path.endswith("/status") and method == "PATCH":
                    name = path.split("/")[-2]
                    if name not in state.telemetry:
                        return 404, _status(404, "NotFound", f"{name} not found")
                    state.telemetry[name]["status"] = body["status"]
                    state.statuses.append((state.clock(), body["status"]))
                    return 200, state.telemetry[name]
                if path.startswith("/api/v1/nodes/") and method == "GET":
                    node = state.nodes.get(path.split("/")[-1])
                    return (200, node) if node else (404, _status(404, "NotFound", "no such node"))
                if path in ("/api/v1/pods", TELEMETRY) and method == "GET":
                    return 200, {"kind": "List", "metadata": {"resourceVersion": "1"}, "items": []}
            return 404, _status(404, "NotFound", f"{method} {path} is not served here")

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

    return Handler


@contextmanager
def api_server(clock: Callable[[], float]) -> Iterator[tuple[ApiState, str]]:
    state = ApiState(clock)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def write_kubeconfig(path: Path, url: str, token: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": url}}],
        "users": [{"name": "agent", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "agent"}}],
        "current-context": "test",
    }
    # Write then rename, as a secret or projected-token update does: a reader never sees half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config))
    tmp.replace(path)
    return path
