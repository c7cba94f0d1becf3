"""`powertrain agent`: the node agent (telemetry, exporter, power-cap actuator)."""

from __future__ import annotations

from powertrain.commands import SubParsers, not_built


def register(sub: SubParsers) -> None:
    p = sub.add_parser("agent", help="run the node agent on a GPU node")
    p.set_defaults(handler=not_built("node agent", "Node agent"))
