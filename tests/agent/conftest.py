from __future__ import annotations

from pathlib import Path

import pytest
from agent_testing import FakeClock

H200_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "h200-nvml"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def h200_data() -> Path:
    if not H200_DATA.is_dir():
        pytest.skip(f"recorded H200 data not found at {H200_DATA}")
    return H200_DATA
