"""`powertrain simulate`: replay a cluster trace through the scheduling core, with no Kubernetes."""

from __future__ import annotations

from powertrain.commands import SubParsers, not_built


def register(sub: SubParsers) -> None:
    p = sub.add_parser("simulate", help="replay a cluster trace through the scheduling core")
    p.set_defaults(handler=not_built("trace simulator", "Simulator"))
