"""The operator's API client against a tiny aiohttp server: retries, Status errors, idempotent create/delete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from powertrain.controllers.kube import PODS, ApiError, ClusterConfig, KubeClient


def status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message}  # fmt: skip
    return web.json_response(body, status=code)


class FakeServer:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.busy = 0  # answer this many requests with 429 first
        self.pods: dict[str, dict[str, Any]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.requests.append((request.method, request.path, body))
        assert request.headers["Authorization"] == "Bearer sekret"
        if self.busy:
            self.busy -= 1
            return web.Response(status=429, headers={"Retry-After": "0"}, text="slow down")
        name = request.match_info.get("name")
        if request.method == "POST":
            if body["metadata"]["name"] in self.pods:
                return status(409, "AlreadyExists", f'pods "{body["metadata"]["name"]}" already exists')
            self.pods[body["metadata"]["name"]] = body
            return web.json_response(body, status=201)
        if request.method == "GET" and name:
            return web.json_response(self.pods[name]) if name in self.pods else status(404, "NotFound", "nope")
        if request.method == "DELETE":
            if name not in self.pods:
                return status(404, "NotFound", f'pods "{name}" not found')
            return web.json_response(self.pods.pop(name))
        return status(405, "MethodNotAllowed", "no")


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeServer, KubeClient]]:
    fake = FakeServer()
    app = web.Application()
    app.router.add_route("*", "/api/v1/namespaces/{ns}/pods", fake.handle)
    app.router.add_route("*", "/api/v1/namespaces/{ns}/pods/{name}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = KubeClient(ClusterConfig(host=f"http://127.0.0.1:{port}", auth_header="Bearer sekret"), retries=3)
    yield fake, client
    await client.close()
    await runner.cleanup()


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w-0"}, "spec": {"containers": []}}


async def test_too_many_requests_is_retried_until_it_succeeds(served: tuple[FakeServer, KubeClient]) -> None:
    fake, client = served
    fake.busy = 2
    created = await client.create(PODS, POD, "ns")
    assert created["metadata"]["name"] == "w-0"
    assert [m for m, _, _ in fake.requests] == ["POST", "POST", "POST"]


async def test_errors_carry_the_status_reason_and_message(served: tuple[FakeServer, KubeClient]) -> None:
    _, client = served
    with pytest.raises(ApiError) as err:
        await client.get(PODS, "missing", "ns")
    assert err.value.not_found
    assert err.value.message == "nope"


async def test_create_or_get_and_delete_are_idempotent(served: tuple[FakeServer, KubeClient]) -> None:
    fake, client = served
    first, created = await client.create_or_get(PODS, POD, "ns")
    again, created_again = await client.create_or_get(PODS, POD, "ns")
    assert created
    assert not created_again
    assert again == first
    assert await client.delete(PODS, "w-0", "ns", grace_period_seconds=5, uid="u1")
    assert not await client.delete(PODS, "w-0", "ns")
    options = fake.requests[-2][2]
    assert options["gracePeriodSeconds"] == 5
    assert options["preconditions"] == {"uid": "u1"}


async def test_a_server_that_stays_busy_gives_up_with_the_error(served: tuple[FakeServer, KubeClient]) -> None:
    fake, client = served
    fake.busy = 10
    with pytest.raises(ApiError) as err:
        await client.create(PODS, POD, "ns")
    assert err.value.status == 429
    assert len(fake.requests) == 4  # the first try and three retries
