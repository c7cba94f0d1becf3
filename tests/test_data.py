"""The data shipped in the packages: names a user types resolve, and every file is documented with its source."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from powertrain import data
from powertrain_agent import data as agent_data


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc") and p.name != "README.md"]


@pytest.mark.parametrize("root", [data.DATA_DIR, agent_data.H200_DIR])
def test_every_packaged_file_is_in_its_readme(root: Path) -> None:
    readme = (root / "README.md").read_text()
    files = _files(root)
    assert files
    missing = [p.name for p in files if f"`{p.name}`" not in readme and p.name != "LICENSE"]
    assert not missing, f"document source, license and how each was made in {root / 'README.md'}: {missing}"


def test_philly_names_resolve_with_or_without_csv() -> None:
    assert data.philly_traces() == ["seed0-0e4a51", "seed0-7f04ca", "seed0-ee9e8c"]
    assert data.trace_path("philly:seed0-ee9e8c") == data.PHILLY_DIR / "seed0-ee9e8c.csv"
    assert data.trace_path("philly:seed0-ee9e8c.csv") == data.PHILLY_DIR / "seed0-ee9e8c.csv"
    with data.trace_path("philly:seed0-ee9e8c").open() as f:
        assert sum(1 for _ in csv.DictReader(f)) == 1627
    assert data.trace_path("my/trace.csv") == Path("my/trace.csv")


def test_an_unknown_trace_lists_the_packaged_ones() -> None:
    with pytest.raises(data.DataNotFound) as err:
        data.trace_path("philly:throughputs")  # a packaged file, but not a job stream
    assert "no packaged trace named 'throughputs'; packaged traces: philly:seed0-0e4a51," in str(err.value)


def test_a_file_named_like_a_packaged_fleet_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert data.fleet_path("alibaba") == data.ALIBABA_NODES
    (tmp_path / "alibaba").write_text("sn,cpu_milli,memory_mib,gpu,model\n")
    assert data.fleet_path("alibaba") == Path("alibaba")
    assert data.fleet_path("nodes.yaml") == Path("nodes.yaml")
