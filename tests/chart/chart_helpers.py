"""Rendering the chart and picking manifests out of the result (shared by the chart tests)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "powertrain"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
NAMESPACE = "gpu-system"
RELEASE = "pt"

Manifest = dict[str, Any]


def run_helm(helm_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_path), *args], capture_output=True, text=True, timeout=120, check=False)


@functools.cache
def render_text(helm_path: Path, values: tuple[str, ...] = (), sets: tuple[str, ...] = ()) -> str:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for v in values:
        args += ["--values", v]
    for s in sets:
        args += ["--set", s]
    result = run_helm(helm_path, *args)
    assert result.returncode == 0, f"helm template {' '.join(values + sets)} failed:\n{result.stderr}"
    return result.stdout


def render(helm_path: Path, values: Path | None = None, *sets: str) -> list[Manifest]:
    text = render_text(helm_path, (str(values),) if values else (), tuple(sets))
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m.get("kind") == kind]


def component(m: Manifest) -> str | None:
    labels: dict[str, str] = m["metadata"].get("labels") or {}
    return labels.get("app.kubernetes.io/component")


def one(manifests: list[Manifest], kind: str, of: str | None = None) -> Manifest:
    found = [m for m in by_kind(manifests, kind) if of is None or component(m) == of]
    assert len(found) == 1, f"expected one {kind} {of or ''}, found {len(found)}"
    return found[0]


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec
