"""Which of the resource types the operator needs the API server serves, read from discovery.

Discovery (`/apis/GROUP/VERSION`) needs no RBAC beyond being authenticated, unlike reading the CRD objects,
and it is what decides whether a watch can work: a type is there when the API server serves it.
"""

from __future__ import annotations

from collections.abc import Sequence

from powertrain.controllers.kube import (
    CLUSTER_PEERINGS,
    PEERINGS,
    POLICIES,
    TELEMETRY,
    TRAINING_JOBS,
    KubeClient,
    Resource,
)
from powertrain.kubeclient import ApiError

# Every CRD the operator watches; `kubectl apply -f crds/` (or the chart) installs all three.
POWERTRAIN_TYPES: tuple[Resource, ...] = (TRAINING_JOBS, TELEMETRY, POLICIES)

INSTALL_HINT = "install them with `kubectl apply -f crds/` from the Powertrain repository, or the Helm chart"


def crd_name(res: Resource) -> str:
    return f"{res.plural}.{res.group}"


def peering_type(namespaced: bool) -> Resource:
    """The kopf peering type a replica uses: namespaced operators peer in their namespace."""
    return PEERINGS if namespaced else CLUSTER_PEERINGS


async def missing_types(client: KubeClient, wanted: Sequence[Resource]) -> list[str]:
    """The CRD names (`plural.group`) of the wanted types the API server does not serve now, in wanted order.

    An error other than 404 is raised: "cannot tell" must not be reported as "missing".
    """
    served: dict[tuple[str, str], set[str]] = {}
    for res in wanted:
        key = (res.group, res.version)
        if key in served:
            continue
        try:
            found = await client.request("GET", f"/apis/{res.group}/{res.version}")
        except ApiError as exc:
            if not exc.not_found:
                raise
            found = {}
        served[key] = {r.get("name", "") for r in found.get("resources") or [] if isinstance(r, dict)}
    return [crd_name(res) for res in wanted if res.plural not in served[(res.group, res.version)]]
