"""Mistyped flags get the flag that was meant, from the subcommand they were given to; the agent names a
missing kubeconfig."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from powertrain.argsuggest import parse_args, unrecognized


def cli(*args: str, module: str = "powertrain") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["sandbox", "up", "--nodez", "3"],
            "powertrain sandbox up: error: unrecognized arguments: --nodez (did you mean --nodes instead of --nodez?)",
        ),
        (
            ["agent", "--kubconfig", "x"],
            "powertrain agent: error: unrecognized arguments: --kubconfig (did you mean --kubeconfig instead",
        ),
        (["simulate", "--polcy", "fifo"], "did you mean --policy"),
    ],
)
def test_subcommands_suggest_the_flag_that_was_meant(argv: list[str], says: str) -> None:
    result = cli(*argv)
    assert result.returncode == 2
    assert says in result.stderr
    assert "Traceback" not in result.stderr


def test_the_agent_program_suggests_too() -> None:
    result = cli("--metric-port", "1", module="powertrain_agent")
    assert result.returncode == 2
    assert (
        "powertrain-agent: error: unrecognized arguments: --metric-port (did you mean --metrics-port" in result.stderr
    )


def test_agent_names_a_missing_kubeconfig(tmp_path: Path) -> None:
    result = cli(
        "agent", "--backend", "sim", "--node-name", "n1", "--metrics-port", "0", "--kubeconfig", str(tmp_path / "nope")
    )
    assert result.returncode == 2
    assert f"kubeconfig file {tmp_path / 'nope'} not found (given with --kubeconfig)" in result.stderr
    assert "--no-kube" in result.stderr
    assert "Traceback" not in result.stderr


def test_each_close_flag_is_suggested_and_values_are_not() -> None:
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--metrics-port")
    parser.add_argument("--log-level")
    message = unrecognized(parser, ["--metric-port=1", "--log-levl", "DEBUG", "7"])
    assert message.startswith("unrecognized arguments: --metric-port=1 --log-levl DEBUG 7 (")
    assert "did you mean --metrics-port instead of --metric-port?" in message
    assert "did you mean --log-level instead of --log-levl?" in message
    with pytest.raises(SystemExit):
        parse_args(parser, ["--metric-port", "1"])
    assert parse_args(parser, ["--metrics-port", "1"]).metrics_port == "1"
