"""checkov on every rendered values file: no failed check, and every skipped one is explained in the README."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from chart_helpers import CHART, CI_VALUES, render_text
from chart_tools import ToolUnavailable, checkov


@pytest.fixture(scope="module")
def report(helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    try:
        exe = checkov()
    except ToolUnavailable as exc:
        pytest.skip(f"checkov could not be installed: {exc}")
    out = tmp_path_factory.mktemp("rendered")
    for values in CI_VALUES:
        (out / values.name).write_text(render_text(helm_bin, (str(values),)))
    # --skip-download: no call home to the Prisma Cloud API (CI may be offline; results must not depend on it).
    cmd = [str(exe), "--directory", str(out), "--framework", "kubernetes", "--skip-download", "--output", "json"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert result.stdout.strip(), result.stderr[-4000:]
    parsed = json.loads(result.stdout)
    reports: list[dict[str, object]] = parsed if isinstance(parsed, list) else [parsed]
    return reports


def _checks(reports: list[dict[str, object]], kind: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    for r in reports:
        results = r.get("results")
        assert isinstance(results, dict)
        found += results.get(kind, [])
    return found


def test_checkov_finds_nothing(report: list[dict[str, object]]) -> None:
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in _checks(report, "failed_checks")]
    assert not failed, "checkov findings:\n" + "\n".join(failed)
    assert len(_checks(report, "passed_checks")) > 500  # it really scanned the workloads


def test_every_skipped_check_is_explained_in_the_chart_readme(report: list[dict[str, object]]) -> None:
    readme = (CHART / "README.md").read_text()
    skipped = {str(c["check_id"]) for c in _checks(report, "skipped_checks")}
    assert skipped, "the chart skips checks for the actuator and the pull policy: the report must show them"
    for check_id in skipped:
        assert re.search(rf"^\|\s*`?{check_id}`?\s*\|", readme, re.M), f"{check_id} is skipped but not in the README"
