"""Kubeflow PyTorchJobs, converted by `powertrain convert`, run on the sandbox with the real operator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from powertrain.api import constants as c
from powertrain.controllers.testing import RUN_SECONDS, OperatorProcess, wait_for
from powertrain.sandbox.cluster import SandboxConfig
from powertrain.sandbox.testing import FAST_KUBELET, Kubectl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

KUBEFLOW = Path(__file__).resolve().parents[1] / "examples" / "kubeflow"


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(nodes=4, gpus_per_node=8, topology="zone=1,spine=1,rack=1", kubelet=FAST_KUBELET)


def converted(path: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "powertrain", "convert", "-f", str(path)], capture_output=True, text=True, check=True
    )
    job: dict[str, Any] = yaml.safe_load(result.stdout)
    return job


@pytest.mark.parametrize(
    ("example", "name", "gpus"),
    [("pytorch-simple.yaml", "pytorch-simple", "1"), ("pytorch-elastic-imagenet.yaml", "elastic-imagenet", "4")],
)
def test_a_converted_pytorchjob_runs_as_one_gang_with_its_gpus(
    kubectl: Kubectl, operator: OperatorProcess, example: str, name: str, gpus: str
) -> None:
    job = converted(KUBEFLOW / example)
    namespace = job["metadata"].get("namespace", "default")
    if namespace != "default":
        kubectl("create", "namespace", namespace)
    # The sandbox's stand-in for training: each worker runs 2 s, then exits 0.
    job["spec"]["template"].setdefault("metadata", {}).setdefault("annotations", {})[RUN_SECONDS] = "2"
    kubectl.apply(job)
    ns = ["-n", namespace]
    selector = f"{c.JOB_NAME_LABEL}={name}"
    pods = wait_for(
        "both workers",
        lambda: len(items := kubectl.json("get", "pods", *ns, "-l", selector)["items"]) == 2 and items,
    )
    for pod in pods:
        trainer = pod["spec"]["containers"][0]
        assert trainer["name"] == "pytorch"
        assert trainer["resources"]["limits"][c.GPU_RESOURCE] == gpus  # the PyTorchJob's GPUs, not dropped
        env = {e["name"]: e.get("value") for e in trainer["env"]}
        elastic = job["spec"].get("elastic")
        if elastic:
            # torchrun's elastic rendezvous, with the PyTorchJob's bounds and maxRestarts.
            assert env[c.ENV_PET_NNODES] == f"{elastic['minReplicas']}:{elastic['maxReplicas']}"
            assert env[c.ENV_PET_MAX_RESTARTS] == "100"
            assert c.ENV_WORLD_SIZE not in env
        else:
            assert env[c.ENV_WORLD_SIZE] == "2"
        assert env[c.ENV_PET_NPROC_PER_NODE] == gpus
    done = wait_for(
        "phase Succeeded",
        lambda: (s := kubectl.json("get", "tj", *ns, name).get("status") or {}).get("phase") == "Succeeded" and s,
        timeout=60,
    )
    assert done["phase"] == "Succeeded"
