"""A small async Kubernetes REST client and a list+watch informer, for the sandbox's own controllers.

The simulated kubelet, the default scheduler and the node fault operations talk to the API server only
through this client, over HTTP, the way their real counterparts do; so they would work against any API
server. Nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final

import aiohttp

from powertrain.kubeclient import JSON_PATCH as JSON_PATCH
from powertrain.kubeclient import MERGE_PATCH as MERGE_PATCH
from powertrain.kubeclient import STRATEGIC_MERGE_PATCH as STRATEGIC_MERGE_PATCH
from powertrain.kubeclient import ApiError, JsonClient, RetryPolicy, error_from_response

log = logging.getLogger(__name__)

Obj = dict[str, Any]
EventHandler = Callable[[str, Obj], None]

# The sandbox's name for the shared error: `code` is the HTTP status, `reason` the Status reason (NotFound, …).
RestError = ApiError


def api_path(resource: str, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
    """Core/v1 path: api_path("pods", "ns", "p", "status") → /api/v1/namespaces/ns/pods/p/status."""
    path = "/api/v1"
    if namespace is not None:
        path += f"/namespaces/{namespace}"
    path += f"/{resource}"
    if name is not None:
        path += f"/{name}"
    if sub is not None:
        path += f"/{sub}"
    return path


def obj_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


# Pods the kubelet has finished with and the scheduler no longer places or counts.
TERMINAL_PHASES: Final = frozenset({"Succeeded", "Failed"})


def meta_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """metadata, or {} where a watched object lacks it or it is not a mapping."""
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def spec_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def phase_of(pod: Mapping[str, Any]) -> str:
    status = pod.get("status")
    return str(status.get("phase") or "") if isinstance(status, Mapping) else ""


class RestClient(JsonClient):
    """Bearer-token JSON client. Use as `async with RestClient(url, token) as client:`."""

    def __init__(
        self, url: str, token: str, *, ca_pem: bytes | None = None, connections: int = 64, retries: int = 10
    ) -> None:
        """`ca_pem`: the certificate(s) that sign the server's, for https URLs (default: the system's).

        `retries`: how often a request answered 429/5xx (or a broken connection) is tried again, after the
        server's Retry-After or a short exponential back-off, as client-go does; other errors raise at once.
        """
        super().__init__(
            url,
            {"Authorization": f"Bearer {token}", "Accept": "application/json"},
            retry=RetryPolicy(retries=retries, first_delay=0.05, max_delay=1.0, max_retry_after=5.0),
            ssl_context=ssl.create_default_context(cadata=ca_pem.decode()) if ca_pem else True,
            connections=connections,
            # Watch events carry whole objects; the default 64 KiB line buffer is too small for large ones.
            read_bufsize=4 * 1024 * 1024,
        )

    async def __aenter__(self) -> RestClient:
        self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Obj:
        return await self.request("GET", path, params=params)

    async def create(self, path: str, body: Obj) -> Obj:
        return await self.request("POST", path, body)

    async def replace(self, path: str, body: Obj) -> Obj:
        return await self.request("PUT", path, body)

    async def patch(
        self, path: str, body: Any, content_type: str = MERGE_PATCH, *, retry_conflicts: bool = False
    ) -> Obj:
        return await self.request("PATCH", path, body, content_type=content_type, retry_conflicts=retry_conflicts)

    async def delete(self, path: str, *, grace_seconds: int | None = None, uid: str | None = None) -> Obj:
        options: Obj = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if grace_seconds is not None:
            options["gracePeriodSeconds"] = grace_seconds
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        return await self.request("DELETE", path, options)

    async def watch(self, path: str, params: Mapping[str, str]) -> AsyncIterator[Obj]:
        """Yield watch events ({type, object}) until the server ends the stream."""
        query = {**params, "watch": "true"}
        async with self.session.get(
            self.url + path, params=query, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)
        ) as resp:
            if resp.status >= 400:
                raise error_from_response(resp.status, await resp.text(), resp.headers.get("Retry-After"))
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)


class Informer:
    """List, then watch from the list's resourceVersion; relist on 410 Gone; keep a cache by key.

    Handlers are plain functions called in event order with ("ADDED" | "MODIFIED" | "DELETED", object). On a
    relist the cache is diffed, so handlers see what changed while the watch was down, as with client-go.
    """

    def __init__(self, client: RestClient, path: str, *, timeout_seconds: int = 300) -> None:
        self.client = client
        self.path = path
        self.cache: dict[str, Obj] = {}
        self.synced = asyncio.Event()
        self._handlers: list[EventHandler] = []
        self._timeout = timeout_seconds
        self._changed = asyncio.Event()

    def add_handler(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    async def until(self, predicate: Callable[[dict[str, Obj]], bool]) -> None:
        """Return once `predicate(cache)` holds (checked after every event); wrap in asyncio.timeout to bound it."""
        while not predicate(self.cache):
            self._changed.clear()
            await self._changed.wait()

    def _emit(self, kind: str, obj: Obj) -> None:
        self._changed.set()
        for handler in self._handlers:
            try:
                handler(kind, obj)
            except Exception:  # a bug in one handler must not stop the informer for the others
                log.exception("informer handler failed on %s %s", kind, obj_key(obj))

    async def _relist(self) -> str:
        listing = await self.client.get(self.path)
        fresh = {obj_key(o): o for o in listing.get("items") or []}
        for key in [k for k in self.cache if k not in fresh]:
            self._emit("DELETED", self.cache.pop(key))
        for key, obj in fresh.items():
            # Lists omit kind/apiVersion on items; handlers never need them.
            old = self.cache.get(key)
            self.cache[key] = obj
            if old is None:
                self._emit("ADDED", obj)
            elif old.get("metadata", {}).get("resourceVersion") != obj.get("metadata", {}).get("resourceVersion"):
                self._emit("MODIFIED", obj)
        self.synced.set()
        return str((listing.get("metadata") or {}).get("resourceVersion") or "")

    async def run(self) -> None:
        """Run until cancelled; errors back off briefly and resume (or relist when the version is gone)."""
        version = ""
        while True:
            try:
                if not version:
                    version = await self._relist()
                params = {
                    "resourceVersion": version,
                    "allowWatchBookmarks": "true",
                    "timeoutSeconds": str(self._timeout),
                }
                async for event in self.client.watch(self.path, params):
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            version = ""
                            break
                        raise RestError(int(obj.get("code") or 500), str(obj.get("reason")), str(obj.get("message")))
                    if rv:
                        version = str(rv)
                    if kind == "BOOKMARK":
                        continue
                    key = obj_key(obj)
                    if kind == "DELETED":
                        self.cache.pop(key, None)
                    else:
                        self.cache[key] = obj
                    self._emit(str(kind), obj)
            except asyncio.CancelledError:
                raise
            except RestError as exc:
                if exc.code == 410:
                    version = ""
                else:
                    log.debug("watch %s failed: %s", self.path, exc)
                    await asyncio.sleep(0.2)
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                log.debug("watch %s broke: %s", self.path, exc)
                await asyncio.sleep(0.2)
