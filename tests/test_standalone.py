"""The repository stands alone: a user's clone has no sibling `shared/` folder, so nothing may read one."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}
SKIP_DIRS |= {".tools", ".sandbox", "build", "dist", ".gl"}
# Spelled in pieces so that this file, which names what it looks for, does not itself read like a reference.
NAME = "sha" + "red"
SIBLING = "../" + NAME
PATTERNS = [
    re.compile(re.escape(SIBLING)),
    re.compile(re.escape(NAME + "/data")),
    re.compile(r"""/\s*["']""" + NAME + r"""["']"""),  # Path(...) / "<name>"
    re.compile(r"""["']""" + NAME + r"""["']\s*/"""),  # "<name>" / "data"
]


def _text_files() -> list[Path]:
    files = []
    for path in REPO.rglob("*"):
        rel = path.relative_to(REPO)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts) or not path.is_file():
            continue
        if path == Path(__file__).resolve():  # its patterns and examples name what they look for
            continue
        if path.suffix in (".png", ".whl", ".pyc") or path.stat().st_size > 2_000_000:
            continue
        files.append(path)
    return files


def test_nothing_refers_to_a_sibling_shared_folder() -> None:
    hits = []
    for path in _text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if any(p.search(line) for p in PATTERNS):
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not hits, "read packaged data (powertrain.data, powertrain_agent.data) instead of:\n" + "\n".join(hits)


def test_the_checks_would_catch_the_old_ways_of_reading_it() -> None:
    old = [
        f'SHARED = Path(__file__).resolve().parents[2].parent / "{NAME}"',
        f'H200_DATA = Path(__file__).resolve().parents[3] / "{NAME}" / "data" / "h200-nvml"',
        f"powertrain simulate --trace {SIBLING}/data/traces/philly-gavel/seed0-ee9e8c.csv",
        f'ALIBABA = REPO.parent / "{NAME}/data/traces/alibaba-gpu-v2023/openb_node_list_gpu_node.csv"',
    ]
    assert all(any(p.search(line) for p in PATTERNS) for line in old)
    assert not any(p.search("the shared ApiClient, a shared machine") for p in PATTERNS)
