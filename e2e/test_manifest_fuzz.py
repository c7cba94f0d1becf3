"""Manifest fuzz: 1,000+ generated TrainingJobs (valid, near-valid, wrong types, extreme numbers, unknown fields,
bad enums, huge strings, deep nesting, bad pod templates) sent through the real kubectl, 50 documents per
`kubectl apply`, against a sandbox with the operator running.

Whatever the API server takes, the operator must judge without an exception, write a condition saying what it
made of the job within seconds, never create a pod for a spec it should refuse, never over-commit a node, and
keep scheduling: a small valid job applied last still runs.

Seeded (POWERTRAIN_FUZZ_SEED replays a run; the seed is in every failure). POWERTRAIN_FUZZ_SUMMARY=<file>
writes the counts as JSON for bench/results/chaos.md.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chaos_support import holds_gpus, invariant_violations, iter_docs, log_errors, view
from powertrain.api import constants as c
from powertrain.controllers.testing import OperatorProcess, training_job, wait_for
from powertrain.sandbox.cluster import Sandbox
from powertrain.sandbox.testing import Kubectl

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

SEED = int(os.environ.get("POWERTRAIN_FUZZ_SEED", "1414"))
MANIFESTS = 1040
BATCH = 50


@dataclass
class Case:
    name: str
    kind: str  # the generator that made it
    manifest: dict[str, Any]
    may_run: bool  # whether pods for it are acceptable at all


# Generators: each takes (rng, name) and returns a manifest. `may_run` is False for specs the operator must
# refuse if the API server lets them through; those are never suspended, so a pod for one would show.


def base(name: str, rng: random.Random, *, suspend: bool | None = None) -> dict[str, Any]:
    job = training_job(name, replicas=1, gpus=rng.choice([1, 2]), level="node", run_seconds=1)
    if suspend if suspend is not None else rng.random() < 0.8:
        job["spec"]["runPolicy"] = {"suspend": True}  # most valid jobs wait suspended: the 32 GPUs stay free
    return job


def at(manifest: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set a dotted path (list indexes as numbers), creating dicts on the way."""
    keys = path.split(".")
    node: Any = manifest
    for key in keys[:-1]:
        if isinstance(node, list):
            node = node[int(key)]
        else:
            node = node.setdefault(key, {})
            if not isinstance(node, (dict, list)):
                return manifest
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return manifest


NUMERIC_FIELDS = [
    "spec.replicas",
    "spec.gpusPerReplica",
    "spec.priority",
    "spec.masterPort",
    "spec.power.capWatts",
    "spec.runPolicy.backoffLimit",
    "spec.runPolicy.activeDeadlineSeconds",
    "spec.runPolicy.ttlSecondsAfterFinished",
    "spec.elastic.minReplicas",
    "spec.elastic.maxReplicas",
    "spec.template.spec.terminationGracePeriodSeconds",
]
EXTREMES: list[Any] = [
    0, -1, 1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63), 250_000_000_000, 1e308,
    0.5, -0.0, 1e-9,
]  # fmt: skip
WRONG_TYPES: list[Any] = ["two", "", True, [1], {"a": 1}, "1e3", "0x10", 3.7]  # null is "unset": not wrong
ENUM_FIELDS = ["spec.topology.level", "spec.topology.mode", "spec.power.mode", "spec.queue"]
BAD_ENUMS = ["galaxy", "REQUIRED", "required ", "", "Ω", "x" * 70, "default\n", "-rack", "Rack"]
OBJECT_FIELDS = ["spec", "spec.topology", "spec.runPolicy", "spec.template", "spec.template.spec", "spec.power"]


def valid(rng: random.Random, name: str) -> tuple[dict[str, Any], bool]:
    job = base(name, rng)
    job["spec"]["priority"] = rng.randint(-100, 100)
    job["spec"]["topology"] = {
        "level": rng.choice(["node", "rack", "zone"]),
        "mode": rng.choice(["Required", "Preferred"]),
    }
    return job, True


