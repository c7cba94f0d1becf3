"""`powertrain agent` command line: clear refusals, and a clean SIGTERM shutdown of a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from powertrain.cli import main
from powertrain_agent.metrics import markdown_table

REPO = Path(__file__).resolve().parents[2]


def test_node_name_is_required(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    assert main(["agent", "--backend", "sim", "--no-kube"]) == 2
    assert "--node-name is required (or set NODE_NAME)" in capsys.readouterr().err


def test_replay_without_a_file_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agent", "--node-name", "n", "--backend", "replay", "--no-kube", "--metrics-port", "0"]) == 1
    assert "--backend replay needs --replay-file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "0"], "'0' must be greater than zero"),
        (["--metrics-port", "70000"], "must lie within 0..65535"),
        (["--backend", "dcgm"], "invalid choice: 'dcgm'"),
    ],
)
def test_bad_flags_say_what_is_allowed(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["agent", "--node-name", "n", *args])
    assert message in capsys.readouterr().err


def test_sigterm_stops_the_agent_cleanly(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "powertrain_agent",
            "--node-name",
            "n1",
            "--backend",
            "sim",
            "--no-kube",
            "--metrics-port",
            "0",
            "--interval",
            "0.1",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        for line in proc.stderr:  # wait until it is sampling, without sleeping a guessed time
            if "powertrain agent" in line and "backend sim" in line:
                break
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_docs_list_every_metric() -> None:
    assert markdown_table() in (REPO / "docs" / "agent.md").read_text()
