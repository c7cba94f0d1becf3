"""Run the chaos suite twice (with its chaos, then the same workload with none) and the manifest fuzz once, and
record what they saw in bench/results/chaos.md: kills survived, faults injected, manifests tried / accepted /
refused, converge time with faults vs without, energy reported vs simulated, and which promises failed.

    .venv/bin/python bench/chaos_bench.py [--seed N] [--fuzz-seed N]

Each run is the e2e test itself (pytest in a subprocess) with POWERTRAIN_CHAOS_SUMMARY / POWERTRAIN_FUZZ_SUMMARY
set; a failing run is recorded with its failures rather than hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "chaos.md"


def run_test(test: str, env: dict[str, str], summary_var: str) -> tuple[dict[str, Any], str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.json"
        began = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider", "-p", "no:logging"],
            cwd=REPO,
            env={**os.environ, **env, summary_var: str(summary)},
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.monotonic() - began
        tally = re.compile(r"^=* ?\d+ (passed|failed|xfailed|error).* in [\d.]+s")
        outcome = next(
            (line for line in reversed(proc.stdout.splitlines()) if tally.match(line)), f"exit {proc.returncode}"
        ).strip("= ")
        data = json.loads(summary.read_text()) if summary.exists() else {}
        first_error = next((line[1:].strip() for line in proc.stdout.splitlines() if line.startswith("E   ")), "")
        if first_error:
            outcome += f" — {first_error[:200]}"
    return data, outcome, took


def energy_rows(summary: dict[str, Any]) -> list[str]:
    return [f"| {line} |" for line in summary.get("energy", [])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", default="20261130")
    parser.add_argument("--fuzz-seed", default="1414")
    parser.add_argument("--note", default="", help="what code was measured, e.g. a commit (added to the header)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    chaos, chaos_outcome, chaos_s = run_test(
        "e2e/test_chaos.py", {"POWERTRAIN_CHAOS_SEED": args.seed}, "POWERTRAIN_CHAOS_SUMMARY"
    )
    quiet, quiet_outcome, quiet_s = run_test(
        "e2e/test_chaos.py",
        {"POWERTRAIN_CHAOS_SEED": args.seed, "POWERTRAIN_CHAOS_QUIET": "1"},
        "POWERTRAIN_CHAOS_SUMMARY",
    )
    fuzz, fuzz_outcome, fuzz_s = run_test(
        "e2e/test_manifest_fuzz.py", {"POWERTRAIN_FUZZ_SEED": args.fuzz_seed}, "POWERTRAIN_FUZZ_SUMMARY"
    )

    def seconds(value: Any) -> str:
        return "did not converge" if value is None else f"{value:.1f} s"

    endings = chaos.get("operator_endings", [])
    silent = [e for e in endings if "by itself" in e]
    lines = [
        "# Chaos and fuzz suites",
        "",
        f"Recorded {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/chaos_bench.py` on {platform.machine()} with "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; 1-minute load average {load:.1f} before the "
        "runs (other work shares the machine). Each figure comes from one run of the e2e test itself."
        + (f" {args.note}" if args.note else ""),
        "",
        "## Chaos (`e2e/test_chaos.py`)",
        "",
        f"20 jobs (sizes 1×1 to 3×8 GPUs, Required/Preferred node/rack/zone, a priority-100 second wave that "
        f"preempts, 3 jobs that fail on purpose) on 4 nodes × 8 GPUs with 4 sim agents; seed {args.seed}.",
        "",
        "| Measure | With chaos | Without (same workload) |",
        "| --- | --- | --- |",
        f"| Test outcome | {chaos_outcome} | {quiet_outcome} |",
        f"| Wall time of the test | {chaos_s:.0f} s | {quiet_s:.0f} s |",
        f"| Every job ended (from the first apply) | {seconds(chaos.get('converge_seconds'))} "
        f"| {seconds(quiet.get('converge_seconds'))} |",
        f"| Operator SIGKILLs survived | {chaos.get('kills_survived', '?')} | 0 |",
        f"| Operator exits nobody asked for | {len(silent)} ({'; '.join(silent) or 'none'}) | "
        f"{len([e for e in quiet.get('operator_endings', []) if 'by itself' in e])} |",
        f"| API faults injected (10 % of requests, every verb incl. watch) "
        f"| {chaos.get('faults_injected', '?')}: "
        + ", ".join(f"{n}× {code}" for code, n in chaos.get("faults_by_code", {}).items())
        + " | 0 |",
        f"| Invariant checks (over-allocation, two gangs, orphans) | {chaos.get('invariant_samples', '?')}, "
        f"{len(chaos.get('violations', []))} broken | {quiet.get('invariant_samples', '?')}, "
        f"{len(quiet.get('violations', []))} broken |",
        "",
        "Other chaos events: watches dropped every 4 s, 20 ms latency on every request for 10 s, the NodeTelemetry "
        "CRD deleted and re-created, one agent restarted and then cut off the API for 30 s (a proxy in front of "
        f"the API server). Sandbox fault actions found beyond these: {chaos.get('extra_fault_actions') or 'none'}; "
        f"configure() parameters not exercised yet: {chaos.get('unused_fault_parameters') or 'none'}.",
        "",
        "Faults by kind: " + ", ".join(f"{kind} ×{n}" for kind, n in chaos.get("faults_by_kind", {}).items()) + ".",
        "",
        "Energy each agent incarnation reported (sum of its accepted NodeTelemetry writes) against what its "
        "simulated GPUs used (their energy counters), with chaos:",
        "",
        "| Agent |",
        "| --- |",
        *energy_rows(chaos),
        "",
        "## Manifest fuzz (`e2e/test_manifest_fuzz.py`)",
        "",
        f"Seed {args.fuzz_seed}; {fuzz.get('manifests', '?')} manifests through kubectl in 50-document batches; "
        f"outcome: {fuzz_outcome} ({fuzz_s:.0f} s).",
        "",
        "| Kind | Tried | Accepted by the API |",
        "| --- | --- | --- |",
        *[f"| {kind} | {v['tried']} | {v['accepted']} |" for kind, v in fuzz.get("by_kind", {}).items()],
        f"| **all** | {fuzz.get('manifests', '?')} | {fuzz.get('accepted', '?')} "
        f"(refused: {fuzz.get('refused_by_api', '?')}) |",
        "",
        f"- kubectl apply of every batch: {fuzz.get('apply_seconds', '?')} s; "
        + (
            f"every accepted job carried a condition {fuzz['all_judged_seconds']:.1f} s after the first apply."
            if fuzz.get("all_judged_seconds") is not None
            else "some accepted jobs still had no condition 60 s after the last apply."
        ),
        f"- Operator error lines: {fuzz.get('operator_error_lines', '?')}; pods for specs that must be refused: "
        f"{len(fuzz.get('pods_for_refusable_specs', []))}; over-committed nodes: {len(fuzz.get('overcommit', []))}.",
        "",
        "## Promises that failed in these runs",
        "",
    ]
    failed = [f"- chaos: {v}" for v in chaos.get("violations", [])[:10]]
    failed += [f"- chaos: operator {e}" for e in silent if "exit code 0" in e and "work left" in e]
    allowed = chaos.get("energy_allowed_joules", [])
    for i, (node, joules) in enumerate(chaos.get("energy_lost_joules", [])):
        limit = allowed[i][1] if i < len(allowed) else 0
        if joules > limit:
            failed.append(
                f"- chaos: {node} energy not reported: {joules / 1000:.1f} kJ (one window: {limit / 1000:.1f} kJ)"
            )
    refusable = fuzz.get("pods_for_refusable_specs", [])
    if refusable:
        kinds: dict[str, int] = {}
        for name in refusable:
            kind = name.split("-", 2)[2]
            kinds[kind] = kinds.get(kind, 0) + 1
        failed.append(
            f"- fuzz: pods were created for {len(refusable)} specs that must be refused ("
            + ", ".join(f"{k} ×{n}" for k, n in sorted(kinds.items()))
            + ")"
        )
    failed += [f"- fuzz: {f[:240]}" for f in fuzz.get("failures", []) if not f.startswith("pods were created")]
    lines += failed or ["None."]
    RESULTS.write_text("\n".join(lines) + "\n")
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
