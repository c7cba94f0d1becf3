"""Cost-aware locality: a Preferred gang waits for its level exactly when that is expected to finish it sooner
than starting scattered now, never longer than placement.preferredWaitSeconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core_builders import cluster, job, policy, running, snap, worker_pods

from powertrain.core import conditions as cond
from powertrain.core.lifecycle import decide_all
from powertrain.core.scheduler import schedule
from powertrain.core.snapshot import ClusterSnapshot

T0 = datetime(2026, 1, 1, tzinfo=UTC)
D = "default"
BIG = (D, "big")


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _big(sensitivity: float | None = None, duration: int | None = None, **kw: Any) -> dict[str, Any]:
    obj = job("big", replicas=4, run_policy={"expectedDurationSeconds": duration} if duration else None, **kw)
    if sensitivity is not None:
        obj["spec"]["topology"]["localitySensitivity"] = sensitivity
    return obj


def _busy(big: dict[str, Any], holder_duration: int | None = None, wait: int = 86_400, **kw: Any) -> ClusterSnapshot:
    """2 racks of 4 × 8-GPU nodes, each half held by a 2-node gang running since T0: the 4-node gang `big` could
    start across both racks now, or in one rack once a holder finishes."""
    run_policy = {"expectedDurationSeconds": holder_duration} if holder_duration else None
    holders = [
        running(job(f"hold-{r}", replicas=2, run_policy=run_policy), [f"s0-r{r}-n0", f"s0-r{r}-n1"]) for r in range(2)
    ]
    pods = [p for h in holders for p in worker_pods(h)]
    return snap(
        cluster(spines=1, racks=2, nodes=4),
        [*holders, big, *kw.pop("extra", [])],
        pods,
        policy=policy(placement={"preferredWaitSeconds": wait}),
    )


def test_a_sensitive_gang_waits_when_a_rack_frees_up_sooner_than_scattering_would_cost() -> None:
    # Holders ran 10 min, so they are expected to run ~10 min more; scattered over 4 nodes the gang would take 3×
    # as long as in one rack: 2 h lost of a 1 h run.
    d = schedule(_busy(_big(sensitivity=3, duration=3600)), _at(600))
    assert BIG not in d.placements
    waiting = d.waiting[BIG]
    assert waiting.reason == cond.REASON_WAITING_FOR_LOCALITY
    assert "expected free in 10 min" in waiting.message
    assert "3.00× slower" in waiting.message
    assert "waiting pays" in waiting.message


def test_an_insensitive_gang_starts_scattered_at_once_and_says_why() -> None:
    s = _busy(_big(sensitivity=1.1, duration=3600))
    d = schedule(s, _at(600))
    assert d.placements[BIG].level == "spine"  # 6 min lost scattered < 10 min of waiting
    plan = next(p for p in decide_all(s, _at(600), d) if p.key == BIG)
    degraded = next(c for c in plan.status.conditions if c.type == cond.TOPOLOGY_DEGRADED)
    assert degraded.status == "True"
    assert "starting wider now is expected to finish sooner" in degraded.message
    assert "locality sensitivity 1.1" in degraded.message


def test_running_gangs_duration_hints_shorten_the_expected_wait() -> None:
    # The same gang as above waits when the holders say they end in 100 s (700 s total, 600 s done).
    d = schedule(_busy(_big(sensitivity=1.1, duration=3600), holder_duration=700), _at(600))
    assert BIG not in d.placements
    assert "expected free in 100 s" in d.waiting[BIG].message


def test_without_a_hint_the_sensitivity_of_a_job_with_the_same_image_is_used() -> None:
    like = job("like", replicas=1, gpus=1, created="2026-01-01T00:00:05Z")
    like["spec"]["topology"]["localitySensitivity"] = 8
    d = schedule(_busy(_big(duration=3600), extra=[like]), _at(600))
    assert "locality sensitivity 8, as job default/like with the same image" in d.waiting[BIG].message


def test_with_nothing_known_the_default_sensitivity_and_running_gangs_durations_decide() -> None:
    # Default sensitivity 1.5 → 1.5× slower over 4 nodes; own run time unknown: the running gangs' median total
    # (10 min done + 10 min expected) → 10 min lost scattered vs 10 min of waiting: not worth it.
    d = schedule(_busy(_big()), _at(600))
    assert d.placements[BIG].level == "spine"


def test_a_gang_never_waits_longer_than_preferred_wait_seconds() -> None:
    # However much waiting is estimated to pay, the policy's bound wins: 600 s after the wait began it widens.
    for held_since, now, placed in ((0, 599, False), (0, 600, True), (100, 650, False), (100, 700, True)):
        big = _big(
            sensitivity=100,
            duration=86_400,
            status={"phase": "Queued", "localityWaitStart": _at(held_since).isoformat()},
        )
        d = schedule(_busy(big, wait=600), _at(now))
        assert (BIG in d.placements) is placed, (held_since, now)
        if not placed:
            assert d.wake_at == _at(held_since + 600)


def _second(name: str, replicas: int = 4) -> dict[str, Any]:
    later = job(name, replicas=replicas, created="2026-01-01T00:00:05Z")
    later["spec"]["topology"]["localitySensitivity"] = 1.1
    return later


def test_a_gang_does_not_start_scattered_on_gpus_another_waiting_job_could_use() -> None:
    # The same insensitive gang as above, but a second one waits behind it for the same 4 free nodes: starting the
    # first scattered would take the room the queue can use, so it keeps waiting for a rack (as packed would).
    d = schedule(_busy(_big(sensitivity=1.1, duration=3600), extra=[_second("next")]), _at(600))
    assert BIG not in d.placements
    assert (D, "next") not in d.placements
    assert d.waiting[BIG].reason == cond.REASON_WAITING_FOR_LOCALITY
    assert "only on GPUs no other waiting job can use" in d.waiting[BIG].message
    assert "waiting behind default/big" in d.waiting[(D, "next")].message


def test_a_gang_starts_scattered_when_what_waits_behind_it_could_not_use_the_free_gpus() -> None:
    # A 5-node gang behind it could never use the 4 free nodes: they are left over, so the first starts wider.
    d = schedule(_busy(_big(sensitivity=1.1, duration=3600), extra=[_second("huge", replicas=5)]), _at(600))
    assert d.placements[BIG].level == "spine"
    assert (D, "huge") in d.waiting


def test_a_larger_gang_of_the_same_shape_waits_behind_a_held_one_without_keeping_a_second_domain() -> None:
    # Both want one rack; the first waits for it (rack kept). The larger one cannot get a rack before it, so it
    # queues behind it instead of draining a second rack the smaller jobs could use meanwhile.
    d = schedule(_busy(_big(sensitivity=3, duration=3600), extra=[_second("larger", replicas=5)]), _at(600))
    assert "is kept for it" in d.waiting[BIG].message
    behind = d.waiting[(D, "larger")]
    assert behind.reason == cond.REASON_WAITING_FOR_RESOURCES
    assert "waiting behind default/big" in behind.message
    assert "kept" not in behind.message


def test_a_job_that_cannot_use_gpus_now_does_not_keep_a_gang_from_starting_scattered() -> None:
    # A 1-GPU job in a queue the policy does not have waits (UnknownQueue) but could never take the free GPUs:
    # the insensitive gang still starts wider on them.
    lost = job("lost", replicas=1, gpus=1, queue="nowhere", created="2026-01-01T00:00:05Z")
    d = schedule(_busy(_big(sensitivity=1.1, duration=3600), extra=[lost]), _at(600))
    assert d.placements[BIG].level == "spine"
    assert d.waiting[(D, "lost")].reason == cond.REASON_UNKNOWN_QUEUE
