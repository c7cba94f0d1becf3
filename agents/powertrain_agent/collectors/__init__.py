"""GPU collectors: one interface, three backends (`nvml` real cards, `sim` simulated cards, `replay` a trace)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from powertrain_agent.readings import GpuEvent, GpuSample, GpuSlowSample

BACKENDS = ("nvml", "sim", "replay")


class CollectorUnavailable(RuntimeError):
    """The backend cannot run on this machine (e.g. no NVML library); the message says what to do."""


class PowerControlError(RuntimeError):
    """A power-limit read or write failed; the message names the GPU and NVML's answer."""


@dataclass(frozen=True, slots=True)
class PowerLimits:
    configured_watts: float
    enforced_watts: float
    default_watts: float
    min_watts: float
    max_watts: float


class PowerControl(Protocol):
    """The only write path to a GPU. Kept apart from the read-only collector so it can be audited alone."""

    def read_limits(self, uuid: str) -> PowerLimits: ...

    def set_limit(self, uuid: str, watts: float) -> None: ...


class Collector(Protocol):
    name: str
    # Bumped whenever the backend (re)initialises, e.g. after a driver reload: limits must be re-applied.
    generation: int

    def open(self) -> None: ...

    def close(self) -> None: ...

    def sample(self) -> list[GpuSample]:
        """Cheap readings of every GPU; called every sample interval."""
        ...

    def sample_slow(self) -> list[GpuSlowSample]:
        """Expensive readings (energy, PCIe, ECC, NVLink, processes); called on a slower cadence in its own thread."""
        ...

    def wait_events(self, timeout_s: float) -> list[GpuEvent]:
        """Block up to `timeout_s` for asynchronous GPU events (XIDs, ECC); called from a dedicated thread."""
        ...

    def power_control(self) -> PowerControl | None: ...

    def pod_owners(self) -> dict[str, str] | None:
        """GPU UUID -> pod UID when the backend knows it directly (the simulator); None to use processes."""
        ...
