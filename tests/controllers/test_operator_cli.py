from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "powertrain", "operator", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_no_api_server_is_a_clear_message_not_a_traceback(tmp_path: Path) -> None:
    result = run("--kubeconfig", str(tmp_path / "missing"), "--standalone")
    assert result.returncode == 2
    assert "cannot find the API server" in result.stderr
    assert str(tmp_path / "missing") in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flags_are_refused_with_what_is_allowed() -> None:
    result = run("--metrics-port", "70000")
    assert result.returncode == 2
    assert "outside 0..65535" in result.stderr
    both = run("--peering", "x", "--standalone")
    assert both.returncode == 2
    assert "not allowed with argument" in both.stderr