def extreme_number(rng: random.Random, name: str) -> tuple[dict[str, Any], bool]:
    # Running, not suspended: a deadline is only evaluated for a placed job, which is where it used to overflow.
    job = base(name, rng, suspend=rng.random() < 0.3)
    job["spec"]["gpusPerReplica"] = 1
    # Short runs: a finished job's TTL and a running job's deadline are both evaluated within the test.
    job["spec"]["template"]["metadata"]["annotations"]["sandbox.powertrain.dev/run-seconds"] = rng.choice(["1", "4"])
    path = rng.choice(NUMERIC_FIELDS)
    if path.startswith("spec.elastic"):
        job["spec"]["elastic"] = {"minReplicas": 1, "maxReplicas": 1}
    return at(job, path, rng.choice(EXTREMES)), True


def wrong_type(rng: random.Random, name: str) -> tuple[dict[str, Any], bool]:
    fields = [*NUMERIC_FIELDS, *ENUM_FIELDS, *OBJECT_FIELDS, "spec.gpuModel", "spec.runPolicy.suspend"]
    path, value = rng.choice(fields), rng.choice(WRONG_TYPES)
    if path.endswith("suspend") and isinstance(value, bool):
        value = "yes"
    return at(base(name, rng, suspend=False), path, value), False


def unknown_field(rng: random.Random, name: str) -> tuple[dict[str, Any], bool]:
    where = rng.choice(["", "spec", "spec.topology", "spec.runPolicy", "spec.power", "status", "metadata"])
    key = rng.choice(["foo", "replica", "gpus", "nodeSelector", "x-" + "y" * 40, "__proto__"])
    job = base(name, rng)
    return at(job, f"{where}.{key}" if where else key, rng.choice([1, "a", {"b": [1, 2]}, None])), True


def bad_enum(rng: random.Random, name: str) -> tuple[dict[str, Any], bool]:
    return at(base(name, rng, suspend=False), rng.choice(ENUM_FIELDS), rng.choice(BAD_ENUMS)), False


