"""Leadership as the scheduling loop applies it: kopf's rule, a takeover delay, and a relist on taking over."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from powertrain.controllers.cache import ClusterCache
from powertrain.controllers.kube import ApiError, Resource
from powertrain.controllers.leadership import PeeringConfig
from powertrain.controllers.loop import SchedulingLoop
from powertrain.metrics import OperatorMetrics

WALL = datetime(2026, 1, 1, tzinfo=UTC)


class PeeringApi:
    def __init__(self) -> None:
        self.status: dict[str, Any] = {}
        self.lists: list[str] = []
        self.missing = False

    def announce(self, identity: str, priority: int, seen: datetime = WALL) -> None:
        self.status[identity] = {"priority": priority, "lifetime": 15, "lastseen": seen.isoformat()}

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        if self.missing:
            raise ApiError(404, "NotFound", "no peering object")
        return {"metadata": {"name": name}, "status": dict(self.status)}

    async def list(self, res: Resource, namespace: str | None = None, **_: Any) -> list[dict[str, Any]]:
        self.lists.append(res.plural)
        return []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_loop(api: PeeringApi, clock: Clock, identity: str = "me", priority: int = 5) -> SchedulingLoop:
    async def no_pass(now: datetime) -> None:
        return None

    return SchedulingLoop(
        api,  # type: ignore[arg-type]
        ClusterCache(),
        OperatorMetrics(),
        no_pass,
        PeeringConfig(name="ops", identity=identity, priority=priority),
        leadership_check_seconds=0.0,
        takeover_delay_seconds=5.0,
        clock=clock,
        wall_clock=lambda: WALL,
    )


async def test_a_replica_acts_only_after_leading_for_the_takeover_delay_and_relists_first() -> None:
    api, clock = PeeringApi(), Clock()
    loop = make_loop(api, clock)
    api.announce("me", 5)
    assert not await loop._update_leadership()
    clock.now += 4.9
    assert not await loop._update_leadership()
    assert api.lists == []
    clock.now += 0.2
    assert await loop._update_leadership()
    assert "trainingjobs" in api.lists  # the view is rebuilt before the first decision
    assert loop.metrics.leader._value.get() == 1


async def test_a_higher_priority_peer_stops_the_leader_at_once() -> None:
    api, clock = PeeringApi(), Clock()
    loop = make_loop(api, clock)
    api.announce("me", 5)
    await loop._update_leadership()
    clock.now += 6
    assert await loop._update_leadership()
    api.announce("other", 9)
    assert not await loop._update_leadership()
    api.status["other"]["lastseen"] = (WALL - timedelta(seconds=60)).isoformat()  # it died
    clock.now += 1
    assert not await loop._update_leadership()  # the delay starts again
    clock.now += 5
    assert await loop._update_leadership()


async def test_no_peering_object_or_not_yet_announced_means_not_acting() -> None:
    api, clock = PeeringApi(), Clock()
    loop = make_loop(api, clock)
    clock.now += 100
    assert not await loop._update_leadership()  # kopf has not announced us yet
    api.missing = True
    assert not await loop._update_leadership()


async def test_a_paused_loop_decides_nothing_and_relists_before_its_first_pass_after_resume() -> None:
    api, clock = PeeringApi(), Clock()
    passes: list[datetime] = []

    async def count(now: datetime) -> None:
        passes.append(now)

    loop = SchedulingLoop(
        api,  # type: ignore[arg-type]
        ClusterCache(),
        OperatorMetrics(),
        count,
        PeeringConfig(name=None, identity="me", priority=1),
        tick_seconds=0.01,
        debounce_seconds=0.0,
        clock=clock,
        wall_clock=lambda: WALL,
    )
    loop.pause("the watches are down")
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await asyncio.sleep(0.1)
    assert passes == []
    assert api.lists == []
    assert not loop.is_leader
    loop.resume()
    for _ in range(200):
        if passes:
            break
        await asyncio.sleep(0.01)
    assert passes
    assert set(api.lists) >= {"nodes", "pods", "trainingjobs"}  # relisted: the watches missed what happened
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_a_cancelled_request_inside_a_pass_does_not_end_the_loop() -> None:
    # kopf cancels every task it finds when its orchestration ends; the loop's own requests are among them.
    api, clock = PeeringApi(), Clock()
    passes = 0

    async def interrupted_once(now: datetime) -> None:
        nonlocal passes
        passes += 1
        if passes == 1:
            inner = asyncio.create_task(asyncio.sleep(10))
            asyncio.get_running_loop().call_soon(inner.cancel)
            await inner

    loop = SchedulingLoop(
        api,  # type: ignore[arg-type]
        ClusterCache(),
        OperatorMetrics(),
        interrupted_once,
        PeeringConfig(name=None, identity="me", priority=1),
        tick_seconds=0.01,
        debounce_seconds=0.0,
        clock=clock,
        wall_clock=lambda: WALL,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    for _ in range(200):
        if passes >= 3:
            break
        await asyncio.sleep(0.01)
    assert passes >= 3
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 5)
