"""Subcommands of the `powertrain` CLI: each module has `register(subparsers)` and sets `handler`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

SubParsers = Any  # argparse's _SubParsersAction is private; this keeps signatures readable


def not_built(part: str, issue: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        print(
            f"powertrain {args.command}: the {part} is not built yet (tracked in the issue '{issue}').",
            file=sys.stderr,
        )
        return 2

    return handler
