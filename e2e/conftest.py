"""End-to-end tests: real processes (powertrain, kubectl, kopf) against the sandbox cluster."""

from __future__ import annotations

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
