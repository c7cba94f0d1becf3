"""Run the real `powertrain operator` as a subprocess against a cluster, for e2e tests, the demo and benchmarks.

Also small synchronous API helpers (the `kubernetes` client) to read what the operator did, and a poller that
waits for a condition with a deadline instead of sleeping a fixed time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    """One `powertrain operator` process; kill() is SIGKILL (no cleanup), stop() is SIGTERM (graceful)."""

    def __init__(
        self,
        kubeconfig: Path | str,
        log_path: Path | str,
        *,
        peering: str | None = None,
        priority: int | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.kubeconfig = str(kubeconfig)
        self.log_path = Path(log_path)
        self.peering = peering
        self.priority = priority
        self.extra = extra or []
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "powertrain", "operator",
            "--kubeconfig", self.kubeconfig,
            "--metrics-port", str(self.metrics_port),
            "--liveness-port", str(self.liveness_port),
            "--log-format", "json",
        ]  # fmt: skip
        if self.peering:
            cmd += ["--peering", self.peering, "--peering-lifetime", "5"]
        else:
            cmd += ["--standalone"]
        if self.priority is not None:
            cmd += ["--priority", str(self.priority)]
        return cmd + self.extra

    def start(self) -> OperatorProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2) -> T:
    """Poll until `probe` returns something truthy; fail with `what` and the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


# Building and reading TrainingJobs in tests --------------------------------------------------------------

RUN_SECONDS = "sandbox.powertrain.dev/run-seconds"
EXIT_CODE = "sandbox.powertrain.dev/exit-code"


def training_job(
    name: str,
    *,
    replicas: int = 1,
    gpus: int = 8,
    level: str = "rack",
    mode: str = "Preferred",
    priority: int = 0,
    queue: str | None = None,
    run_seconds: float | None = None,
    exit_code: int | None = None,
    backoff_limit: int | None = None,
    suspend: bool | None = None,
    grace_seconds: int | None = None,
) -> dict[str, Any]:
    """A TrainingJob manifest whose sandbox workers run `run_seconds` then exit with `exit_code`."""
    annotations: dict[str, str] = {}
    if run_seconds is not None:
        annotations[RUN_SECONDS] = str(run_seconds)
    if exit_code is not None:
        annotations[EXIT_CODE] = str(exit_code)
    run_policy: dict[str, Any] = {}
    if backoff_limit is not None:
        run_policy["backoffLimit"] = backoff_limit
    if suspend is not None:
        run_policy["suspend"] = suspend
    pod_spec: dict[str, Any] = {"containers": [{"name": "trainer", "image": "example/train:1", "command": ["train"]}]}
    if grace_seconds is not None:
        pod_spec["terminationGracePeriodSeconds"] = grace_seconds
    spec: dict[str, Any] = {
        "replicas": replicas,
        "gpusPerReplica": gpus,
        "topology": {"level": level, "mode": mode},
        "priority": priority,
        "template": {"metadata": {"annotations": annotations}, "spec": pod_spec},
    }
    if queue:
        spec["queue"] = queue
    if run_policy:
        spec["runPolicy"] = run_policy
    return {
        "apiVersion": "powertrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }
