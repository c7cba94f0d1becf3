"""A real Prometheus server for the e2e tests: Debian's `prometheus` package (or any `prometheus` on PATH),
started on a free port with a generated config that scrapes local targets every second and evaluates rule
files every second, queried through its HTTP API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from powertrain.controllers.testing import free_port

CHART_ALERTS = Path(__file__).resolve().parents[1] / "charts" / "powertrain" / "alerts" / "powertrain-alerts.yaml"
INSTALL_HINT = "install it with `apt-get install -y --no-install-recommends prometheus` (Debian/Ubuntu)"


def in_ci() -> bool:
    """CI (.ci/run exports POWERTRAIN_CI=1; most CI systems set CI) must run these tests, never skip them."""
    return bool(os.environ.get("POWERTRAIN_CI") or os.environ.get("CI"))


def require(binary: str) -> str:
    """The binary's path; outside CI a missing one skips the test with how to get it, in CI it fails."""
    found = shutil.which(binary)
    if found is None:
        message = f"`{binary}` is not installed: {INSTALL_HINT}"
        if in_ci():
            pytest.fail(f"{message} (CI must run this test: .ci/run installs it)")
        pytest.skip(message)
    return found


def version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()
    return first[0] if first else "unknown"


class PrometheusServer:
    """`prometheus` scraping {job: [127.0.0.1 ports]} every second; rule files evaluated every second; the jobs
    in `honor_labels` keep their series' own labels where they clash with target labels (as the chart's
    monitors do with agent.dcgmCompat)."""

    def __init__(
        self,
        workdir: Path,
        targets: dict[str, list[int]],
        rule_files: list[Path] | None = None,
        honor_labels: frozenset[str] = frozenset(),
    ) -> None:
        self.binary = require("prometheus")
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files or []],
            "scrape_configs": [
                {
                    "job_name": job,
                    "honor_labels": job in honor_labels,
                    "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}],
                }
                for job, ports in targets.items()
            ],
        }
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as rsp:
                    if rsp.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prometheus did not start:\n{self.log_text()[-3000:]}")
            time.sleep(0.2)

    def __exit__(self, *_: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; the `data` of a success, AssertionError (with Prometheus' message) otherwise."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as rsp:
                body = json.loads(rsp.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> list[dict[str, Any]]:
        data = self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step}")
        return list(data["result"])

    def label_values(self, label: str, selector: str) -> list[str]:
        return list(self.api(f"label/{label}/values", **{"match[]": selector}))

    def firing(self) -> dict[str, list[dict[str, str]]]:
        """alertname → the label sets of its firing alerts (pending ones are not firing yet)."""
        out: dict[str, list[dict[str, str]]] = {}
        for alert in self.api("alerts")["alerts"]:
            if alert["state"] == "firing":
                out.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
        return out

    def targets_up(self) -> dict[str, int]:
        """job → how many of its targets are up."""
        up: dict[str, int] = {}
        for t in self.api("targets")["activeTargets"]:
            up[t["labels"]["job"]] = up.get(t["labels"]["job"], 0) + (t["health"] == "up")
        return up


def rules_with_for(durations: dict[str, str]) -> dict[str, Any]:
    """The chart's alert rules with each named alert's `for` replaced, as values.prometheusRule.for does."""
    rules: dict[str, Any] = yaml.safe_load(CHART_ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule["alert"] in durations:
                rule["for"] = durations[rule["alert"]]
    return rules


def alert_names() -> list[str]:
    return [r["alert"] for g in yaml.safe_load(CHART_ALERTS.read_text())["groups"] for r in g["rules"]]
