"""Power in the simulator: what each trace job draws, and what a power mode does to its energy and run time.

GPU physics (an H200-class card, the model the sim agent uses, `powertrain_agent.fake_nvml`; a test checks the
two agree): a job would draw `demand_watts` per GPU at the maximum SM clock (1980 MHz); under a limit the card
draws 97.5 % of it and the clock falls with the square root of the dynamic power left above 123 W. A share
`compute` of the step time stretches with 1/clock, the rest does not; so run time at a cap is
`(1 − compute) + compute · clock(700 W) / clock(cap)` times the run time at the default 700 W limit.
Against a published sweep (the A100 data of Perseus, SOSP '24; table in docs/power.md) this is within 2-3 points
of throughput down to ~75 % of the top limit and optimistic below it: slowdowns under deep budget cuts are lower
bounds.

Per-model profiles (ASSUMED, not measured: the traces' durations come from V100 throughputs and carry no power;
these span the range the recorded H200 phases show, from a dense matmul to a memory copy or an input-bound loop):

| model family | compute | demand per GPU |
| --- | --- | --- |
| Transformer | 0.85 | 1050 W |
| LM | 0.75 | 900 W |
| ResNet-50 | 0.80 | 950 W |
| ResNet-18 | 0.55 | 650 W |
| CycleGAN | 0.70 | 850 W |
| Recommendation | 0.25 | 450 W |
| A3C | 0.15 | 300 W |
| other | 0.70 | 800 W |

A mode's cap is the one its online search settles on (`powertrain.core.power_modes`: first step above the draw,
50 W steps down while the slowdown stays within the mode's bound, one step back), applied for the job's whole
run: the search's exploration windows (seconds to minutes) are left out.

Budgets (`powertrain.sim.budget`) lower a job's cap further while they need to; `power_at` gives the slowdown and
draw at any cap, so the engine recomputes a job's progress rate whenever its cap changes. A GPU no job holds draws
IDLE_GPU_WATTS (the sim agent's idle workload: no CUDA context).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from powertrain.core.power_modes import SLOWDOWN_BOUNDS, STEP_WATTS

MAX_CLOCK_MHZ: Final = 1980.0
MIN_CLOCK_MHZ: Final = 600.0
IDLE_WATTS: Final = 123.0
DEFAULT_LIMIT: Final = 700
MIN_LIMIT: Final = 200
CAP_FRACTION: Final = 0.975
IDLE_GPU_WATTS: Final = 77.0


@dataclass(frozen=True)
class PowerProfile:
    family: str
    compute: float
    demand_watts: float

    def draw(self, limit: float) -> float:
        return min(self.demand_watts, limit * CAP_FRACTION)

    def clock(self, limit: float) -> float:
        draw = self.draw(limit)
        if draw >= self.demand_watts:
            return MAX_CLOCK_MHZ
        share = max(draw - IDLE_WATTS, 0.0) / (self.demand_watts - IDLE_WATTS)
        return max(MIN_CLOCK_MHZ, MAX_CLOCK_MHZ * math.sqrt(share))

    def slowdown(self, cap: float | None) -> float:
        """Extra run time at `cap` relative to the default limit (0.05 = 5 % longer)."""
        if cap is None:
            return 0.0
        return self.compute * (self.clock(DEFAULT_LIMIT) / self.clock(cap) - 1.0)


PROFILES: Final = (
    PowerProfile("Transformer", 0.85, 1050.0),
    PowerProfile("LM", 0.75, 900.0),
    PowerProfile("ResNet-50", 0.80, 950.0),
    PowerProfile("ResNet-18", 0.55, 650.0),
    PowerProfile("CycleGAN", 0.70, 850.0),
    PowerProfile("Recommendation", 0.25, 450.0),
    PowerProfile("A3C", 0.15, 300.0),
)
OTHER: Final = PowerProfile("other", 0.70, 800.0)


def profile_of(model: str) -> PowerProfile:
    for p in PROFILES:
        if model.startswith(p.family):
            return p
    return OTHER


def settled_cap(profile: PowerProfile, mode: str) -> int | None:
    """The cap the mode's search settles on for this profile (None: no cap)."""
    bound = SLOWDOWN_BOUNDS.get(mode)
    if bound is None:
        return None
    draw = profile.draw(DEFAULT_LIMIT)
    power_bound = draw >= DEFAULT_LIMIT * CAP_FRACTION - 1e-9
    cap = DEFAULT_LIMIT - STEP_WATTS if power_bound else math.ceil((draw + 1.0) / STEP_WATTS) * STEP_WATTS
    cap = max(MIN_LIMIT, min(cap, DEFAULT_LIMIT - STEP_WATTS))
    while True:
        if profile.slowdown(cap) > bound:
            back = cap + STEP_WATTS
            return None if back >= DEFAULT_LIMIT else back
        if cap - STEP_WATTS < MIN_LIMIT:
            return cap
        cap -= STEP_WATTS


@dataclass(frozen=True)
class JobPower:
    cap_watts: int | None
    slowdown: float
    watts_per_gpu: float


def job_power(model: str, mode: str | None) -> JobPower:
    profile = profile_of(model)
    return power_at(model, settled_cap(profile, mode) if mode else None)


def power_at(model: str, cap: int | None) -> JobPower:
    """Slowdown and draw per GPU of a job of `model` under `cap` (None: the default limit)."""
    profile = profile_of(model)
    return JobPower(cap, profile.slowdown(cap), profile.draw(cap if cap is not None else DEFAULT_LIMIT))
