"""The supervisor around kopf: what each way kopf's orchestration ends leads to (restart with backoff, wait
for CRDs, stop, or give up with a message), with a fake kopf and fake discovery on fast timings."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable

import kopf
import pytest

from powertrain.controllers.supervisor import CannotContinue, Supervisor, SupervisorTiming

FAST = SupervisorTiming(
    crd_poll_seconds=0.01,
    crd_check_seconds=0.01,
    reminder_seconds=0.05,
    first_backoff=0.01,
    max_backoff=0.04,
    healthy_seconds=60.0,
    max_failures=4,
    stop_grace_seconds=1.0,
)


class ApiFailure(Exception):
    """What kopf raises for an API answer: an exception with the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Scheduling:
    def __init__(self) -> None:
        self.events: list[str] = []

    def pause(self, reason: str) -> None:
        self.events.append("pause")

    def resume(self) -> None:
        self.events.append("resume")


class FakeKopf:
    """Each start takes the next behaviour: an exception to raise, "run" (until stopped) or "return"."""

    def __init__(self, *behaviours: BaseException | str, on_start: Callable[[int], None] | None = None) -> None:
        self.behaviours = list(behaviours)
        self.starts = 0
        self.on_start = on_start

    async def __call__(self, stop_flag: asyncio.Event) -> None:
        self.starts += 1
        if self.on_start is not None:
            self.on_start(self.starts)
        what = self.behaviours.pop(0) if self.behaviours else "run"
        await asyncio.sleep(0)
        if isinstance(what, BaseException):
            raise what
        if what == "run":
            await stop_flag.wait()


class Crds:
    def __init__(self) -> None:
        self.missing: list[str] = []
        self.checks = 0

    async def __call__(self) -> list[str]:
        self.checks += 1
        return list(self.missing)


async def until(done: Callable[[], bool], limit_seconds: float = 5.0) -> None:
    for _ in range(int(limit_seconds / 0.01)):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition did not come true")


async def run_until(sup: Supervisor, stop: asyncio.Event, done: Callable[[], bool]) -> None:
    task = asyncio.create_task(sup.run(stop))
    await until(lambda: done() or task.done())
    stop.set()
    await asyncio.wait_for(task, 5)


def test_a_409_on_a_watch_restarts_kopf_with_scheduling_paused_meanwhile(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> tuple[FakeKopf, Scheduling]:
        fake, sched = FakeKopf(ApiFailure(409, "Conflict"), ApiFailure(409, "Conflict")), Scheduling()
        sup = Supervisor(fake, Crds(), sched, FAST)
        await run_until(sup, asyncio.Event(), lambda: fake.starts >= 3)
        return fake, sched

    with caplog.at_level(logging.WARNING, logger="powertrain.operator"):
        fake, sched = asyncio.run(scenario())
    assert fake.starts == 3  # two failures, then a run that lasts until stopped
    assert sched.events[:4] == ["resume", "pause", "resume", "pause"]
    assert sched.events[-1] == "pause"
    lines = [r.getMessage() for r in caplog.records if "watches stopped" in r.getMessage()]
    assert len(lines) == 2
    assert "the API server answered 409: Conflict" in lines[0]
    assert "re-establishing the watches in" in lines[0]


def test_kopf_that_keeps_failing_ends_the_operator_with_a_message() -> None:
    async def scenario() -> None:
        fake = FakeKopf(*(ApiFailure(500, "boom") for _ in range(10)))
        await Supervisor(fake, Crds(), Scheduling(), FAST).run(asyncio.Event())

    with pytest.raises(CannotContinue, match=r"4 times in a row .*500: boom"):
        asyncio.run(scenario())


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (ApiFailure(403, "forbidden"), "refuses the operator .*403.*RBAC"),
        (ApiFailure(401, "Unauthorized"), "refuses the operator .*401"),
        (kopf.LoginError("Ran out of valid credentials"), "cannot log in"),
        (OSError(errno.EADDRINUSE, "Address already in use"), "--liveness-port"),
    ],
)
def test_what_a_restart_cannot_fix_ends_the_operator_at_once(error: BaseException, says: str) -> None:
    async def scenario() -> FakeKopf:
        fake = FakeKopf(error)
        try:
            await Supervisor(fake, Crds(), Scheduling(), FAST).run(asyncio.Event())
        finally:
            assert fake.starts == 1
        return fake

    with pytest.raises(CannotContinue, match=says):
        asyncio.run(scenario())


