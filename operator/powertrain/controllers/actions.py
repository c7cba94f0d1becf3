"""What one scheduling pass asks the API to do: plain data, so the pass is testable without a cluster."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]


@dataclass(frozen=True)
class JobRef:
    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class EventNote:
    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class CreateGang:
    """Create the headless Service and every worker pod, then bind them all; never bind a partial gang."""

    job: JobRef
    service: JSON
    pods: tuple[JSON, ...]
    nodes: tuple[str, ...]  # node for each pod, by rank
    queue: str
    wait_seconds: float | None = None
    grow: bool = False
    """Only new ranks of a running elastic gang: counted as a resize, not a placement."""


@dataclass(frozen=True)
class DeletePods:
    """Delete these worker pods of the job (SIGTERM, then SIGKILL after the grace period)."""

    job: JobRef
    pods: tuple[tuple[str, str | None], ...]  # (name, uid): the uid makes a retried delete spare a newer pod
    reason: str
    grace_period_seconds: int | None = None


@dataclass
class JobActions:
    job: JobRef
    add_finalizer: bool = False
    remove_finalizer: bool = False
    delete_pods: DeletePods | None = None
    gang_generation: int | None = None  # recorded on the job (annotation) before its pods are created
    create_gang: CreateGang | None = None
    status: JSON | None = None  # the full desired status, written only when it differs from the observed one
    events: list[EventNote] = field(default_factory=list)
    delete_job: bool = False  # TTL after finish
    suspend_job: bool = False  # set spec.runPolicy.suspend (an idle reservation under the policy's idle: Act)
    finalizers: tuple[str, ...] = ()  # observed finalizers (to add/remove ours without clobbering others')
    resource_version: str | None = None
