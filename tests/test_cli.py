"""The `powertrain` command: every subcommand exists and answers without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from powertrain import __version__
from powertrain.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


@pytest.mark.parametrize("command", ["operator", "agent", "sandbox", "demo", "crds", "simulate", "convert"])
def test_every_subcommand_has_help(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "powertrain", command, "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "usage: powertrain" in result.stdout
    assert "Traceback" not in result.stderr


def test_no_command_prints_usage_not_traceback() -> None:
    result = subprocess.run([sys.executable, "-m", "powertrain"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "usage: powertrain" in result.stderr
    assert "Traceback" not in result.stderr
