from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "powertrain", "operator", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_a_missing_kubeconfig_is_named_not_found_not_a_traceback(tmp_path: Path) -> None:
    result = run("--kubeconfig", str(tmp_path / "missing"), "--standalone")
    assert result.returncode == 2
    assert f"kubeconfig file {tmp_path / 'missing'} not found (given with --kubeconfig)" in result.stderr
    assert "Traceback" not in result.stderr
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "gone"), "HOME": str(tmp_path)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    from_env = run("--standalone", env=env)
    assert from_env.returncode == 2
    assert f"kubeconfig file {tmp_path / 'gone'} not found (named by the KUBECONFIG environment variable)" in (
        from_env.stderr
    )
    env.pop("KUBECONFIG")
    nothing = run("--standalone", env=env)
    assert nothing.returncode == 2
    assert f"kubeconfig file {tmp_path / '.kube/config'} not found" in nothing.stderr
    assert "pass --kubeconfig FILE or set KUBECONFIG" in nothing.stderr


def test_a_mistyped_flag_gets_the_flag_that_was_meant() -> None:
    result = run("--metric-port", "1")
    assert result.returncode == 2
    assert "powertrain operator: error: unrecognized arguments: --metric-port" in result.stderr
    assert "did you mean --metrics-port" in result.stderr
    unknown = run("--standalone", "--frobnicate")
    assert "unrecognized arguments: --frobnicate" in unknown.stderr
    assert "did you mean" not in unknown.stderr  # nothing close: no guess


@pytest.mark.parametrize("flag", ["--metrics-port", "--liveness-port"])
def test_a_port_in_use_names_the_flag_and_exits_non_zero(flag: str, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(KUBECONFIG)  # never contacted: the ports are checked first
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--metrics-port": "0", "--liveness-port": "0", flag: str(port)}
        result = run("--kubeconfig", str(kubeconfig), "--standalone", *(x for kv in ports.items() for x in kv))
    assert result.returncode == 1
    assert f"port {port} is not available" in result.stderr
    assert f"choose another with {flag} PORT, or {flag} 0 to disable it" in result.stderr
    assert "Traceback" not in result.stderr


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:9"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def test_bad_flags_are_refused_with_what_is_allowed() -> None:
    result = run("--metrics-port", "70000")
    assert result.returncode == 2
    assert "outside 0..65535" in result.stderr
    both = run("--peering", "x", "--standalone")
    assert both.returncode == 2
    assert "not allowed with argument" in both.stderr
