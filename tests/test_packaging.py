"""The project installs as one distribution and never shadows the standard library's `operator`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=False)


def test_stdlib_operator_still_works_from_repo_root_and_elsewhere(tmp_path: Path) -> None:
    code = "import operator, powertrain, powertrain_agent; print(operator.itemgetter(1)([0, 42]))"
    for cwd in (REPO, tmp_path):
        result = _run(code, cwd)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "42"


def test_operator_dir_is_a_source_root_not_a_package() -> None:
    assert not (REPO / "operator" / "__init__.py").exists()
    assert not (REPO / "agents" / "__init__.py").exists()
    result = _run("import importlib.util as u; print(u.find_spec('operator').origin)", REPO)
    assert result.returncode == 0
    assert result.stdout.strip().endswith("operator.py")
    assert str(REPO) not in result.stdout


def test_both_packages_come_from_their_source_roots() -> None:
    import powertrain
    import powertrain_agent

    assert Path(powertrain.__file__).parent.parent.name == "operator"
    assert Path(powertrain_agent.__file__).parent.parent.name == "agents"
    assert powertrain_agent.__version__ == powertrain.__version__


def _data_files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    }


@pytest.mark.slow
def test_the_wheel_ships_the_data_and_works_with_no_checkout(tmp_path: Path) -> None:
    """After `pip install`, `simulate --trace philly:...` and the H200 replay need no path and no checkout."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy2(REPO / "pyproject.toml", src)
    shutil.copy2(REPO / "README.md", src)
    for root in ("operator", "agents"):
        shutil.copytree(REPO / root, src / root, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("powertrain-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = set(zf.namelist())
    for package, root in (("powertrain", "operator"), ("powertrain_agent", "agents")):
        expected = {f"{package}/data/{name}" for name in _data_files(REPO / root / package / "data")}
        assert expected, f"no data files under {root}/{package}/data"
        assert expected <= shipped, sorted(expected - shipped)

    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)  # what pip install puts in site-packages
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import powertrain.data as d, powertrain_agent.data as a; print(d.DATA_DIR,a.H200_DIR)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.split() == [str(site / "powertrain" / "data"), str(site / "powertrain_agent" / "data")]
    sim = subprocess.run(
        [sys.executable, "-m", "powertrain", "simulate", "--trace", "philly:seed0-ee9e8c", "--fleet", "alibaba",
         "--max-jobs", "10", "--policy", "topology"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr
    assert f"10 jobs from {site / 'powertrain/data/philly-gavel/seed0-ee9e8c.csv'} on 1213 nodes" in sim.stdout
