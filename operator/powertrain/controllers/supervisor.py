"""Keep kopf's watches running: restart them when they end, wait for missing CRDs, and exit non-zero only when
a restart cannot help.

kopf ends its whole orchestration when one watch stream fails with an API error (a 409 answered on a watch,
a 404 once a CRD is deleted); `kopf.operator()` then returns or raises, and a process built on it exits 0
with nothing scheduled. The supervisor runs one kopf orchestration at a time and decides what its end means:

- our stop event (a signal, a test): return; the process exits 0.
- a CRD the operator watches is not served (checked before every start and every `crd_check_seconds` while
  running): scheduling pauses, one error line names the CRDs and how to install them, a reminder follows
  every `reminder_seconds`, and kopf starts again once they are served — no traceback per retry.
- any other end: kopf starts again after a backoff (`first_backoff` doubling to `max_backoff`; a run that
  lasted `healthy_seconds` resets it).
- the API server refuses the credentials (401/403, kopf's LoginError), a port cannot be bound, or kopf
  ended `max_failures` times in a row without a healthy run: CannotContinue is raised; the process exits
  non-zero with its message, so a Deployment restarts it and `kubectl get pods` shows it.

Scheduling pauses whenever the watches are down — the cluster view would go stale — and relists when they
are back (see SchedulingLoop.pause/resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import kopf

from powertrain.controllers.crd_presence import INSTALL_HINT, missing_types
from powertrain.controllers.kube import KubeClient, Resource
from powertrain.kubeclient import ApiError

log = logging.getLogger("powertrain.operator")

# Runs one kopf orchestration until the given flag is set (or kopf ends by itself).
KopfRun = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
MissingCheck = Callable[[], Awaitable[list[str]]]


class CannotContinue(Exception):
    """A condition a restart inside this process will not fix; the process exits non-zero with this message."""


class Pausable(Protocol):
    def pause(self, reason: str) -> None: ...

    def resume(self) -> None: ...


@dataclass(frozen=True)
class SupervisorTiming:
    crd_poll_seconds: float = 2.0  # while waiting for CRDs
    crd_check_seconds: float = 5.0  # while kopf runs
    reminder_seconds: float = 60.0
    first_backoff: float = 1.0
    max_backoff: float = 30.0
    # A run this long had its watches established: what ends it later is news, not the same failure again.
    healthy_seconds: float = 10.0
    max_failures: int = 10
    stop_grace_seconds: float = 30.0


def describe(exc: BaseException | None) -> str:
    """kopf's API errors carry the HTTP status; say it first, since it decides what happens next."""
    if exc is None:
        return "kopf stopped without an error"
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        message = getattr(exc, "message", None)
        return f"the API server answered {status}: {message if isinstance(message, str) else exc}"
    return f"{type(exc).__name__}: {exc}"


def fatal_reason(exc: BaseException | None) -> str | None:
    """Why a restart inside this process cannot help, or None when it can."""
    if isinstance(exc, kopf.LoginError):
        return f"kopf cannot log in to the API server ({exc}); check the kubeconfig or service-account token"
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return (
            f"the API server refuses the operator ({describe(exc)}); check its credentials and RBAC "
            "(the chart's ClusterRole lists what it needs)"
        )
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return f"a port kopf serves is in use ({exc}); choose another with --liveness-port, or 0 to disable it"
    return None


