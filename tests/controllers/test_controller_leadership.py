from __future__ import annotations

from datetime import UTC, datetime, timedelta

from powertrain.controllers.leadership import leads

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def peer(priority: int, seen_ago: float = 1, lifetime: int = 15) -> dict[str, object]:
    return {"priority": priority, "lifetime": lifetime, "lastseen": (NOW - timedelta(seconds=seen_ago)).isoformat()}


def test_the_highest_priority_live_replica_leads_and_the_other_follows() -> None:
    status = {"a": peer(10), "b": peer(20)}
    assert leads(status, "b", 20, NOW)
    assert not leads(status, "a", 10, NOW)


def test_a_dead_peer_does_not_keep_the_lead() -> None:
    status = {"a": peer(10), "b": peer(20, seen_ago=60)}
    assert leads(status, "a", 10, NOW)


def test_equal_priorities_both_stand_down_as_kopf_pauses_both() -> None:
    status = {"a": peer(10), "b": peer(10)}
    assert not leads(status, "a", 10, NOW)
    assert not leads(status, "b", 10, NOW)


def test_garbage_in_the_peering_object_is_ignored() -> None:
    assert leads({"x": "junk", "y": {"priority": "high"}, "a": peer(1)}, "a", 1, NOW)
