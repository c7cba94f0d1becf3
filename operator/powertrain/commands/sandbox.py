"""`powertrain sandbox up|down`: a local Kubernetes-API-compatible cluster with simulated GPU nodes."""

from __future__ import annotations

from powertrain.commands import SubParsers, not_built


def register(sub: SubParsers) -> None:
    p = sub.add_parser("sandbox", help="run a local sandbox cluster with simulated GPU nodes")
    p.set_defaults(handler=not_built("sandbox", "Local sandbox cluster"))
