"""A job's cost estimate from the policy's prices."""

from __future__ import annotations

import pytest

from powertrain.api.policy import CostPrices, GpuHourPrice
from powertrain.core.cost import cost_estimate

PRICES = CostPrices(gpu_hour=[GpuHourPrice(model="NVIDIA-H200", price=4.0)], default_gpu_hour=2.0, energy_per_kwh=0.2)


def test_gpu_hours_at_the_models_price_plus_energy_at_the_kwh_price() -> None:
    # 8 GPUs for 1 h at 4/GPU-h, 8 × 600 W for 1 h = 4.8 kWh at 0.2/kWh
    assert cost_estimate(PRICES, "NVIDIA-H200", 8 * 3600, 8 * 600 * 3600) == pytest.approx(32 + 0.96)
    assert cost_estimate(PRICES, "NVIDIA-A100", 3600, None) == pytest.approx(2.0)  # the default price


def test_no_price_no_estimate() -> None:
    assert cost_estimate(CostPrices(), "NVIDIA-H200", 3600, 1e6) is None
    assert cost_estimate(CostPrices(energy_per_kwh=0.5), "NVIDIA-H200", 3600, 3.6e6) == pytest.approx(0.5)