class Supervisor:
    def __init__(
        self,
        run_kopf: KopfRun,
        missing: MissingCheck,
        scheduling: Pausable,
        timing: SupervisorTiming = SupervisorTiming(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_kopf = run_kopf
        self.missing = missing
        self.scheduling = scheduling
        self.timing = timing
        self.clock = clock
        self.starts = 0
        self._kopf_stopping = asyncio.Event()

    def note_kopf_stopping(self) -> None:
        """kopf began its own shutdown (its cleanup handlers run). Called from kopf's cleanup hook: when kopf
        stops on its own (a failed watch), its orchestration may then hang, e.g. waiting for a re-login that never
        comes; from this moment it gets `stop_grace_seconds` to end before it is cancelled and restarted."""
        self._kopf_stopping.set()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = self.timing.first_backoff
        failures = 0
        while not stop.is_set():
            await self.wait_for_crds(stop)
            if stop.is_set():
                return
            self.starts += 1
            self.scheduling.resume()
            began = self.clock()
            ended = await self._run_once(stop)
            self.scheduling.pause("the watches are down")
            if stop.is_set():
                return
            if isinstance(ended, list):
                continue  # a CRD went away: wait_for_crds says so, and a return is no failure of kopf's
            if self.clock() - began >= self.timing.healthy_seconds:
                backoff, failures = self.timing.first_backoff, 0
            fatal = fatal_reason(ended)
            if fatal is not None:
                raise CannotContinue(fatal)
            if await self._missing_or_none():
                continue  # kopf ended because a CRD was deleted: wait_for_crds names it
            failures += 1
            if failures >= self.timing.max_failures:
                raise CannotContinue(
                    f"kopf's watches ended {failures} times in a row without a healthy run (last: {describe(ended)}); "
                    "exiting so that the operator is restarted"
                )
            log.warning(
                "kopf's watches stopped (%s); scheduling paused, re-establishing the watches in %.0f s",
                describe(ended),
                backoff,
            )
            await _sleep_unless(stop, backoff)
            backoff = min(backoff * 2, self.timing.max_backoff)

    async def wait_for_crds(self, stop: asyncio.Event) -> None:
        """Return once every watched CRD is served (or on stop): one line first, then a reminder now and then."""
        missing = await self._missing_or_none()
        if not missing:
            return
        since = self.clock()
        log.error(
            "the operator needs CRDs the API server does not serve: %s; waiting for them (%s). "
            "Watches and scheduling are paused until then",
            ", ".join(missing),
            INSTALL_HINT,
        )
        reminded = since
        while not stop.is_set():
            await _sleep_unless(stop, self.timing.crd_poll_seconds)
            now_missing = await self._missing_or_none(missing)
            if not now_missing:
                log.info("the CRDs %s are served now; starting the watches", ", ".join(missing))
                return
            missing = now_missing
            if self.clock() - reminded >= self.timing.reminder_seconds:
                reminded = self.clock()
                log.warning(
                    "still waiting for the CRDs %s (%.0f s so far); %s",
                    ", ".join(missing),
                    reminded - since,
                    INSTALL_HINT,
                )

    async def _missing_or_none(self, unknown: list[str] | None = None) -> list[str]:
        """The missing CRDs; when the API server cannot tell, `unknown` (kopf's own retries cover outages)."""
        try:
            return await self.missing()
        except (TimeoutError, ApiError, OSError) as exc:
            log.debug("cannot check the CRDs now: %s", exc)
            return list(unknown or [])

    async def _run_once(self, stop: asyncio.Event) -> BaseException | list[str] | None:
        """Run kopf until it ends, a CRD disappears or we stop; what ended it (an error, the CRDs, or None)."""
        kopf_stop = asyncio.Event()
        self._kopf_stopping.clear()
        # Created before kopf starts, so kopf counts them as the embedding program's and leaves them alone.
        watch_crds = asyncio.create_task(self._until_crd_missing(), name="crd-presence")
        stopped = asyncio.create_task(stop.wait(), name="supervisor-stop")
        stopping = asyncio.create_task(self._kopf_stopping.wait(), name="kopf-stopping")
        kopf_task = asyncio.create_task(self.run_kopf(kopf_stop), name="kopf")
        try:
            await asyncio.wait({kopf_task, watch_crds, stopped, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            kopf_stop.set()
            for task in (watch_crds, stopped, stopping):
                task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(kopf_task), timeout=self.timing.stop_grace_seconds)
        except TimeoutError:
            log.warning("kopf did not stop within %.0f s; cancelling it", self.timing.stop_grace_seconds)
            kopf_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await kopf_task
            return None if stop.is_set() else TimeoutError("kopf did not stop")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return exc
        if watch_crds.done() and not watch_crds.cancelled() and watch_crds.exception() is None:
            return watch_crds.result()
        return None

    async def _until_crd_missing(self) -> list[str]:
        while True:
            await asyncio.sleep(self.timing.crd_check_seconds)
            missing = await self._missing_or_none()
            if missing:
                return missing


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def crd_check(client: KubeClient, wanted: Sequence[Resource]) -> MissingCheck:
    async def check() -> list[str]:
        return await missing_types(client, wanted)

    return check
