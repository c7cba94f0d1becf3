"""`powertrain demo`'s pure parts: which examples it applies when, and what its table shows."""

from __future__ import annotations

from pathlib import Path

from powertrain.commands.demo import event_lines, job_row, load_examples, plain_table

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_examples_load_and_the_urgent_one_comes_later() -> None:
    manifests, errors = load_examples(REPO / "examples")
    assert errors == []
    delays = {m.name: m.delay for m in manifests}
    assert delays["urgent-eval"] > 0
    assert delays["llm-pretrain"] == 0
    assert "default" in delays  # the policy


def test_a_bad_delay_annotation_is_reported_not_crashed_on(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(
        "apiVersion: powertrain.dev/v1alpha1\nkind: TrainingJob\nmetadata:\n  name: j\n  annotations:\n"
        "    demo.powertrain.dev/apply-after-seconds: soon\nspec:\n  template:\n    spec:\n"
        "      containers: [{name: t, image: i}]\n"
    )
    manifests, errors = load_examples(tmp_path)
    assert manifests == []
    assert "apply-after-seconds" in errors[0]


def test_a_row_shows_progress_placement_and_gpus() -> None:
    job = {
        "metadata": {"name": "llm"},
        "spec": {"replicas": 4, "gpusPerReplica": 8, "queue": "research", "priority": 5},
        "status": {"phase": "Running", "readyReplicas": 3, "gpus": 32, "restarts": 1, "message": "starting",
                   "placement": {"level": "rack", "domain": "r1", "nodes": ["a", "b", "c", "d"]},
                   "efficiency": {"verdict": "InputBound", "since": "2026-01-01T00:00:00Z", "windowSeconds": 120}},
    }  # fmt: skip
    row = job_row(job)
    assert row == (
        "llm", "research", "5", "Running", "3/4", "32/32", "rack r1 (4 nodes)", "1", "InputBound", "starting"
    )  # fmt: skip
    table = plain_table([row, job_row({"metadata": {"name": "new"}, "spec": {}})])
    header, first, second = table.splitlines()
    assert header.index("PHASE") == first.index("Running") == second.index("-  ")


def test_only_the_operators_events_are_listed_in_time_order() -> None:
    events = [
        {"source": {"component": "powertrain-operator"}, "lastTimestamp": "2026-01-01T00:00:05Z",
         "involvedObject": {"name": "b"}, "reason": "Placed", "message": "Placed 1×8 GPUs"},
        {"source": {"component": "kubelet"}, "lastTimestamp": "2026-01-01T00:00:01Z",
         "involvedObject": {"name": "x"}, "reason": "Pulled", "message": "image"},
        {"source": {"component": "powertrain-operator"}, "lastTimestamp": "2026-01-01T00:00:02Z",
         "involvedObject": {"name": "a"}, "reason": "Completed", "message": "done"},
    ]  # fmt: skip
    lines = event_lines(events, since=1767225600.0)  # 2026-01-01T00:00:00Z
    assert len(lines) == 2
    assert lines[0].split()[:3] == ["2s", "a", "Completed"]
    assert lines[1].split()[:3] == ["5s", "b", "Placed"]
