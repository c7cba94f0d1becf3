"""`powertrain demo`'s pure parts: which examples it applies when, and what its table shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from powertrain.commands.demo import event_lines, job_row, load_examples, plain_table, rich_table

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
        "llm", "research", "5", "Running", "3/4", "32/32", "rack r1 (4 nodes)", "1", "InputBound: starting"
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


LONG_MESSAGE = (
    "Waiting for one rack with 32 free GPUs (placement.preferredWaitSeconds 300, 120 s left): the widest free "
    "domain is rack-a1 with 24; preempting batch-embeddings would free 16"
)
ROWS = [
    ("llm-pretrain", "research", "50", "Queued", "0/4", "0/32", "-", "0", LONG_MESSAGE),
    ("urgent-eval", "default", "100", "Running", "4/4", "32/32", "rack spine-0-rack-1 (4 nodes)", "0", "running"),
]


def _contains_in_order(text: str, message: str) -> bool:
    """The whole message is in the rendered text, read down its column (it may wrap over several lines)."""
    lines = text.splitlines()
    header = next(line for line in lines if "JOB" in line)
    column = header.index("MESSAGE") if "MESSAGE" in header else 0
    stream = "".join(line[column:] for line in lines)
    return "".join(message.split()) in "".join(stream.split())


@pytest.mark.parametrize("width", [80, 100, 120])
def test_the_live_table_shows_the_whole_message_on_a_normal_terminal(width: int) -> None:
    from rich.console import Console

    console = Console(width=width, record=True, color_system=None)
    console.print(rich_table(ROWS, 12, "16 nodes x 8 NVIDIA-H200"))
    text = console.export_text()
    assert "…" not in text  # nothing cut, in any column
    assert max(len(line) for line in text.splitlines()) <= width
    assert _contains_in_order(text, LONG_MESSAGE)
    assert "Running" in text
    assert all(word in text for word in ["rack", "spine-0-rack-1", "(4", "nodes)"])  # wrapped, not cut


@pytest.mark.parametrize("width", [80, 100, 160])
def test_the_plain_table_wraps_the_message_instead_of_cutting_it(width: int) -> None:
    text = plain_table(ROWS, width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert _contains_in_order(text, LONG_MESSAGE)
    header = text.splitlines()[0]
    assert header.index("PHASE") == text.splitlines()[1].index("Queued")
