"""`powertrain simulate --plot` and `--progress`: the series behind the pictures, the PNGs, and the progress lines."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
from sim_fixtures import SENSITIVE_TRACE, job, small_cluster, trace

from powertrain.cli import main
from powertrain.commands import simulate as simulate_cmd
from powertrain.sim import engine
from powertrain.sim.engine import Policy, Progress, simulate
from powertrain.sim.report import completion_times, gpus_in_use, queue_length

PNG = b"\x89PNG\r\n\x1a\n"


def test_gpus_in_use_integrates_to_the_busy_gpu_seconds_and_never_exceeds_the_cluster() -> None:
    result = simulate(trace(SENSITIVE_TRACE, 80), small_cluster(), Policy.TOPOLOGY, time_scale=0.1)
    series = gpus_in_use(result)
    assert max(g for _, g in series) <= result.total_gpus
    assert series[-1][1] == 0  # everything finished
    area = sum(g * (t1 - t0) for (t0, g), (t1, _) in itertools.pairwise(series))
    busy = sum(
        r.job.gpus * (r.end_s - r.start_s) for r in result.records if r.end_s is not None and r.start_s is not None
    )
    assert area == pytest.approx(busy)


def test_queue_length_counts_jobs_waiting_for_room() -> None:
    # Three 64-GPU jobs at once on a 64-GPU cluster: two wait, then one, then none.
    jobs = [job(f"j{i}", 0.0, 64, 100.0) for i in range(3)]
    result = simulate(jobs, small_cluster(), Policy.TOPOLOGY)
    assert queue_length(result) == [(0.0, 2), (100.0, 1), (200.0, 0)]
    assert gpus_in_use(result) == [(0.0, 64), (100.0, 64), (200.0, 64), (300.0, 0)]
    assert completion_times(result) == [100.0, 200.0, 300.0]


def test_progress_reports_grow_and_the_last_one_says_all_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "PROGRESS_EVERY", 10)
    seen: list[Progress] = []
    simulate(trace(SENSITIVE_TRACE, 80), small_cluster(), Policy.SPREAD, time_scale=0.1, progress=seen.append)
    assert len(seen) > 3
    assert [p.events for p in seen] == sorted(p.events for p in seen)
    assert [p.finished for p in seen] == sorted(p.finished for p in seen)
    assert seen[0].finished < 80
    assert (seen[-1].finished, seen[-1].jobs) == (80, 80)


ARGS = ["simulate", "--trace", str(SENSITIVE_TRACE), "--max-jobs", "60", "--time-scale", "0.25",
        "--cluster", "nodes=8,gpus-per-node=8,topology=zone=1,spine=1,rack=2"]  # fmt: skip


def test_plot_writes_three_pngs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib", reason="the [plot] extra (part of [dev]) brings matplotlib")
    out = tmp_path / "plots" / "run1"
    assert main([*ARGS, "--plot", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["gpu-utilization.png", "jct-cdf.png", "queue-length.png"]
    for path in out.iterdir():
        data = path.read_bytes()
        assert data.startswith(PNG)
        assert len(data) > 10_000  # axes, three policy lines and a legend, not an empty canvas
    assert f"wrote {out / 'jct-cdf.png'}" in capsys.readouterr().out


def test_plot_without_matplotlib_says_how_to_install_it_before_replaying(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    assert main([*ARGS, "--plot", str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert "pip install 'powertrain[plot]'" in out.err
    assert "| topology |" not in out.out
    assert list(tmp_path.iterdir()) == []


def test_progress_lines_on_stderr_with_the_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simulate_cmd, "PROGRESS_INTERVAL_S", 0.0)
    monkeypatch.setattr(engine, "PROGRESS_EVERY", 20)
    assert main([*ARGS, "--policy", "topology", "--progress"]) == 0
    out = capsys.readouterr()
    lines = [line for line in out.err.splitlines() if line.strip().startswith("topology:")]
    assert len(lines) >= 2
    assert "events, sim time" in lines[0]
    assert lines[-1].endswith("60/60 jobs finished")
    assert "jobs finished" not in out.out  # the results on stdout stay clean for pipes


def test_no_progress_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*ARGS, "--policy", "topology"]) == 0
    assert "jobs finished" not in capsys.readouterr().err
