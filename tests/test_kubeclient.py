"""The shared Kubernetes REST transport against a tiny aiohttp server: Status errors, retries, bounds, reopening."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from powertrain.kubeclient import ApiError, JsonClient, RetryPolicy, error_from_response, parse_retry_after

FAST = RetryPolicy(retries=3, first_delay=0.0, max_delay=0.0, max_retry_after=0.0)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message}  # fmt: skip
    return web.json_response(body, status=code)


class Server:
    """Answers each request with the next scripted handler (the last one repeats) and counts what came."""

    def __init__(self) -> None:
        self.script: list[Handler] = []
        self.calls: list[tuple[str, str, str]] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.calls.append((request.method, request.path_qs, await request.text()))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            handler = self.script[min(len(self.calls), len(self.script)) - 1]
            return await handler(request)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    fake = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield fake, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def answer(code: int, reason: str = "", message: str = "", headers: dict[str, str] | None = None) -> Handler:
    async def handler(_: web.Request) -> web.StreamResponse:
        if code < 300:
            return web.json_response({"kind": "Pod", "metadata": {"name": "p"}}, status=code)
        response = status(code, reason, message)
        response.headers.update(headers or {})
        return response

    return handler


def client(url: str, retry: RetryPolicy = FAST, **kwargs: Any) -> JsonClient:
    return JsonClient(url, {"Authorization": "Bearer t"}, retry=retry, **kwargs)


async def test_transient_answers_are_retried_until_one_succeeds(server: tuple[Server, str]) -> None:
    fake, url = server
    fake.script = [answer(429, "TooManyRequests", "slow", {"Retry-After": "30"}), answer(503), answer(200)]
    api = client(url)
    try:
        got = await api.request("POST", "/api/v1/namespaces/a/pods", {"metadata": {"name": "p"}})
    finally:
        await api.close()
    assert got["metadata"]["name"] == "p"
    assert [c[0] for c in fake.calls] == ["POST", "POST", "POST"]
    assert all(c[2] == '{"metadata": {"name": "p"}}' for c in fake.calls)  # the body goes again each time


async def test_a_wrong_request_fails_at_once_with_the_status_reason(server: tuple[Server, str]) -> None:
    fake, url = server
    fake.script = [answer(422, "Invalid", 'Pod "p" is invalid: spec.containers: Required value')]
    api = client(url)
    try:
        with pytest.raises(ApiError) as err:
            await api.request("POST", "/api/v1/namespaces/a/pods", {})
    finally:
        await api.close()
    assert (err.value.status, err.value.code, err.value.reason) == (422, 422, "Invalid")
    assert "spec.containers" in err.value.message
    assert len(fake.calls) == 1


async def test_conflicts_are_retried_only_when_asked(server: tuple[Server, str]) -> None:
    fake, url = server
    fake.script = [answer(409, "Conflict", "modified"), answer(200)]
    api = client(url)
    try:
        with pytest.raises(ApiError) as err:
            await api.request("PATCH", "/api/v1/pods/p", {"x": 1})
        assert err.value.conflict
        fake.calls.clear()
        await api.request("PATCH", "/api/v1/pods/p", {"x": 1}, retry_conflicts=True)
    finally:
        await api.close()
    assert len(fake.calls) == 2


async def test_a_server_that_stays_busy_gives_up_after_the_retries(server: tuple[Server, str]) -> None:
    fake, url = server
    fake.script = [answer(500, "InternalError", "boom")]
    api = client(url)
    try:
        with pytest.raises(ApiError) as err:
            await api.request("GET", "/api/v1/pods")
    finally:
        await api.close()
    assert (err.value.status, err.value.message) == (500, "boom")
    assert len(fake.calls) == 4  # the first try and three retries


async def test_no_answer_at_all_becomes_a_connection_error_after_the_retries() -> None:
    with socket.socket() as sock:  # a port that nothing listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = client(f"http://127.0.0.1:{port}", RetryPolicy(retries=1, first_delay=0.0, max_delay=0.0, max_retry_after=0))
    try:
        with pytest.raises(ApiError) as err:
            await api.request("GET", "/api/v1/pods")
    finally:
        await api.close()
    assert (err.value.status, err.value.reason) == (0, "ConnectionError")
    assert err.value.__cause__ is not None


async def test_a_per_call_timeout_cuts_a_hanging_answer(server: tuple[Server, str]) -> None:
    fake, url = server
    never = asyncio.Event()

    async def hang(_: web.Request) -> web.StreamResponse:
        await never.wait()
        return web.Response()

    fake.script = [hang]
    api = client(url, RetryPolicy(retries=0, first_delay=0.0, max_delay=0.0, max_retry_after=0))
    try:
        with pytest.raises(ApiError) as err:
            await api.request("GET", "/api/v1/pods", request_timeout=0.05)
    finally:
        never.set()
        await api.close()
    assert err.value.status == 0


async def test_concurrency_bounds_the_calls_in_flight(server: tuple[Server, str]) -> None:
    fake, url = server

    async def slow(_: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.02)
        return web.json_response({})

    fake.script = [slow]
    api = client(url, concurrency=2)
    try:
        await asyncio.gather(*(api.request("GET", "/api/v1/pods") for _ in range(8)))
    finally:
        await api.close()
    assert len(fake.calls) == 8
    assert fake.most_in_flight == 2


async def test_params_headers_and_list_answers(server: tuple[Server, str]) -> None:
    fake, url = server
    seen: dict[str, str] = {}

    async def listing(request: web.Request) -> web.StreamResponse:
        seen.update(request.headers)
        seen.update(request.query)
        return web.json_response([{"metadata": {"name": "a"}}])

    fake.script = [listing]
    api = client(url + "/")
    try:
        got = await api.request("GET", "/api/v1/pods", params={"labelSelector": "app in (a,b)"})
        await api.close()
        again = await api.request("GET", "/api/v1/pods")  # a closed client opens a new session on demand
    finally:
        await api.close()
    assert got == again == {"items": [{"metadata": {"name": "a"}}]}
    assert seen["labelSelector"] == "app in (a,b)"
    assert seen["Authorization"] == "Bearer t"


def test_errors_read_the_status_body_or_fall_back_to_the_text() -> None:
    from_status = error_from_response(404, '{"kind":"Status","reason":"NotFound","message":"pods \\"x\\" not found"}')
    assert (from_status.not_found, from_status.reason, from_status.message) == (True, "NotFound", 'pods "x" not found')
    plain = error_from_response(502, "<html>" + "x" * 1000, "2")
    assert (plain.reason, len(plain.message), plain.retry_after) == ("", 500, 2.0)
    assert str(plain).startswith("502 : <html>")


RETRY_AFTER = [("3", 3.0), ("0.5", 0.5), (None, None), ("", None), ("soon", None), ("-1", None), ("nan", None)]


@pytest.mark.parametrize(("header", "seconds"), [*RETRY_AFTER, ("inf", None)])
def test_retry_after_accepts_only_a_sane_number_of_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_the_policy_honours_retry_after_up_to_its_cap_else_backs_off() -> None:
    policy = RetryPolicy(retries=3, first_delay=0.2, max_delay=5.0, max_retry_after=10.0)
    assert policy.pause(ApiError(429, "", "", retry_after=3.0), 0.4) == 3.0
    assert policy.pause(ApiError(429, "", "", retry_after=3600.0), 0.4) == 10.0
    assert policy.pause(ApiError(503, "", ""), 0.4) == 0.4
