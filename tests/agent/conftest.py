from __future__ import annotations

from pathlib import Path

import pytest
from agent_testing import FakeClock

from powertrain_agent.data import H200_DIR


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def h200_data() -> Path:
    """The H200 recordings shipped in the agent package."""
    return H200_DIR
