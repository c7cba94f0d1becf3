"""Who acts when two operator replicas run: kopf peering, read with kopf's own rule.

kopf pauses its watch streams on a replica that sees a live peer of higher (or equal) priority. Our
scheduling pass runs outside kopf's handlers, so it applies the very same rule to the same peering object
before acting: a replica acts only when no other live peer has a priority >= its own. Replicas get distinct
random priorities by default so exactly one of them leads (kopf freezes both on a tie).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from powertrain.controllers.kube import CLUSTER_PEERINGS, PEERINGS, ApiError, KubeClient


def random_priority() -> int:
    return secrets.randbelow(2**31 - 2) + 1


@dataclass(frozen=True)
class PeeringConfig:
    name: str | None  # None = standalone: this replica always acts
    identity: str
    priority: int
    namespace: str | None = None  # set for a namespaced operator (KopfPeering), None for ClusterKopfPeering


def leads(status: dict[str, Any], identity: str, priority: int, now: datetime) -> bool:
    """kopf's rule: no other live peer with a priority >= ours."""
    for peer_id, peer in status.items():
        if peer_id == identity or not isinstance(peer, dict):
            continue
        try:
            seen = datetime.fromisoformat(str(peer.get("lastseen")))
            lifetime = timedelta(seconds=int(peer.get("lifetime", 60)))
            peer_priority = int(peer.get("priority", 0))
        except (TypeError, ValueError):
            continue
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=UTC)
        if seen + lifetime > now and peer_priority >= priority:
            return False
    return True


async def check_leadership(client: KubeClient, config: PeeringConfig, now: datetime) -> bool:
    if config.name is None:
        return True
    try:
        if config.namespace is None:
            obj = await client.get(CLUSTER_PEERINGS, config.name)
        else:
            obj = await client.get(PEERINGS, config.name, config.namespace)
    except ApiError as exc:
        if exc.not_found:
            return False  # kopf refuses to run without its peering object when --peering is given
        raise
    # Until kopf has announced us, do not act: a peer that started first may hold the lead.
    status = obj.get("status") or {}
    if config.identity not in status:
        return False
    return leads(status, config.identity, config.priority, now)
