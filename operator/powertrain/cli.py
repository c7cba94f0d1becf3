"""The `powertrain` console command. Each subcommand lives in its own module under powertrain.commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from powertrain import __version__
from powertrain.argsuggest import parse_args
from powertrain.commands import agent, convert, crds, demo, operator_cmd, sandbox, simulate

SUBCOMMANDS = (operator_cmd, agent, sandbox, demo, crds, simulate, convert)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="powertrain",
        description="Cluster-wide GPU training resource management for Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"powertrain {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130
