"""`powertrain agent`: the node agent (telemetry, exporter, power-cap actuator). Lives in powertrain_agent."""

from __future__ import annotations

import argparse

from powertrain.commands import SubParsers


def register(sub: SubParsers) -> None:
    from powertrain_agent.cli import add_arguments  # argparse only: no NVML, no Kubernetes client

    p = sub.add_parser("agent", help="run the node agent on a GPU node")
    add_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from powertrain_agent.cli import run as run_agent

    return run_agent(args)
