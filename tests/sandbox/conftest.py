"""Fixtures for the sandbox API server's conformance suite: a real server on a background event loop, a
kubeconfig for it, and the real `kubernetes` client and `kubectl` binary pointed at it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from apiserver_helpers import ServerThread, write_kubeconfig
from kubernetes import client as k8s
from kubernetes.config import new_client_from_config

from powertrain.sandbox.testing import Kubectl, find_kubectl

REPO = Path(__file__).resolve().parents[2]


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


@pytest.fixture(scope="module")
def kubectl(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    binary = find_kubectl()
    if binary is None:
        pytest.skip("kubectl is not installed: the kubectl conformance tests need the real kubectl binary")
    return Kubectl(binary, kubeconfig, home=tmp_path_factory.mktemp("kubectl-home"))
