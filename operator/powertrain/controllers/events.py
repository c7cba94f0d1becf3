"""Kubernetes Events on TrainingJobs: every decision the operator takes is visible in `kubectl describe tj`."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Any

from powertrain.api import constants as c
from powertrain.controllers.kube import EVENTS, ApiError, KubeClient

log = logging.getLogger("powertrain.events")

COMPONENT = "powertrain-operator"


def event_body(
    job: dict[str, Any], reason: str, message: str, now: datetime, *, warning: bool = False
) -> dict[str, Any]:
    meta = job.get("metadata") or {}
    ns = str(meta.get("namespace") or "default")
    # Deterministic name per (job incarnation, reason, message, second): a post retried within the pass is a 409,
    # not a duplicate, while the same decision taken again later (a second placement in rack r1) is recorded.
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    key = f"{meta.get('uid')}/{reason}/{message}/{stamp}"
    digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:12]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta.get('name')}.{digest}", "namespace": ns},
        "involvedObject": {
            "apiVersion": c.API_VERSION,
            "kind": "TrainingJob",
            "name": meta.get("name"),
            "namespace": ns,
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


async def post_event(
    client: KubeClient, job: dict[str, Any], reason: str, message: str, now: datetime, *, warning: bool = False
) -> None:
    """Best effort: an event that cannot be posted is logged, never fails the decision it describes."""
    body = event_body(job, reason, message, now, warning=warning)
    try:
        await client.create(EVENTS, body, body["metadata"]["namespace"])
    except ApiError as exc:
        if not exc.conflict:
            log.warning("could not post event %s on %s: %s", reason, body["involvedObject"]["name"], exc)
