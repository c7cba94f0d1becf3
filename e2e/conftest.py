"""End-to-end tests: real processes (powertrain, kubectl, kopf) against the sandbox cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from powertrain.controllers.testing import OperatorProcess
from powertrain.sandbox.cluster import Sandbox

pytest_plugins = ["powertrain.sandbox.testing"]


@pytest.fixture
def operator(sandbox: Sandbox, tmp_path: Path) -> Iterator[OperatorProcess]:
    """A real `powertrain operator` process against this test's sandbox; its log is printed when a test fails."""
    with OperatorProcess(sandbox.kubeconfig_path, tmp_path / "operator.log") as op:
        yield op
    print(op.log_text()[-5000:])


@pytest.fixture
def agent_processes(sandbox: Sandbox, tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """One real sim agent process per sandbox node, attributing GPUs through the node's kubelet pod-resources
    socket (the sandbox needs `SandboxConfig(pod_resources=True)`), reporting every 1-2 s; logs printed at the end."""
    procs = []
    for node in sandbox.node_names:
        cmd = [sys.executable, "-m", "powertrain_agent", "--backend", "sim"]
        cmd += ["--kubeconfig", str(sandbox.kubeconfig_path)]
        cmd += ["--pod-resources-socket", str(sandbox.pod_resources_socket(node))]
        cmd += ["--interval", "0.2", "--slow-interval", "0.5", "--report-min-interval", "1"]
        cmd += ["--report-max-interval", "2", "--metrics-port", "0"]
        env = {**os.environ, "NODE_NAME": node, "PYTHONUNBUFFERED": "1"}
        with (tmp_path / f"agent-{node}.log").open("w") as out:
            procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True))
    yield procs
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=20)
    for log in sorted(tmp_path.glob("agent-*.log")):
        print(log.name, log.read_text()[-2000:])
