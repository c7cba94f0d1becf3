"""`powertrain demo` end to end: sandbox, operator subprocess, examples applied, table, summary, exit code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from powertrain.controllers.testing import training_job

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[1]


def test_demo_runs_the_examples_to_completion_and_summarises(tmp_path: Path) -> None:
    # The shipped policy plus two short jobs, one applied later: the same path as `make demo`, in seconds.
    shutil.copy(REPO / "examples" / "cluster-policy.yaml", tmp_path)
    first = training_job("quick", replicas=2, gpus=8, run_seconds=1)
    later = training_job("later", replicas=1, gpus=4, run_seconds=1)
    later["metadata"]["annotations"] = {"demo.powertrain.dev/apply-after-seconds": "2"}
    (tmp_path / "quick.yaml").write_text(yaml.safe_dump(first))
    (tmp_path / "later.yaml").write_text(yaml.safe_dump(later))
    result = subprocess.run(
        [sys.executable, "-m", "powertrain", "demo", "--examples", str(tmp_path), "--timeout", "90"],
        capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "all jobs succeeded" in out
    assert "Placed 2×8 GPUs" in out  # the decisions timeline
    summary = out.split("What the operator decided")[1]
    assert "quick" in summary
    assert "later" in summary
    assert "JOB" in out  # no TTY: plain tables


def test_demo_refuses_an_invalid_example_before_starting_anything(tmp_path: Path) -> None:
    bad = training_job("bad", replicas=1, gpus=1)
    bad["spec"]["gpuPerReplica"] = 2
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    result = subprocess.run(
        [sys.executable, "-m", "powertrain", "demo", "--examples", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "gpuPerReplica" in result.stderr
    assert "Starting the sandbox" not in result.stdout
