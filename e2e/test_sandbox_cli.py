"""`powertrain sandbox up/down` as a user runs it: detached, kubectl against it, the Alibaba fleet, bad flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from powertrain.sandbox.testing import Kubectl

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]


def powertrain(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "powertrain", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/cmdline").exists() and b"sandbox" in Path(f"/proc/{pid}/cmdline").read_bytes()


def test_detached_sandbox_serves_kubectl_then_goes_down(tmp_path: Path, kubectl_binary: str) -> None:
    state = tmp_path / "state"
    up = powertrain(
        "sandbox", "up", "--detach", "--nodes", "3", "--topology", "rack=3", "--state-dir", str(state), cwd=tmp_path
    )
    assert up.returncode == 0, up.stderr
    info = json.loads((state / "state.json").read_text())
    try:
        assert f"export KUBECONFIG={state / 'kubeconfig'}" in up.stdout
        kubectl = Kubectl(kubectl_binary, Path(info["kubeconfig"]))
        nodes = kubectl("get", "nodes", "-L", "fabric.topograph.run/tier-0").stdout
        assert nodes.count("Ready") == 3
        assert "rack-2" in nodes
        # CRDs are installed: the examples apply right away.
        applied = kubectl("apply", "-f", str(REPO / "examples"))
        assert "trainingjob.powertrain.dev/llm-pretrain created" in applied.stdout
        again = powertrain("sandbox", "up", "--detach", "--state-dir", str(state), cwd=tmp_path)
        assert again.returncode == 1
        assert "already running" in again.stderr
    finally:
        down = powertrain("sandbox", "down", "--state-dir", str(state), cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert "Stopped the sandbox" in down.stdout
    assert not pid_alive(int(info["pid"]))
    assert not (state / "state.json").exists()
    assert powertrain("sandbox", "down", "--state-dir", str(state), cwd=tmp_path).returncode == 0


def test_alibaba_fleet_comes_up_with_every_node(tmp_path: Path, kubectl_binary: str) -> None:
    state = tmp_path / "state"
    began = time.perf_counter()
    # `alibaba`: the fleet packaged with powertrain, no path needed.
    up = powertrain("sandbox", "up", "--detach", "--cluster", "alibaba", "--state-dir", str(state), cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    try:
        info = json.loads((state / "state.json").read_text())
        assert info["nodes"] == 1213
        kubectl = Kubectl(kubectl_binary, Path(info["kubeconfig"]))
        listed = kubectl.json("get", "nodes")["items"]
        assert len(listed) == 1213
        products = {n["metadata"]["labels"].get("nvidia.com/gpu.product") for n in listed}
        assert {"Tesla-T4", "Tesla-P100-PCIE-16GB", "Alibaba-G2", "NVIDIA-A10"} <= products
        print(f"alibaba fleet: up in {time.perf_counter() - began:.1f} s (server start-up {info['startupSeconds']} s)")
    finally:
        powertrain("sandbox", "down", "--state-dir", str(state), cwd=tmp_path)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--nodes", "many"], "argument --nodes: invalid int value"),
        (["--topology", "rack=x"], "--topology: rack='x' is invalid"),
        (["--gpus-per-node", "100"], "--gpus-per-node: 100 is invalid"),
        (["--port", "70000"], "--port: 70000 is invalid"),
        (["--cluster", "/nonexistent/nodes.yaml"], "cannot read /nonexistent/nodes.yaml"),
    ],
)
def test_bad_flags_exit_2_with_a_message(tmp_path: Path, flags: list[str], message: str) -> None:
    result = powertrain("sandbox", "up", "--state-dir", str(tmp_path), *flags, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
