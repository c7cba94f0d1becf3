"""Command-line parsing that answers a mistyped flag with the flag that was probably meant.

argparse says only "unrecognized arguments: --metric-port 1", and says it as the top-level program even when
the flag belongs to a subcommand. Shared by `powertrain` and `powertrain-agent` (standard library only).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every flag a parser accepts, its subcommands' flags included."""
    found: list[str] = []
    for action in parser._actions:
        found.extend(s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.extend(option_strings(sub))
    return sorted(set(found))


def unrecognized(parser: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """argparse's message for `extras`, with "did you mean ...?" for each flag that is close to a real one."""
    known = option_strings(parser)
    hints: list[str] = []
    for arg in extras:
        if not arg.startswith("-"):
            continue
        flag = arg.split("=", 1)[0]
        close = difflib.get_close_matches(flag, known, n=1, cutoff=0.75)
        if close:
            hints.append(f"did you mean {close[0]} instead of {flag}?")
    message = f"unrecognized arguments: {' '.join(extras)}"
    return f"{message} ({'; '.join(hints)})" if hints else message


def chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost (sub)command parser the parsed arguments chose (`powertrain sandbox up` -> up's)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None) if action.dest != argparse.SUPPRESS else None
            if isinstance(name, str) and name in action.choices:
                return chosen_parser(action.choices[name], args)
    return parser


def _own_flags(parser: argparse.ArgumentParser) -> list[str]:
    return [s for action in parser._actions for s in action.option_strings]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _mistyped_before_parsing(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[argparse.ArgumentParser, list[str]] | None:
    """Flags close to a real one, found before argparse parses: it would first complain about a required flag
    the user did type, only misspelled. Subcommands are followed by name."""
    target, unknown = parser, []
    for token in argv:
        if token == "--":
            break
        subs = _subcommands(target)
        if token in subs:
            target = subs[token]
            continue
        if not token.startswith("--"):
            continue
        flag = token.split("=", 1)[0]
        if not any(known.startswith(flag) for known in _own_flags(target)):  # argparse accepts prefixes
            unknown.append(token)
    if unknown and "did you mean" in unrecognized(target, unknown):
        return target, unknown
    return None


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """parser.parse_args, except that unknown flags are reported by the (sub)command they were given to, with
    a suggestion of the flag that was probably meant."""
    mistyped = _mistyped_before_parsing(parser, sys.argv[1:] if argv is None else argv)
    if mistyped is not None:
        target, unknown = mistyped
        target.error(unrecognized(target, unknown))
    args, extras = parser.parse_known_args(argv)
    if extras:
        target = chosen_parser(parser, args)
        target.error(unrecognized(target, extras))
    return args
