"""The power-cap actuator: the one part of the agent that writes to a GPU.

For each GPU the operator lists in NodeTelemetry.spec.powerLimits it clamps the request to the card's
constraints, sets it, reads back the enforced limit (an out-of-band limit, e.g. from the BMC, can be lower)
and reports requested vs enforced. Every reconcile re-checks the configured limit, so drift (someone ran
`nvidia-smi -pl`, or a driver reload reset it) is corrected. When a request is withdrawn, and when the agent
stops, the GPUs it changed go back to their default limit. On its first reconcile the agent also adopts every
GPU that runs below its default limit without a request (a previous agent that died before restoring it, or a
request that expired meanwhile) and restores it: a cap nobody asks for does not outlive the request.
A set that fails is reported (action "failed") and retried with exponential backoff per GPU (10 s doubling up
to 5 min), never in a fast loop. With `dry_run` it logs what it would do and touches nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from powertrain_agent.collectors import PowerControl, PowerControlError, PowerLimits

log = logging.getLogger(__name__)

# A limit within this many watts of the target counts as applied (NVML works in mW and may round).
TOLERANCE_W = 1.0
RETRY_FIRST_S = 10.0
RETRY_MAX_S = 300.0


@dataclass(frozen=True, slots=True)
class Actuation:
    uuid: str
    requested_watts: float | None  # what the operator asked for; None when withdrawn
    target_watts: float | None  # after clamping to [min, max]; None when no request and nothing to restore
    enforced_watts: float | None
    action: str  # "set" | "unchanged" | "restored" | "dry-run" | "failed" | "unsupported" | "unknown-gpu"
    message: str = ""


class PowerActuator:
    def __init__(
        self, control: PowerControl | None, *, dry_run: bool = False, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.control = control
        self.dry_run = dry_run
        self.clock = clock
        self.managed: dict[str, float] = {}  # uuid -> target we set (so we know what to restore)
        self.last: dict[str, Actuation] = {}
        self._dry_run_logged: dict[str, float] = {}
        self._failures: dict[str, tuple[int, float, float | None]] = {}  # uuid -> (count, retry at, target)
        self._adopted = False

    def reconcile(self, requests: dict[str, float], gpus: list[str]) -> dict[str, Actuation]:
        """Bring every GPU in `gpus` to its requested limit (or back to default); returns what happened per GPU."""
        if not self._adopted and self.control is not None and gpus:
            self._adopted = True
            self._adopt(requests, gpus)
        results: dict[str, Actuation] = {}
        for uuid, watts in requests.items():
            if uuid not in gpus:
                results[uuid] = Actuation(uuid, watts, None, None, "unknown-gpu", f"GPU {uuid} is not on this node")
        for uuid in gpus:
            requested = requests.get(uuid)
            if requested is None and uuid not in self.managed:
                continue
            results[uuid] = self._backed_off(uuid, requested) or self._one(uuid, requested)
        self.last = results
        return results

    def _adopt(self, requests: dict[str, float], gpus: list[str]) -> None:
        """GPUs below their default limit that nobody asks to cap are ours to restore."""
        assert self.control is not None
        for uuid in gpus:
            if uuid in requests:
                continue
            try:
                limits = self.control.read_limits(uuid)
            except PowerControlError:
                continue
            if abs(limits.configured_watts - limits.default_watts) > TOLERANCE_W:
                log.info(
                    "GPU %s runs at %.0f W (default %.0f W) and nobody asks for a cap: restoring its default",
                    uuid,
                    limits.configured_watts,
                    limits.default_watts,
                )
                self.managed[uuid] = limits.configured_watts

    def _backed_off(self, uuid: str, requested: float | None) -> Actuation | None:
        """The last failure again while its retry is not due (and the request is unchanged)."""
        failure = self._failures.get(uuid)
        if failure is None:
            return None
        _, retry_at, target = failure
        last = self.last.get(uuid)
        if target != requested or last is None or self.clock() >= retry_at:
            return None
        return last

    def _one(self, uuid: str, requested: float | None) -> Actuation:
        act = self._attempt(uuid, requested)
        if act.action == "failed":
            count = self._failures.get(uuid, (0, 0.0, None))[0] + 1
            delay = min(RETRY_FIRST_S * 2 ** (count - 1), RETRY_MAX_S)
            self._failures[uuid] = (count, self.clock() + delay, requested)
            return Actuation(
                uuid,
                act.requested_watts,
                act.target_watts,
                act.enforced_watts,
                "failed",
                f"{act.message} (attempt {count}; retrying in {delay:.0f} s)",
            )
        self._failures.pop(uuid, None)
        return act

    def _attempt(self, uuid: str, requested: float | None) -> Actuation:
        if self.control is None:
            return Actuation(uuid, requested, None, None, "unsupported", "this backend cannot set power limits")
        try:
            limits = self.control.read_limits(uuid)
        except PowerControlError as exc:
            return Actuation(uuid, requested, None, None, "failed", str(exc))
        target, note = clamp(requested, limits)
        if abs(limits.configured_watts - target) <= TOLERANCE_W:
            action = "unchanged" if requested is not None else "restored"
            if requested is None:
                self.managed.pop(uuid, None)
            else:
                self.managed[uuid] = target
            return Actuation(uuid, requested, target, limits.enforced_watts, action, note)
        if self.dry_run:
            # Logged once per decision, not at every periodic reconcile.
            level = logging.INFO if self._dry_run_logged.get(uuid) != target else logging.DEBUG
            self._dry_run_logged[uuid] = target
            log.log(
                level,
                "dry-run: would set GPU %s power limit %.0f W -> %.0f W %s",
                uuid,
                limits.configured_watts,
                target,
                note,
            )
            return Actuation(uuid, requested, target, limits.enforced_watts, "dry-run", note)
        try:
            self.control.set_limit(uuid, target)
            after = self.control.read_limits(uuid)
        except PowerControlError as exc:
            log.error("%s", exc)
            return Actuation(uuid, requested, target, limits.enforced_watts, "failed", str(exc))
        if requested is None:
            self.managed.pop(uuid, None)
            action = "restored"
        else:
            self.managed[uuid] = target
            action = "set"
        if after.enforced_watts < target - TOLERANCE_W:
            note = (note + "; " if note else "") + f"an out-of-band limit holds it at {after.enforced_watts:.0f} W"
        log.info(
            "GPU %s power limit %.0f W -> %.0f W (enforced %.0f W) %s",
            uuid,
            limits.configured_watts,
            target,
            after.enforced_watts,
            note,
        )
        return Actuation(uuid, requested, target, after.enforced_watts, action, note)

    def restore_all(self) -> list[Actuation]:
        """Put every GPU we changed back to its default limit (on shutdown)."""
        return [self._one(uuid, None) for uuid in list(self.managed)]


def clamp(requested: float | None, limits: PowerLimits) -> tuple[float, str]:
    """The limit to apply for a request (default when None), clamped to the card's constraints, and why."""
    if requested is None:
        return limits.default_watts, "request withdrawn: default limit"
    if requested < limits.min_watts:
        return limits.min_watts, f"requested {requested:.0f} W is below the card's minimum {limits.min_watts:.0f} W"
    if requested > limits.max_watts:
        return limits.max_watts, f"requested {requested:.0f} W is above the card's maximum {limits.max_watts:.0f} W"
    return float(requested), ""
