"""Delay scheduling for `Preferred` gangs: wait a bounded time for one domain of the requested level.

A gang that runs inside one rack (or node) trains faster than one scattered over the cluster, often by far more
than a few minutes of queueing cost (Zaharia et al.'s delay scheduling; Tiresias and Gavel make the same case
for consolidating GPU jobs). So a `Preferred` gang that cannot fit inside one domain of its level *now*, but
would start scattered, waits instead (with `placement.costAwareWait`, only while core.locality_cost expects
waiting to finish it sooner) — at most `ClusterTrainingPolicy.spec.placement.preferredWaitSeconds`,
counted from the first pass that held it back for locality (`status.localityWaitStart`), not from submission:
under load a job spends hours queued behind others, and a budget spent there would leave no wait when
locality finally matters — and keeps a domain of its level meanwhile, so the domain drains
towards it. After the bound it is placed wider, level by level. Waiting is pointless, and skipped, when the
gang could never fit inside one domain of its level, when the policy says 0, or when the level is not defined.

Pure: the clock is an argument, and the wait's start comes from the job's status in the snapshot.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from powertrain.api.trainingjob import TOPOLOGY_ORDER
from powertrain.core.placement import GangRequest
from powertrain.core.snapshot import JobInfo, parse_time
from powertrain.core.topology import CLUSTER, TopologyIndex

_WIDTH = {name: i for i, name in enumerate((*TOPOLOGY_ORDER, CLUSTER))}


def waiting_since(info: JobInfo, now: datetime) -> datetime:
    """When the gang first waited for locality since it was last placed (now, if it has not yet)."""
    status = info.job.status
    since = parse_time(status.locality_wait_start) if status and status.locality_wait_start else None
    return since or now


def locality_deadline(
    info: JobInfo, request: GangRequest, topology: TopologyIndex, wait_seconds: int, now: datetime
) -> datetime | None:
    """Until when the gang is held to one domain of its level; None when it is never held."""
    if request.required or wait_seconds <= 0 or topology.level_index(request.level) is None:
        return None
    return waiting_since(info, now) + timedelta(seconds=wait_seconds)


def wider_than_requested(requested: str, placed: str) -> bool:
    """Whether a placement at level `placed` is wider than the job's `spec.topology.level`."""
    return _WIDTH.get(placed, len(_WIDTH)) > _WIDTH.get(requested, len(_WIDTH))


def waiting_message(shortfall: str, level: str, until: datetime, kept: str | None) -> str:
    """Why a Preferred gang waits although it could start scattered now (stable while it waits: one Event)."""
    deadline = until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    where = f"; {kept} is kept for it" if kept else ""
    return (
        f"waiting until {deadline} for one {level} with room (spec.topology.mode Preferred; policy "
        f"placement.preferredWaitSeconds), then placing it wider: {shortfall}{where}"
    )
