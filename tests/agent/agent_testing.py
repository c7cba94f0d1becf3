"""Helpers shared by the agent tests (a module with its own name, so it never clashes with another conftest)."""

from __future__ import annotations


class FakeClock:
    """A clock the test moves by hand: no sleeps, no timing assertions."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
