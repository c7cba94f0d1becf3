"""Per-GPU health with hysteresis: a GPU that needs draining turns unhealthy at once and turns healthy again only
after every cause has been absent for `clear_after_s` (so a flapping GPU does not attract new gangs).

Causes: fallen off the bus (GPU lost / XID 79); NVML recovery action other than NONE (reset, reboot, drain);
a critical XID within `xid_hold_s`; uncorrectable ECC (new volatile uncorrected errors, a double-bit event);
row remapping pending (needs a reset) or failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from powertrain_agent.readings import GpuEvent, GpuSample, GpuSlowSample

# XIDs after which NVIDIA's guidance is to drain the GPU (reset or reboot), per the XID catalogue:
# 48 double-bit ECC, 63/64 row-remap pending/failure, 74 NVLink error, 79 fallen off the bus,
# 92 high single-bit ECC rate, 94 contained ECC, 95 uncontained ECC, 119/120 GSP RPC timeout/error.
CRITICAL_XIDS: Final = frozenset({48, 63, 64, 74, 79, 92, 94, 95, 119, 120})

RECOVERY_ACTIONS: Final = {
    0: "none",
    1: "GPU reset",
    2: "node reboot",
    3: "drain peer-to-peer",
    4: "drain and reset",
    5: "recover IMEX domain",
    6: "bus reset",
    7: "system reboot",
}


@dataclass
class _GpuHealth:
    healthy: bool = True
    reason: str | None = None
    last_bad: float | None = None
    xid_until: float = float("-inf")
    xid_reason: str | None = None
    ecc_until: float = float("-inf")
    last_uncorrected: int | None = None
    slow_causes: list[str] = field(default_factory=list)


class HealthTracker:
    def __init__(self, clear_after_s: float = 300.0, xid_hold_s: float = 600.0) -> None:
        self.clear_after_s = clear_after_s
        self.xid_hold_s = xid_hold_s
        self._gpus: dict[str, _GpuHealth] = {}

    def _get(self, uuid: str) -> _GpuHealth:
        return self._gpus.setdefault(uuid, _GpuHealth())

    def observe_event(self, event: GpuEvent, now: float) -> None:
        h = self._get(event.uuid)
        if event.kind == "xid" and event.value in CRITICAL_XIDS:
            h.xid_until = now + self.xid_hold_s
            h.xid_reason = f"critical XID {event.value}"
        elif event.kind in ("ecc_double_bit", "gpu_unavailable"):
            h.xid_until = now + self.xid_hold_s
            h.xid_reason = "uncorrectable ECC error" if event.kind == "ecc_double_bit" else "GPU unavailable"
        elif event.kind == "recovery_action" and event.value:
            h.xid_until = now + self.xid_hold_s
            h.xid_reason = f"NVML recovery action: {RECOVERY_ACTIONS.get(event.value, str(event.value))}"

    def observe_slow(self, slow: GpuSlowSample, now: float) -> None:
        h = self._get(slow.uuid)
        causes = []
        if slow.remap_failure:
            causes.append("row remapping failed")
        if slow.remap_pending:
            causes.append("row remapping pending (needs a GPU reset)")
        unc = slow.ecc_uncorrected_volatile
        if unc is not None:
            if h.last_uncorrected is not None and unc > h.last_uncorrected:
                h.ecc_until = now + self.xid_hold_s
            h.last_uncorrected = unc
        h.slow_causes = causes

    def observe_sample(self, sample: GpuSample, now: float) -> tuple[bool, str | None]:
        """Update from the fast sample (called every interval) and return (healthy, reason)."""
        h = self._get(sample.uuid)
        causes: list[str] = []
        if sample.lost:
            causes.append(sample.lost_reason or "GPU lost (fallen off the bus)")
        if sample.recovery_action:
            action = RECOVERY_ACTIONS.get(sample.recovery_action, str(sample.recovery_action))
            causes.append(f"NVML recovery action: {action}")
        if now < h.xid_until and h.xid_reason:
            causes.append(h.xid_reason)
        if now < h.ecc_until:
            causes.append("new uncorrectable ECC errors")
        causes.extend(h.slow_causes)
        if causes:
            h.healthy = False
            h.reason = "; ".join(causes)
            h.last_bad = now
        elif not h.healthy and h.last_bad is not None and now - h.last_bad >= self.clear_after_s:
            h.healthy = True
            h.reason = None
        elif not h.healthy and h.reason and not h.reason.startswith("recovering"):
            h.reason = f"recovering: {h.reason} (cleared; healthy after {self.clear_after_s:.0f} s without a fault)"
        return h.healthy, h.reason

    def status(self, uuid: str) -> tuple[bool, str | None]:
        h = self._gpus.get(uuid)
        return (True, None) if h is None else (h.healthy, h.reason)
