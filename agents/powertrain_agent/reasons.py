"""NVML clock-event ("throttle") reason bits, decoded one bit per name so each can be exported and alerted on."""

from __future__ import annotations

from typing import Final

# Bit values as nvml.h defines nvmlClocksEventReason*; names are short and stable for labels.
CLOCK_EVENT_REASONS: Final[dict[str, int]] = {
    "GpuIdle": 0x1,
    "ApplicationsClocksSetting": 0x2,
    "SwPowerCap": 0x4,
    "HwSlowdown": 0x8,
    "SyncBoost": 0x10,
    "SwThermalSlowdown": 0x20,
    "HwThermalSlowdown": 0x40,
    "HwPowerBrakeSlowdown": 0x80,
    "DisplayClockSetting": 0x100,
}


def decode_reasons(mask: int) -> list[str]:
    """Names of the known bits set in `mask`, in bit order; unknown bits are reported as hex, never dropped."""
    names = [name for name, bit in CLOCK_EVENT_REASONS.items() if mask & bit]
    unknown = mask & ~sum(CLOCK_EVENT_REASONS.values())
    if unknown:
        names.append(f"Unknown0x{unknown:x}")
    return names
