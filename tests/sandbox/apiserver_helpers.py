"""Helpers shared by the API server tests: a server on a background loop, kubeconfig writing, raw HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import yaml

from powertrain.sandbox.apiserver import ApiServer

TOKEN = "sandbox-test-token"


class ServerThread:
    """Runs an ApiServer on its own event loop in a daemon thread, so synchronous clients can call it."""

    def __init__(self, **kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = ApiServer(token=TOKEN, **kwargs)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self.call(self.server.start())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def run(self, fn: Callable[[], Any]) -> Any:
        """Run a plain function on the server's loop (the store is not thread-safe)."""
        fut: Future[Any] = Future()

        def wrapper() -> None:
            try:
                fut.set_result(fn())
            except Exception as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(wrapper)
        return fut.result(timeout=30)

    def stop(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


def write_kubeconfig(path: Path, server: ApiServer, namespace: str = "default") -> Path:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "sandbox",
                "cluster": {
                    "server": server.url,
                    "certificate-authority-data": base64.b64encode(server.ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": "sandbox", "user": {"token": TOKEN}}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "sandbox", "namespace": namespace}}],
        "current-context": "sandbox",
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def http(
    url: str,
    *,
    method: str = "GET",
    token: str | None = TOKEN,
    body: Any = None,
    content_type: str = "application/json",
    raw: bool = False,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One HTTP request without a client library (the server's certificate is not verified)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, method=method, data=data)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", content_type)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            payload = resp.read()
            return resp.status, payload if raw else json.loads(payload)
    except urllib.error.HTTPError as err:
        payload = err.read()
        return err.code, payload if raw else json.loads(payload)


def unverified_get(url: str, token: str | None = None, raw: bool = False) -> tuple[int, Any]:
    return http(url, token=token, raw=raw)


PRESERVE_UNKNOWN: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def crd(
    group: str,
    plural: str,
    kind: str,
    *,
    scope: str = "Namespaced",
    schema: dict[str, Any] = PRESERVE_UNKNOWN,
    singular: str | None = None,
    versions: tuple[str, ...] = ("v1",),
    status_subresource: bool = False,
) -> dict[str, Any]:
    """A CustomResourceDefinition body; every version is served with `schema`, the last one is stored."""
    names = {"plural": plural, "kind": kind} | ({"singular": singular} if singular else {})
    extra: dict[str, Any] = {"schema": {"openAPIV3Schema": schema}}
    if status_subresource:
        extra["subresources"] = {"status": {}}
    return {
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": names,
            "versions": [
                {
                    "name": v,
                    "served": True,
                    "storage": v == versions[-1],
                    **extra,
                    "schema": {"openAPIV3Schema": schema},
                }
                for v in versions
            ],
        },
    }
