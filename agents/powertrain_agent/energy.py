"""Turn NVML's energy counter (mJ since the driver loaded) into a monotonic joules total.

The raw counter restarts from zero when the driver reloads or the GPU is reset. A Prometheus counter may reset
only when the process restarts, and the reporter needs exact per-window deltas, so a drop is treated as a
reset: the new raw value counts as energy used since the reset.
"""

from __future__ import annotations


class EnergyCounter:
    def __init__(self) -> None:
        self._last_raw_mj: int | None = None
        self._total_mj = 0
        self.resets = 0

    def update(self, raw_mj: int) -> float:
        """Feed one raw reading; returns the monotonic total in joules since the agent started."""
        if self._last_raw_mj is not None:
            if raw_mj >= self._last_raw_mj:
                self._total_mj += raw_mj - self._last_raw_mj
            else:
                self.resets += 1
                self._total_mj += raw_mj
        self._last_raw_mj = raw_mj
        return self.total_joules

    @property
    def total_joules(self) -> float:
        return self._total_mj / 1000.0

    @property
    def primed(self) -> bool:
        return self._last_raw_mj is not None
