"""When a restarted gang may be placed again: exponential backoff after each gang failure."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from powertrain.api.trainingjob import TrainingJob
from powertrain.core import conditions as cond

BASE_SECONDS: Final = 10.0
CAP_SECONDS: Final = 300.0


def backoff_seconds(restarts: int) -> float:
    """10 s before the first restart, doubling each time, capped at 5 minutes."""
    if restarts <= 0:
        return 0.0
    return min(BASE_SECONDS * 2.0 ** min(restarts - 1, 30), CAP_SECONDS)


TRANSIENT_BASE_SECONDS: Final = 1.0
TRANSIENT_CAP_SECONDS: Final = 30.0


def transient_backoff_seconds(failures: int) -> float:
    """After a failure the API may not repeat (a conflict, an overloaded or unreachable server): 1 s, doubling,
    capped at 30 s, so the gang starts soon after the trouble ends without hammering a struggling server."""
    if failures <= 0:
        return 0.0
    return min(TRANSIENT_BASE_SECONDS * 2.0 ** min(failures - 1, 30), TRANSIENT_CAP_SECONDS)


def restart_not_before(job: TrainingJob) -> datetime | None:
    """The earliest time the job's next gang may start, while it is backing off after a failure."""
    status = job.status
    if status is None:
        return None
    for condition in status.conditions:
        if condition.type == cond.RESTARTING and condition.status == "True" and condition.last_transition_time:
            return condition.last_transition_time + timedelta(seconds=backoff_seconds(status.restarts or 0))
    return None
