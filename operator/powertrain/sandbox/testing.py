"""pytest fixtures for tests that need a cluster: a sandbox per test or per module, and a kubectl helper.

Use them with `pytest_plugins = ["powertrain.sandbox.testing"]` in a top-level conftest (e2e/conftest.py does).

* `sandbox`: a fresh sandbox per test, configured by the `sandbox_config` fixture (override it in a module or
  conftest to change nodes or timings; the default is 4 nodes x 8 GPUs with fast kubelet timings).
* `module_sandbox`: one sandbox for a whole module, configured by a module-level `SANDBOX_CONFIG` if present.
* `kubectl` / `module_kubectl`: run /usr/bin/kubectl (or kubectl on PATH) against those sandboxes; a test that
  uses them is skipped, saying why, where kubectl is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from powertrain.sandbox.cluster import Sandbox, SandboxConfig
from powertrain.sandbox.kubelet import KubeletConfig

T = TypeVar("T")

FAST_KUBELET = KubeletConfig(start_delay=0.05, max_grace_seconds=0.5, not_ready_eviction_seconds=2.0)
DEFAULT_CONFIG = SandboxConfig(nodes=4, gpus_per_node=8, kubelet=FAST_KUBELET)


def find_kubectl() -> str | None:
    found = shutil.which("kubectl")
    if found:
        return found
    return "/usr/bin/kubectl" if os.access("/usr/bin/kubectl", os.X_OK) else None


class Kubectl:
    """kubectl bound to one kubeconfig: `kubectl("get", "nodes")`, `kubectl.json("get", "pods")`.

    `home`: a private HOME and discovery cache, for servers that come and go on reused ports (a shared
    ~/.kube/cache would answer one server's discovery with another's).
    """

    def __init__(self, binary: str, kubeconfig: Path, home: Path | None = None) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        self._argv = [binary]
        if home is not None:
            self.env["HOME"] = str(home)
            self._argv.append(f"--cache-dir={home / 'cache'}")

    def argv(self) -> list[str]:
        """The command line before kubectl's own arguments, for callers that run it themselves (e.g. `get -w`)."""
        return list(self._argv)

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self._argv, *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)

    def apply(self, *objs: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """`kubectl apply -f -` of these objects, as a user would apply a manifest."""
        return self("apply", "-f", "-", input=yaml.safe_dump_all(objs))


def wait_for(condition: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.05, what: str = "") -> T:
    """Poll until `condition()` returns something truthy and return it; AssertionError after `timeout` seconds.

    The timeout only keeps a broken test from hanging; it is generous and never the thing being tested.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or condition}")
        time.sleep(interval)


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return DEFAULT_CONFIG


@pytest.fixture
def sandbox(sandbox_config: SandboxConfig) -> Iterator[Sandbox]:
    with Sandbox(sandbox_config) as sb:
        yield sb


@pytest.fixture(scope="module")
def module_sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    config = getattr(request.module, "SANDBOX_CONFIG", DEFAULT_CONFIG)
    with Sandbox(config) as sb:
        yield sb


@pytest.fixture(scope="session")
def kubectl_binary() -> str:
    binary = find_kubectl()
    if binary is None:
        pytest.skip("kubectl is not installed (looked on PATH and at /usr/bin/kubectl); install it to run this test")
    return binary


@pytest.fixture
def kubectl(kubectl_binary: str, sandbox: Sandbox) -> Kubectl:
    return Kubectl(kubectl_binary, sandbox.kubeconfig_path)


@pytest.fixture(scope="module")
def module_kubectl(kubectl_binary: str, module_sandbox: Sandbox) -> Kubectl:
    return Kubectl(kubectl_binary, module_sandbox.kubeconfig_path)
