"""One job must never stop the others: absurd numbers are refused up front, and a job whose evaluation
raises anyway is set aside (condition + Event) while every other job is still scheduled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from core_builders import T0, cluster, job, running, snap, worker_pods

from powertrain.core import conditions as cond
from powertrain.core import lifecycle, scheduler
from powertrain.core.lifecycle import decide_all
from powertrain.core.scheduler import schedule

NOW = datetime(2026, 1, 2, tzinfo=UTC)


def test_a_huge_active_deadline_is_refused_and_does_not_stop_other_jobs() -> None:
    # The adversarial run's reproduction: 3e11 s was accepted and every pass raised OverflowError.
    poison = running(job("poison", replicas=1, run_policy={"activeDeadlineSeconds": 300_000_000_000}), ["s0-r0-n0"])
    s = snap(cluster(), [poison, job("other", replicas=1)], pods=worker_pods(poison))
    plans = {p.key[1]: p for p in decide_all(s, NOW, schedule(s, NOW))}
    assert plans["other"].create_gang is not None
    invalid = next(c for c in plans["poison"].status.conditions if c.type == cond.INVALID)
    assert "spec.runPolicy.activeDeadlineSeconds" in invalid.message


def test_a_huge_ttl_is_refused_and_does_not_stop_other_jobs() -> None:
    done = job("done", run_policy={"ttlSecondsAfterFinished": 300_000_000_000})
    done["status"] = {"phase": "Succeeded", "completionTime": T0, "startTime": T0}
    s = snap(cluster(), [done, job("other", replicas=1)])
    plans = {p.key[1]: p for p in decide_all(s, NOW + timedelta(days=1), schedule(s, NOW))}
    assert plans["other"].create_gang is not None
    assert "spec.runPolicy.ttlSecondsAfterFinished" in plans["done"].status.message


def _raise_for(name: str, real: Any) -> Any:
    def wrapped(info: Any, *args: Any, **kwargs: Any) -> Any:
        if info.key[1] == name:
            raise OverflowError("date value out of range")
        return real(info, *args, **kwargs)

    return wrapped


def test_a_job_whose_scheduling_raises_is_set_aside_and_the_others_are_placed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "locality_deadline", _raise_for("poison", scheduler.locality_deadline))
    s = snap(cluster(), [job("a", replicas=1), job("poison", replicas=1), job("z", replicas=1)])
    decisions = schedule(s, NOW)
    assert set(decisions.placements) == {("default", "a"), ("default", "z")}
    plans = {p.key[1]: p for p in decide_all(s, NOW, decisions)}
    assert plans["a"].create_gang is not None
    assert plans["z"].create_gang is not None
    poison = plans["poison"]
    assert poison.create_gang is None
    assert not poison.delete_pods
    invalid = next(c for c in poison.status.conditions if c.type == cond.INVALID)
    assert invalid.reason == cond.REASON_EVALUATION_FAILED
    assert "OverflowError: date value out of range" in invalid.message
    assert [e.reason for e in poison.events] == [cond.REASON_EVALUATION_FAILED]
    assert poison.events[0].warning


def test_a_running_job_whose_lifecycle_raises_keeps_its_gang_and_others_go_on(monkeypatch: pytest.MonkeyPatch) -> None:
    real = lifecycle.gang_failure

    def failing(snapshot: Any, key: Any, *args: Any) -> Any:
        if key[1] == "poison":
            raise RuntimeError("boom")
        return real(snapshot, key, *args)

    monkeypatch.setattr(lifecycle, "gang_failure", failing)
    poison = running(job("poison", replicas=1), ["s0-r0-n0"])
    s = snap(cluster(), [poison, job("other", replicas=1)], pods=worker_pods(poison))
    plans = {p.key[1]: p for p in decide_all(s, NOW, schedule(s, NOW))}
    assert plans["other"].create_gang is not None
    assert plans["poison"].status.phase == "Running"  # nothing torn down for an evaluation error
    assert not plans["poison"].delete_pods
    assert "RuntimeError: boom" in (plans["poison"].status.message or "")
