"""Fixtures for the sandbox API server's conformance suite: a real server on a background event loop, a
kubeconfig for it, and the real `kubernetes` client and `kubectl` binary pointed at it."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from apiserver_helpers import ServerThread, write_kubeconfig
from kubernetes import client as k8s
from kubernetes.config import new_client_from_config

REPO = Path(__file__).resolve().parents[2]
KUBECTL = "/usr/bin/kubectl"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    st = ServerThread(bookmark_interval=0.5)
    st.start()
    yield st
    st.stop()


@pytest.fixture(scope="module")
def kubeconfig(sandbox: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_kubeconfig(tmp_path_factory.mktemp("kube") / "config", sandbox.server)


@pytest.fixture(scope="module")
def api(kubeconfig: Path) -> Iterator[k8s.ApiClient]:
    c = new_client_from_config(config_file=str(kubeconfig))
    yield c
    c.close()


@pytest.fixture
def ns(api: k8s.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    k8s.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


@pytest.fixture(scope="module")
def crds(api: k8s.ApiClient) -> None:
    """Powertrain's three CRDs, loaded from crds/ as a user would."""
    ext = k8s.ApiextensionsV1Api(api)
    for f in sorted((REPO / "crds").glob("*.yaml")):
        body = yaml.safe_load(f.read_text())
        try:
            ext.create_custom_resource_definition(body)
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise


class Kubectl:
    def __init__(self, kubeconfig: Path, cache: Path) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(cache)}
        self.cache = cache

    def argv(self) -> list[str]:
        return [KUBECTL, f"--cache-dir={self.cache / 'cache'}"]

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [KUBECTL, f"--cache-dir={self.cache / 'cache'}", *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture(scope="module")
def kubectl(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    if not shutil.which(KUBECTL) and not Path(KUBECTL).exists():
        pytest.skip(f"{KUBECTL} is not installed: the kubectl conformance tests need the real kubectl binary")
    return Kubectl(kubeconfig, tmp_path_factory.mktemp("kubectl-home"))
