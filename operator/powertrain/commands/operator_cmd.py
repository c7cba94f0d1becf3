"""`powertrain operator`: the kopf operator (named operator_cmd: a module named `operator` would shadow stdlib)."""

from __future__ import annotations

from powertrain.commands import SubParsers, not_built


def register(sub: SubParsers) -> None:
    p = sub.add_parser("operator", help="run the operator (reconciles TrainingJobs into GPU gangs)")
    p.set_defaults(handler=not_built("operator", "Operator core"))
