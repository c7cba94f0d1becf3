"""A job's cost estimate: GPU-hours held × the GPU model's price per GPU-hour + GPU energy × the price per kWh.

Prices come from the ClusterTrainingPolicy (`spec.cost`); a part without a price is left out, and with no price
at all there is no estimate. It is an estimate: CPUs, storage, network and the non-GPU share of a node's power
are not in it, and energy is what the agents measured on the job's GPUs.
"""

from __future__ import annotations

from powertrain.api.policy import CostPrices

JOULES_PER_KWH = 3.6e6


def gpu_hour_price(prices: CostPrices, model: str) -> float | None:
    for entry in prices.gpu_hour:
        if entry.model == model:
            return entry.price
    return prices.default_gpu_hour


def cost_estimate(
    prices: CostPrices, model: str, gpu_seconds: float | None, energy_joules: float | None
) -> float | None:
    hourly = gpu_hour_price(prices, model)
    parts: list[float] = []
    if hourly is not None and gpu_seconds is not None:
        parts.append(gpu_seconds / 3600.0 * hourly)
    if prices.energy_per_kwh is not None and energy_joules is not None:
        parts.append(energy_joules / JOULES_PER_KWH * prices.energy_per_kwh)
    return round(sum(parts), 4) if parts else None
