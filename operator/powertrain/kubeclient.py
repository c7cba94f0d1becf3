"""The one asyncio Kubernetes REST transport that the operator and the sandbox's own controllers share.

It owns what every caller needs the same way: Status errors, the retry policy for 429/5xx/broken connections
(the server's Retry-After, else exponential back-off, as client-go does) and JSON requests over one pooled
aiohttp session. What the API looks like to each caller (typed resources for the operator, plain paths and an
informer for the sandbox) stays with that caller.

Why not the `kubernetes` client: it is synchronous, and a thread hop per call costs more than the call itself
when a 500-job burst means thousands of writes.
"""

from __future__ import annotations

import asyncio
import json
import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp

JSON = dict[str, Any]

MERGE_PATCH: Final = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"

# Answers that say "try again later" rather than "this request is wrong"; 0 stands for a broken connection.
TRANSIENT: Final = frozenset({0, 429, 500, 502, 503, 504})


class ApiError(Exception):
    """A non-2xx answer, with the Kubernetes Status reason when the server sent one.

    `status` 0 with reason "ConnectionError" means no answer came (connection refused, reset or timed out).
    """

    def __init__(self, status: int, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    @property
    def code(self) -> int:
        """The HTTP status under the name a Status object gives it."""
        return self.status

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


def parse_retry_after(header: str | None) -> float | None:
    """Seconds from a Retry-After header; None when it is absent or not a finite, non-negative number."""
    if not header:
        return None
    try:
        seconds = float(header)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def error_from_response(status: int, text: str, retry_after: str | None = None) -> ApiError:
    """The ApiError for a failed answer: reason and message from its Status body, else the body's start."""
    reason, message = "", text[:500]
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        reason = str(doc.get("reason") or "")
        message = str(doc.get("message") or message)
    return ApiError(status, reason, message, parse_retry_after(retry_after))


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before trying a transient failure again."""

    retries: int
    first_delay: float
    max_delay: float
    max_retry_after: float  # a server asking for more than this is answered sooner

    def pause(self, error: ApiError, delay: float) -> float:
        return min(error.retry_after, self.max_retry_after) if error.retry_after is not None else delay


class JsonClient:
    """Async JSON calls over one pooled session, with retries by `retry`; `concurrency` bounds calls in flight.

    The session opens on first use (or with `open()`), so a client can be built outside the event loop.
    """

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        retry: RetryPolicy,
        ssl_context: ssl.SSLContext | bool = True,
        connections: int = 64,
        concurrency: int | None = None,
        timeout: float = 30.0,
        read_bufsize: int = 2**16,
    ) -> None:
        self.url = url.rstrip("/")
        self.retry = retry
        self._headers = dict(headers)
        self._ssl = ssl_context
        self._connections = connections
        self._timeout = timeout
        self._read_bufsize = read_bufsize
        self._limit = asyncio.Semaphore(concurrency) if concurrency is not None else None
        self._session: aiohttp.ClientSession | None = None

    @property
    def retries(self) -> int:
        return self.retry.retries

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session, opened now if it is not (or was closed)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=self._connections, ssl=self._ssl),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                read_bufsize=self._read_bufsize,
            )
        return self._session

    def open(self) -> None:
        _ = self.session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        request_timeout: float | None = None,
        retry_conflicts: bool = False,
    ) -> JSON:
        """One call, tried again on transient failures; `retry_conflicts` also retries 409 (for writes that
        carry no resourceVersion). Raises ApiError with the last failure once the retries are spent."""
        url = self.url + path + (("?" + urlencode(params)) if params else "")
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else None
        deadline = aiohttp.ClientTimeout(total=request_timeout) if request_timeout is not None else None
        policy = self.retry
        delay = policy.first_delay
        for attempt in range(policy.retries + 1):
            try:
                if self._limit is None:
                    return await self._once(method, url, data, headers, deadline)
                async with self._limit:
                    return await self._once(method, url, data, headers, deadline)
            except ApiError as exc:
                error = exc
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                error = ApiError(0, "ConnectionError", str(exc) or type(exc).__name__)
                error.__cause__ = exc
            again = error.status in TRANSIENT or (retry_conflicts and error.status == 409)
            if not again or attempt == policy.retries:
                raise error
            await asyncio.sleep(policy.pause(error, delay))
            delay = min(delay * 2, policy.max_delay)
        raise AssertionError("unreachable")

    async def _once(
        self,
        method: str,
        url: str,
        data: str | None,
        headers: Mapping[str, str] | None,
        deadline: aiohttp.ClientTimeout | None,
    ) -> JSON:
        session = self.session
        # Only a ClientTimeout overrides the session's; aiohttp reads timeout=None as "no timeout at all".
        call = (
            session.request(method, url, data=data, headers=headers)
            if deadline is None
            else session.request(method, url, data=data, headers=headers, timeout=deadline)
        )
        async with call as resp:
            text = await resp.text()
            if resp.status >= 300:
                raise error_from_response(resp.status, text, resp.headers.get("Retry-After"))
        if not text:
            return {}
        out = json.loads(text)
        return out if isinstance(out, dict) else {"items": out}