def huge_string(rng: random.Random, name: str) -> tuple[dict[str, Any], bool]:
    size = rng.choice([300, 70_000, 300_000])
    text = "".join(rng.choice("abcdefghij") for _ in range(64)) * (size // 64)
    path = rng.choice([
        "spec.queue",
        "spec.template.spec.containers.0.image",
        "spec.template.spec.containers.0.name",
        "spec.template.metadata.annotations.big",
        "metadata.annotations.big",
        "metadata.labels.big",
    ])  # fmt: skip
    # A long image or annotation below the API's limits is a valid job; every other spot is a refusal.
    return at(base(name, rng, suspend=False), path, text), path.endswith("image") or (
        path.endswith("annotations.big") and size < 262_144
    )


def deep_nesting(rng: random.Random, name: str) -> tuple[dict[str, Any], bool]:
    depth = rng.choice([20, 100, 500])
    value: Any = "leaf"
    for i in range(depth):
        value = {"n": value} if i % 2 else [value]
    path = rng.choice(["spec.topology.level", "spec.foo", "spec.template.spec.containers.0.env", "spec.replicas"])
    return at(base(name, rng, suspend=False), path, value), False


def bad_pod_template(rng: random.Random, name: str) -> tuple[dict[str, Any], bool]:
    job = base(name, rng, suspend=False)
    mutation = rng.randrange(9)
    spec = job["spec"]["template"]["spec"]
    container = spec["containers"][0]
    if mutation == 0:
        spec["containers"] = []
    elif mutation == 1:
        del container["image"]
    elif mutation == 2:
        container["ports"] = [{"containerPort": "eighty"}]
    elif mutation == 3:
        container["env"] = {"A": "1"}
    elif mutation == 4:
        spec["terminationGracePeriodSeconds"] = -5
    elif mutation == 5:
        del job["spec"]["template"]["spec"]
    elif mutation == 6:
        container["name"] = "Bad_Name"
    elif mutation == 7:
        spec["containers"] = "trainer"
    else:
        container["resources"] = {"limits": {"cpu": "lots"}}
    return job, False


def bypass(rng: random.Random, name: str) -> tuple[dict[str, Any], bool]:
    """Fields that would take placement away from the operator: refused or stripped, never obeyed blindly (the
    over-commit check below decides)."""
    job = base(name, rng, suspend=False)
    job["spec"]["gpusPerReplica"] = 8
    spec = job["spec"]["template"]["spec"]
    choice = rng.randrange(3)
    if choice == 0:
        spec["nodeName"] = "node-000"
    elif choice == 1:
        spec["schedulerName"] = "my-scheduler"
    else:
        spec["containers"][0]["resources"] = {"limits": {c.GPU_RESOURCE: "3"}}
    return job, True


def bad_metadata(rng: random.Random, name: str) -> tuple[dict[str, Any], bool]:
    job = base(name, rng)
    job["metadata"]["name"] = rng.choice([name.upper(), name + "_x", name + "-" * 3 + "." * 2, name + "-" + "a" * 260])
    return job, False


GENERATORS: list[tuple[str, Callable[[random.Random, str], tuple[dict[str, Any], bool]], int]] = [
    ("valid", valid, 20),
    ("extreme-number", extreme_number, 14),
    ("wrong-type", wrong_type, 14),
    ("unknown-field", unknown_field, 10),
    ("bad-enum", bad_enum, 10),
    ("huge-string", huge_string, 6),
    ("deep-nesting", deep_nesting, 6),
    ("bad-pod-template", bad_pod_template, 12),
    ("bypass", bypass, 4),
    ("bad-metadata", bad_metadata, 4),
]


def generate(seed: int, count: int) -> list[Case]:
    rng = random.Random(seed)
    kinds = [g for g in GENERATORS for _ in range(g[2])]
    cases = []
    for i in range(count):
        kind, make, _ = rng.choice(kinds)
        name = f"fz-{i:04d}-{kind}"
        manifest, may_run = make(rng, name)
        cases.append(Case(name, kind, manifest, may_run))
    return cases


def batches(cases: list[Case]) -> Iterator[str]:
    for chunk in iter_docs([case.manifest for case in cases], BATCH):
        # JSON documents in one YAML stream (a stream that starts with "{" would be read as JSON, where "---"
        # is no separator): kubectl splits it per document, and deep nesting stays writable.
        yield "".join(f"---\n{json.dumps(doc)}\n" for doc in chunk)


class PodSightings(threading.Thread):
    """Every job that had a pod at any moment of the run (pods of 1-second jobs come and go between checks)."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(daemon=True, name="pod-sightings")
        self.sandbox = sandbox
        self.jobs: set[str] = set()
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.25):
            for p in view(self.sandbox).pods:
                self.jobs.add((p["metadata"].get("labels") or {}).get(c.JOB_NAME_LABEL, ""))


def conditions(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list((job.get("status") or {}).get("conditions") or [])


def test_a_thousand_generated_manifests_never_crash_block_or_bypass_the_operator(
    sandbox: Sandbox, kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path
) -> None:
    print(f"fuzz seed {SEED} (replay with POWERTRAIN_FUZZ_SEED={SEED})")
    cases = generate(SEED, MANIFESTS)
    assert len(cases) >= 1000
    by_name = {case.name: case for case in cases}
    seen = PodSightings(sandbox)
    seen.start()
    began = time.monotonic()
    refusals: list[str] = []
    for text in batches(cases):
        result = kubectl("apply", "-f", "-", input=text, check=False, timeout=120)
        refusals += [line for line in result.stderr.splitlines() if line.strip()]
    applied_s = time.monotonic() - began

    def listed() -> list[dict[str, Any]]:
        return [j for j in view(sandbox).jobs if j["metadata"]["name"] in by_name]

    accepted = listed()
    assert accepted, f"seed {SEED}: the API server took none of the generated jobs"
    # Every finding is gathered before the test fails, so one run names every broken promise.
    failures: list[str] = []

    # Every job the API took is judged: a condition with a message, soon (the timeout only stops a hung run).
    def unjudged() -> list[str]:
        return [j["metadata"]["name"] for j in listed() if not any(cond.get("message") for cond in conditions(j))]

    judged_s: float | None = None
    try:
        wait_for("a condition with a message on every accepted job", lambda: not unjudged(), timeout=60, interval=1)
        judged_s = time.monotonic() - began
    except AssertionError:
        left = unjudged()
        failures.append(f"{len(left)} accepted jobs got no condition explaining them, e.g. {left[:10]}")

    # Let the runnable ones run and finish first: a poison job bites once it is placed or done.
    quiet_since: float | None = None
    settle_until = time.monotonic() + 45
    while time.monotonic() < settle_until:
        busy = any(holds_gpus(p) or not p["spec"].get("nodeName") for p in view(sandbox).pods)
        quiet_since = None if busy else (quiet_since or time.monotonic())
        if quiet_since is not None and time.monotonic() - quiet_since > 3:
            break
        time.sleep(0.5)

    # Scheduling goes on: a small valid job applied after all of them runs to completion.
    probe = training_job("fz-probe", replicas=1, gpus=1, level="node", priority=1_000_000, run_seconds=1)
    kubectl.apply(probe)
    try:
        wait_for(
            "the probe job to succeed",
            lambda: view(sandbox).job_phases().get("fz-probe") == "Succeeded",
            timeout=60,
            interval=0.5,
        )
    except AssertionError:
        probe_now = next((j for j in view(sandbox).jobs if j["metadata"]["name"] == "fz-probe"), {})
        failures.append(f"a small valid job applied last never ran; its status: {probe_now.get('status')}")

    seen.halt.set()
    seen.join(5)
    state = view(sandbox)
    pods_of_refusable = sorted(name for name in seen.jobs if name in by_name and not by_name[name].may_run)
    for name in pods_of_refusable:
        failures.append(
            f"pods were created for {name}, whose spec must be refused: {json.dumps(by_name[name].manifest)[:600]}"
        )
    overcommit = [v for v in invariant_violations(state) if v.startswith("node ")]
    failures += overcommit
    errors = log_errors(operator.log_text())
    if errors:
        failures.append(f"the operator logged {len(errors)} errors, first: {errors[0][:1500]}")
    accepted_now = listed()
    summary = {
        "seed": SEED,
        "manifests": len(cases),
        "accepted": len(accepted),
        "refused_by_api": len(cases) - len(accepted),
        "by_kind": {
            kind: {
                "tried": sum(1 for case in cases if case.kind == kind),
                "accepted": sum(1 for j in accepted if by_name[j["metadata"]["name"]].kind == kind),
            }
            for kind in sorted({case.kind for case in cases})
        },
        "apply_seconds": round(applied_s, 1),
        "all_judged_seconds": None if judged_s is None else round(judged_s, 1),
        "operator_error_lines": len(errors),
        "pods_for_refusable_specs": pods_of_refusable,
        "overcommit": overcommit,
        "accepted_specs_sample": {
            j["metadata"]["name"]: json.dumps(j["spec"])[:300]
            for j in accepted_now
            if by_name[j["metadata"]["name"]].kind not in ("valid", "unknown-field")
        },
        "kubectl_refusal_sample": [r[:300] for r in refusals[:8]],
        "failures": failures,
    }
    if out := os.environ.get("POWERTRAIN_FUZZ_SUMMARY"):
        Path(out).write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "kubectl_refusal_sample"}, indent=2)[:20000])
    assert failures == [], f"seed {SEED}:\n" + "\n".join(failures)
