"""The project installs as one distribution and never shadows the standard library's `operator`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
