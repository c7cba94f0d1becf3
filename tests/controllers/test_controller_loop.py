"""Leadership as the scheduling loop applies it: kopf's rule, a takeover delay, and a relist on taking over."""

from __future__ import annotations

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
