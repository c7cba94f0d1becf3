from __future__ import annotations

from pathlib import Path

import pytest

H200_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "h200-nvml"


class FakeClock:
    """A clock the test moves by hand: no sleeps, no timing assertions."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def h200_data() -> Path:
    if not H200_DATA.is_dir():
        pytest.skip(f"recorded H200 data not found at {H200_DATA}")
    return H200_DATA
