"""`powertrain agent` command line: clear refusals, and a clean SIGTERM shutdown of a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from powertrain.cli import main
from powertrain_agent.metrics import markdown_table

REPO = Path(__file__).resolve().parents[2]


def test_node_name_is_required(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    assert main(["agent", "--backend", "sim", "--no-kube"]) == 2
    assert "--node-name is required (or set NODE_NAME)" in capsys.readouterr().err


def test_replay_a_missing_file_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["agent", "--node-name", "n", "--backend", "replay", "--no-kube", "--metrics-port", "0"]
    assert main([*args, "--replay-file", str(tmp_path / "nope.csv")]) == 1
    assert f"replay file {tmp_path / 'nope.csv'}: No such file" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_replay_without_a_file_plays_the_packaged_h200_recording(tmp_path: Path) -> None:
    """After `pip install`, `--backend replay` needs no path: it replays the H200 trace shipped in the package."""
    port = free_port()
    argv = [sys.executable, "-m", "powertrain", "agent", "--node-name", "n1", "--backend", "replay", "--gpus", "2"]
    argv += ["--no-kube", "--metrics-port", str(port), "--metrics-address", "127.0.0.1", "--interval", "0.1"]
    proc = subprocess.Popen(
        argv,
        cwd=tmp_path,  # nothing relative to the checkout
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if "backend replay" in line:
                break
        else:
            pytest.fail(f"the agent exited {proc.wait()} before it started sampling")
        power: list[float] = []
        deadline = time.monotonic() + 60
        while not power and time.monotonic() < deadline:
            time.sleep(0.3)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                text = r.read().decode()
            samples = [line for line in text.splitlines() if line.startswith("powertrain_gpu_power_watts{")]
            power = [float(line.rsplit(" ", 1)[1]) for line in samples]
        # Two GPUs replaying the recorded card: between its idle draw (~77 W) and its 700 W limit.
        assert len(power) == 2, power
        assert all(70 < w <= 700 for w in power), power
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


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
