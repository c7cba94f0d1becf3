"""`powertrain simulate` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sim_fixtures import ALIBABA_NODES, SENSITIVE_TRACE

from powertrain.cli import main


def test_compares_both_policies_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.json"
    rc = main(
        ["simulate", "--trace", str(SENSITIVE_TRACE), "--max-jobs", "60", "--cluster",
         "nodes=8,gpus-per-node=8,topology=zone=1,spine=1,rack=2", "--output", str(out)]
    )  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "60 jobs" in text
    assert "| topology |" in text
    assert "| spread |" in text
    assert "| packed |" in text
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"topology", "packed", "spread"}
    topo = data["results"]["topology"]
    assert topo["summary"]["completed"] == 60
    assert len(topo["jobs"]) == 60
    assert all(row["start_s"] >= row["submit_s"] for row in topo["jobs"])


def test_preferred_wait_is_the_policy_setting_of_the_run(tmp_path: Path) -> None:
    # Four times the arrival rate on a small cluster: some gangs find no single node with room.
    results = {}
    for wait in ("0", "86400"):
        out = tmp_path / f"wait-{wait}.json"
        rc = main(
            ["simulate", "--trace", str(SENSITIVE_TRACE), "--max-jobs", "60", "--time-scale", "0.25", "--cluster",
             "nodes=4,gpus-per-node=8", "--policy", "topology", "--preferred-wait", wait, "--output", str(out)]
        )  # fmt: skip
        assert rc == 0
        data = json.loads(out.read_text())
        assert data["preferred_wait_s"] == int(wait)
        results[wait] = data["results"]["topology"]["summary"]["multi_gpu_packed_fraction"]
    assert results["86400"] > results["0"]


def test_fleet_run(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["simulate", "--trace", str(SENSITIVE_TRACE), "--max-jobs", "20", "--fleet", str(ALIBABA_NODES),
               "--policy", "topology"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "1213 nodes" in out
    assert "| spread |" not in out


def test_packaged_trace_and_fleet_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """After `pip install` the README's example needs no path: the traces and the fleet ship in the package."""
    monkeypatch.chdir(tmp_path)
    rc = main(["simulate", "--trace", "philly:seed0-ee9e8c", "--fleet", "alibaba", "--max-jobs", "30",
               "--policy", "topology"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "30 jobs from" in out
    assert "seed0-ee9e8c.csv on 1213 nodes" in out
    assert main(["simulate", "--trace", "philly:seed0-0e4a51.csv", "--max-jobs", "5", "--policy", "spread"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trace", "/no/such/trace.csv"], "--trace: cannot read '/no/such/trace.csv'"),
        (["--trace", str(SENSITIVE_TRACE), "--cluster", "nodes=-1"], "--cluster: nodes=-1 is invalid"),
        (["--trace", str(SENSITIVE_TRACE), "--fleet", str(SENSITIVE_TRACE)], "missing column(s) sn"),
        (["--trace", str(SENSITIVE_TRACE), "--max-jobs", "0"], "argument --max-jobs: 0 is invalid: must be ≥ 1"),
        (["--trace", str(SENSITIVE_TRACE), "--time-scale", "-1"], "argument --time-scale: -1 is invalid"),
        (["--trace", str(SENSITIVE_TRACE), "--policy", "random"], "argument --policy: invalid choice: 'random'"),
        (["--trace", str(SENSITIVE_TRACE), "--preferred-wait", "-5"], "argument --preferred-wait: -5 is invalid"),
        (["--trace", str(SENSITIVE_TRACE), "--elastic-range", "2"], "argument --elastic-range: '2' is invalid"),
        (["--trace", str(SENSITIVE_TRACE), "--elastic-range", "0:100"], "max_factor=100.0 is invalid"),
        (["--trace", str(SENSITIVE_TRACE), "--cluster", "nodes=2", "--fleet", "x.csv"], "not allowed with argument"),
        (["--trace", str(ALIBABA_NODES)], "missing column(s) job_id"),
        (
            ["--trace", "philly:seed0-nope"],
            "argument --trace: no packaged trace named 'seed0-nope'; packaged traces: philly:seed0-0e4a51, "
            "philly:seed0-7f04ca, philly:seed0-ee9e8c (or give a CSV file path)",
        ),
        (["--trace", str(SENSITIVE_TRACE), "--fleet", "alibaba.csv"], "cannot read 'alibaba.csv'"),
    ],
)
def test_bad_input_is_a_message_and_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        rc = main(["simulate", *args])
    except SystemExit as exc:  # argparse's own errors
        rc = int(exc.code or 0)
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_unwritable_output_is_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing-dir" / "out.json"
    rc = main(["simulate", "--trace", str(SENSITIVE_TRACE), "--max-jobs", "3", "--output", str(target)])
    assert rc == 2
    assert "--output: cannot write" in capsys.readouterr().err


def test_queue_order_las_on_the_packaged_alibaba_pods(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Alibaba's GPU pods, four times as fast, on one 8-GPU node: they queue, and LAS lets short pods overtake.
    out = {}
    for order in ("FIFO", "LAS"):
        path = tmp_path / f"{order}.json"
        rc = main(
            ["simulate", "--trace", "alibaba:pods", "--max-jobs", "40", "--time-scale", "0.25", "--cluster",
             "nodes=1,gpus-per-node=8", "--policy", "topology", "--queue-order", order, "--output", str(path)]
        )  # fmt: skip
        assert rc == 0
        data = json.loads(path.read_text())
        assert data["queue_order"] == order
        out[order] = data["results"]["topology"]["summary"]
    assert "preemptions/job" in capsys.readouterr().out
    assert out["FIFO"]["completed"] == out["LAS"]["completed"] == 40
    assert out["LAS"]["jct_median_s"] < out["FIFO"]["jct_median_s"]