def test_missing_crds_are_named_once_reminded_and_kopf_starts_once_they_are_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    crds = Crds()
    crds.missing = ["trainingjobs.powertrain.dev"]

    async def scenario() -> FakeKopf:
        fake = FakeKopf()
        stop = asyncio.Event()
        task = asyncio.create_task(Supervisor(fake, crds, Scheduling(), FAST).run(stop))
        await until(lambda: crds.checks >= 20)
        assert fake.starts == 0  # nothing starts while a CRD is missing
        crds.missing = []
        await until(lambda: fake.starts > 0)
        stop.set()
        await asyncio.wait_for(task, 5)
        return fake

    with caplog.at_level(logging.INFO, logger="powertrain.operator"):
        fake = asyncio.run(scenario())
    assert fake.starts == 1
    messages = [r.getMessage() for r in caplog.records]
    first = [m for m in messages if "does not serve: trainingjobs.powertrain.dev; waiting" in m]
    assert len(first) == 1
    assert "kubectl apply -f crds/" in first[0]
    assert any(m.startswith("still waiting for the CRDs trainingjobs.powertrain.dev") for m in messages)
    assert "the CRDs trainingjobs.powertrain.dev are served now; starting the watches" in messages


def test_a_crd_deleted_while_kopf_runs_stops_kopf_and_waits_without_counting_a_failure() -> None:
    crds = Crds()

    def delete_on_first_start(start: int) -> None:
        if start == 1:
            crds.missing = ["nodetelemetries.powertrain.dev"]

    async def scenario() -> tuple[FakeKopf, Scheduling]:
        fake, sched = FakeKopf(on_start=delete_on_first_start), Scheduling()
        stop = asyncio.Event()
        task = asyncio.create_task(Supervisor(fake, crds, sched, FAST).run(stop))
        await until(lambda: "pause" in sched.events)
        await asyncio.sleep(0.1)
        assert fake.starts == 1  # waiting, not restarting
        crds.missing = []
        await until(lambda: fake.starts >= 2)
        stop.set()
        await asyncio.wait_for(task, 5)
        return fake, sched

    fake, sched = asyncio.run(scenario())
    assert fake.starts == 2
    assert sched.events == ["resume", "pause", "resume", "pause"]


def test_a_stop_request_stops_kopf_and_returns() -> None:
    async def scenario() -> FakeKopf:
        fake = FakeKopf("run")
        await run_until(Supervisor(fake, Crds(), Scheduling(), FAST), asyncio.Event(), lambda: fake.starts == 1)
        return fake

    assert asyncio.run(scenario()).starts == 1


def test_failures_separated_by_healthy_runs_never_add_up_to_giving_up() -> None:
    now = [0.0]

    def a_long_run_each_time(start: int) -> None:
        now[0] += 120.0  # each run lasts longer than healthy_seconds before its watch fails

    async def scenario() -> FakeKopf:
        failures = [ApiFailure(409, "Conflict") for _ in range(FAST.max_failures * 2)]
        fake = FakeKopf(*failures, on_start=a_long_run_each_time)
        sup = Supervisor(fake, Crds(), Scheduling(), FAST, clock=lambda: now[0])
        await run_until(sup, asyncio.Event(), lambda: fake.starts > FAST.max_failures * 2)
        return fake

    assert asyncio.run(scenario()).starts == FAST.max_failures * 2 + 1


def test_kopf_that_hangs_in_its_own_shutdown_is_cancelled_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    # Seen under chaos: a watch fails, kopf runs its cleanup handlers, then waits forever for a re-login while
    # stopping; before, the supervisor waited on it for good and the operator scheduled nothing again.
    hung = asyncio.Event()

    async def scenario() -> int:
        starts = 0
        sup: Supervisor

        async def kopf_run(stop_flag: asyncio.Event) -> None:
            nonlocal starts
            starts += 1
            if starts == 1:
                sup.note_kopf_stopping()  # kopf's cleanup hook: it is stopping on its own ...
                await hung.wait()  # ... and never ends, whatever its stop flag says
            await stop_flag.wait()

        timing = SupervisorTiming(**{**FAST.__dict__, "stop_grace_seconds": 0.05})
        sup = Supervisor(kopf_run, Crds(), Scheduling(), timing)
        await run_until(sup, asyncio.Event(), lambda: starts >= 2)
        return starts

    with caplog.at_level(logging.WARNING, logger="powertrain.operator"):
        starts = asyncio.run(scenario())
    assert starts == 2
    assert any("kopf did not stop within" in r.getMessage() for r in caplog.records)
