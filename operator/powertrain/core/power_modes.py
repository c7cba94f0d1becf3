"""Power modes: per job, the lowest per-GPU cap whose measured slowdown stays within the mode's bound.

Rules:
- `Performance`: no automatic cap. An explicit `spec.power.capWatts` always wins over any mode.
- `Balanced` (slowdown ≤ 2 %) and `Efficiency` (≤ 5 %): an online search per job, after Zeus (NSDI '23:
  online search over power limits with the job's own measurements) and Perseus (SOSP '24: a slowdown bound
  picks the point on the time/energy frontier):
  1. Baseline: one report window without a cap records the signal (below) and the phase's compute-bound
     fraction `c`.
  2. The first cap is the next 50 W step above the measured draw (a limit above what the GPU draws saves
     nothing and costs nothing); a power-bound GPU (drawing at its limit) starts one step below its default.
  3. Explore: after each report window that ran wholly under the current cap, step down 50 W while the
     slowdown stays within the bound; the first step that exceeds it is undone (one step back up) and the
     search settles. It also settles at the GPU's minimum limit.
  4. Settled: the cap is kept (in `status.power`, so an operator restart resumes rather than re-explores).
     Each later window is checked: a slowdown past the bound backs off one more step; a phase change (`c`
     moves by more than 0.15 from the baseline's) restarts the search from a new baseline, at most once per
     10 minutes, so a job whose phases flap does not spend its time exploring (exploring costs more than it
     saves there).
  A power budget that holds the job below its mode's cap pauses the search (its measurements would show the
  budget's slowdown, not the cap's).

Signals, best first: the job's own throughput (pods publish samples/s or steps/s, summed over the gang; it wins
whenever every pod of the job publishes one at the baseline and now: a search on the clock whose job starts
publishing measures its baseline again with it; a search on the throughput whose job stops publishing keeps its
cap and waits THROUGHPUT_STALE (2 min, `status.power.throughputMissingSince`), then measures its baseline again
with the clock, as for a job that never published), else the GPU's SM clock with the classic
DVFS time model: a fraction `c` of the step time scales with 1/clock and the rest (memory, input, network)
does not, so slowdown = c · (clock_baseline / clock − 1). `c` is tensor-core activity, or SM activity not spent
waiting on DRAM (SM − DRAM activity), whichever is larger: a dense matmul is ~0.92, a memory copy ~0.11 (its SMs
are "busy" waiting on HBM), a data-starved loop ~0.2. So a memory-bound or idle phase is capped low at ~no
cost, and a compute-bound phase pinned at its limit (SwPowerCap) keeps the cap that keeps its clock.

Pure: time is an argument, the state lives in the job's status.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from powertrain.api.telemetry import GpuReading
from powertrain.api.trainingjob import JobPowerStatus, PowerMode
from powertrain.core.snapshot import ClusterSnapshot, JobKey

STEP_WATTS: Final = 50
SLOWDOWN_BOUNDS: Final[dict[str, float]] = {PowerMode.BALANCED.value: 0.02, PowerMode.EFFICIENCY.value: 0.05}
PHASE_SHIFT: Final = 0.15
"""A change of the compute-bound fraction this large is a new phase."""
RESEARCH_COOLDOWN: Final = timedelta(minutes=10)
THROUGHPUT_STALE: Final = timedelta(minutes=2)
"""How long a search that measures with the job's throughput waits for it to come back before it measures again
with the SM clock (the agent already drops a throughput file older than 60 s)."""
SETTLE: Final = timedelta(seconds=2)
"""A window counts for a cap only if it started this long after the cap was requested (draw follows in ~1 s)."""

OFF: Final = "Off"
EXPLICIT: Final = "Explicit"
BASELINE: Final = "Baseline"
EXPLORING: Final = "Exploring"
SETTLED: Final = "Settled"
SIGNAL_THROUGHPUT: Final = "throughput"
SIGNAL_CLOCK: Final = "clock"


@dataclass(frozen=True)
class JobSignals:
    """What the job's GPUs did over the latest report windows of its nodes."""

    gpus: int
    power_watts: float
    """Mean draw per GPU."""
    sm_clock_mhz: float | None
    compute: float | None
    """Compute-bound fraction of the phase, 0-1 (see the module docstring)."""
    throughput: float | None
    """The gang's published throughput; None unless every pod publishes one."""
    window_start: datetime
    """Start of the oldest window used: the measurements cover nothing before it."""
    min_watts: float
    default_watts: float
    power_bound: bool
    """Drawing at its limit (SwPowerCap or within 5 % of the enforced limit)."""


def compute_fraction(gpu: GpuReading) -> float | None:
    tensor = gpu.tensor_activity_percent
    sm = gpu.sm_activity_percent
    if tensor is None and sm is None:
        return None
    dram = gpu.dram_activity_percent or 0.0
    return max(tensor or 0.0, (sm or 0.0) - dram, 0.0) / 100.0


def job_signals(snapshot: ClusterSnapshot, key: JobKey) -> JobSignals | None:
    """The job's GPUs as its nodes' agents last reported them; None before every node has reported them."""
    pods = {p.key: p for p in snapshot.live_pods(key) if p.node is not None and not p.terminating}
    if not pods:
        return None
    gpus: list[GpuReading] = []
    starts: list[datetime] = []
    throughput: dict[tuple[str, str], float | None] = dict.fromkeys(pods)
    for node in sorted({p.node for p in pods.values() if p.node is not None}):
        report = snapshot.telemetry.get(node)
        if report is None or report.status is None or report.status.timestamp is None:
            return None
        mine = [g for g in report.status.gpus if g.pod is not None and (g.pod.namespace, g.pod.name) in pods]
        if not mine:
            return None
        gpus.extend(mine)
        starts.append(report.status.timestamp - timedelta(seconds=report.status.window_seconds or 0.0))
        for ref in report.status.pods:
            if (ref.namespace, ref.name) in throughput and ref.throughput_per_second is not None:
                throughput[(ref.namespace, ref.name)] = ref.throughput_per_second
        for g in mine:
            if g.pod is not None and g.pod.throughput_per_second is not None:
                throughput[(g.pod.namespace, g.pod.name)] = g.pod.throughput_per_second
    powers = [g.power_watts for g in gpus if g.power_watts is not None]
    if not powers:
        return None
    clocks = [g.sm_clock_mhz for g in gpus if g.sm_clock_mhz is not None]
    fractions = [f for f in (compute_fraction(g) for g in gpus) if f is not None]
    rates = list(throughput.values())
    mins = [g.min_power_limit_watts for g in gpus if g.min_power_limit_watts is not None]
    defaults = [g.default_power_limit_watts for g in gpus if g.default_power_limit_watts is not None]
    bound = any(
        "SwPowerCap" in g.clock_event_reasons
        or (
            g.power_watts is not None
            and g.power_limit_watts is not None
            and g.power_watts >= 0.95 * g.power_limit_watts
        )
        for g in gpus
    )
    return JobSignals(
        gpus=len(gpus),
        power_watts=sum(powers) / len(powers),
        sm_clock_mhz=sum(clocks) / len(clocks) if clocks else None,
        compute=sum(fractions) / len(fractions) if fractions else None,
        throughput=sum(r for r in rates if r is not None) if rates and all(r is not None for r in rates) else None,
        window_start=min(starts),
        min_watts=max(mins) if mins else 0.0,
        default_watts=min(defaults) if defaults else max(g.power_limit_watts or 0.0 for g in gpus),
        power_bound=bound,
    )


def slowdown(state: JobPowerStatus, signals: JobSignals) -> float | None:
    """Extra time per unit of work at the current cap, relative to the baseline (0.05 = 5 % slower)."""
    if state.baseline is None or state.baseline <= 0:
        return None
    if state.signal == SIGNAL_THROUGHPUT:
        if signals.throughput is None or signals.throughput <= 0:
            return None
        return state.baseline / signals.throughput - 1.0
    if signals.sm_clock_mhz is None or signals.sm_clock_mhz <= 0:
        return None
    c = state.baseline_compute if state.baseline_compute is not None else 1.0
    return c * (state.baseline / signals.sm_clock_mhz - 1.0)


def _first_cap(signals: JobSignals) -> int:
    top = int(signals.default_watts)
    if signals.power_bound:
        cap = top - STEP_WATTS
    else:
        cap = int(math.ceil((signals.power_watts + 1.0) / STEP_WATTS) * STEP_WATTS)
    return max(math.ceil(signals.min_watts), min(cap, top - STEP_WATTS))


def _status(mode: str, state: str, now: datetime, reason: str, **kw: object) -> JobPowerStatus:
    return JobPowerStatus.model_validate({"mode": mode, "state": state, "since": now, "reason": reason, **kw})


def next_power_state(
    prev: JobPowerStatus | None,
    mode: str,
    explicit_cap: int | None,
    signals: JobSignals | None,
    now: datetime,
) -> JobPowerStatus:
    """One step of the job's search: what to ask for now, from what it asked before and what was measured."""
    if explicit_cap is not None:
        if prev is not None and prev.state == EXPLICIT and prev.cap_watts == explicit_cap and prev.mode == mode:
            return prev
        return _status(mode, EXPLICIT, now, f"spec.power.capWatts: {explicit_cap} W per GPU", cap_watts=explicit_cap)
    bound = SLOWDOWN_BOUNDS.get(mode)
    if bound is None:
        if prev is not None and prev.state == OFF and prev.mode == mode:
            return prev
        return _status(mode, OFF, now, "Performance: no automatic cap")
    if prev is None or prev.mode != mode or prev.state not in (BASELINE, EXPLORING, SETTLED):
        return _status(mode, BASELINE, now, "measuring without a cap")
    if prev.budget_cap_watts is not None and (prev.cap_watts is None or prev.budget_cap_watts < prev.cap_watts):
        return prev.model_copy(
            update={"reason": f"search paused: a power budget holds the job at {prev.budget_cap_watts} W per GPU"}
        )
    since = prev.since or now
    if signals is None or signals.window_start < since + SETTLE:
        return prev  # no window measured wholly under the current cap yet
    if prev.state == BASELINE:
        if signals.min_watts <= 0 or signals.default_watts <= signals.min_watts:
            return prev.model_copy(update={"reason": "the GPUs report no power-limit range: nothing to search"})
        if signals.throughput is not None and signals.throughput > 0:
            signal, base = SIGNAL_THROUGHPUT, signals.throughput
        elif signals.sm_clock_mhz is not None and signals.sm_clock_mhz > 0:
            signal, base = SIGNAL_CLOCK, signals.sm_clock_mhz
        else:
            return prev.model_copy(update={"reason": "no throughput or SM clock reported yet"})
        cap = _first_cap(signals)
        c = signals.compute if signals.compute is not None else 1.0
        return _status(
            mode,
            EXPLORING,
            now,
            f"baseline {base:.1f} ({signal}) at {signals.power_watts:.0f} W per GPU, compute-bound {c:.2f}; "
            f"trying {cap} W",
            cap_watts=cap,
            signal=signal,
            baseline=round(base, 3),
            baseline_compute=round(c, 3),
        )
    if (
        signals.compute is not None
        and prev.baseline_compute is not None
        and abs(signals.compute - prev.baseline_compute) > PHASE_SHIFT
        and (prev.state == EXPLORING or now - since >= RESEARCH_COOLDOWN)
    ):
        return _status(
            mode,
            BASELINE,
            now,
            f"phase changed (compute-bound {prev.baseline_compute:.2f} -> {signals.compute:.2f}): measuring again",
        )
    switched = _signal_switch(prev, mode, signals, now)
    if switched is not None:
        return switched
    if prev.throughput_missing_since is not None:  # it came back before the limit: measure with it again
        prev = prev.model_copy(
            update={"throughput_missing_since": None, "reason": "the job publishes its throughput again"}
        )
    slow = slowdown(prev, signals)
    if slow is None:
        return prev
    current = prev.cap_watts
    shown = round(slow * 100, 1)
    limit = f"{bound * 100:.0f} %"
    if current is None:
        return prev.model_copy(update={"slowdown_percent": shown})
    cap = current
    if slow > bound:
        back = cap + STEP_WATTS
        if back >= signals.default_watts:
            return _status(
                mode,
                SETTLED,
                now,
                f"{cap} W slowed it {shown} % (> {limit}): no cap",
                slowdown_percent=shown,
                **_keep(prev),
            )
        return _status(
            mode,
            SETTLED,
            now,
            f"{cap} W slowed it {shown} % (> {limit}): settled one step up at {back} W",
            cap_watts=back,
            slowdown_percent=shown,
            **_keep(prev),
        )
    if prev.state == SETTLED:
        return prev.model_copy(update={"slowdown_percent": shown})
    lower = cap - STEP_WATTS
    if lower < signals.min_watts:
        return _status(
            mode,
            SETTLED,
            now,
            f"{cap} W (the GPU's minimum step) slows it {shown} % (≤ {limit})",
            cap_watts=cap,
            slowdown_percent=shown,
            **_keep(prev),
        )
    return _status(
        mode,
        EXPLORING,
        now,
        f"{cap} W slowed it {shown} % (≤ {limit}): trying {lower} W",
        cap_watts=lower,
        slowdown_percent=shown,
        **_keep(prev),
    )


def _signal_switch(prev: JobPowerStatus, mode: str, signals: JobSignals, now: datetime) -> JobPowerStatus | None:
    """A search measuring with a throughput that stopped coming waits THROUGHPUT_STALE for it, then measures again
    with the SM clock (as for a job that never published); a search on the clock whose job publishes (again)
    measures again with the throughput. None: go on with the signal it has."""
    published = signals.throughput is not None and signals.throughput > 0
    if prev.signal == SIGNAL_THROUGHPUT and not published:
        missing = prev.throughput_missing_since
        if missing is None:
            return prev.model_copy(
                update={
                    "throughput_missing_since": now,
                    "reason": f"the job stopped publishing its throughput: keeping {prev.cap_watts or 'no'} W cap, "
                    f"waiting up to {THROUGHPUT_STALE.total_seconds():.0f} s before measuring with the SM clock",
                }
            )
        if now - missing < THROUGHPUT_STALE or signals.sm_clock_mhz is None or signals.sm_clock_mhz <= 0:
            return prev
        return _status(
            mode,
            BASELINE,
            now,
            f"no throughput published for {(now - missing).total_seconds():.0f} s (limit "
            f"{THROUGHPUT_STALE.total_seconds():.0f} s): measuring again without a cap, with the SM clock",
        )
    if prev.signal == SIGNAL_CLOCK and published:
        return _status(mode, BASELINE, now, "the job publishes its throughput: measuring again without a cap, with it")
    return None


def _keep(prev: JobPowerStatus) -> dict[str, object]:
    return {"signal": prev.signal, "baseline": prev.baseline, "baseline_compute": prev.baseline_compute}


@dataclass(frozen=True)
class PowerNote:
    """Something a user should hear about as an Event on the job."""

    reason: str
    message: str
    warning: bool = False


def clamp_note(explicit_cap: int, signals: JobSignals | None, max_watts: float | None) -> PowerNote | None:
    """capWatts outside what the job's GPUs accept: the agents clamp it; say so."""
    if signals is None:
        return None
    if signals.min_watts and explicit_cap < signals.min_watts:
        return PowerNote(
            "PowerCapClamped",
            f"spec.power.capWatts {explicit_cap} W is below the GPUs' minimum limit {signals.min_watts:.0f} W: "
            f"they run at {signals.min_watts:.0f} W",
            warning=True,
        )
    if max_watts and explicit_cap > max_watts:
        return PowerNote(
            "PowerCapClamped",
            f"spec.power.capWatts {explicit_cap} W is above the GPUs' maximum limit {max_watts:.0f} W: "
            f"they run at {max_watts:.0f} W",
            warning=True,
        )
    return None


def job_power_step(snapshot: ClusterSnapshot, key: JobKey, now: datetime) -> tuple[JobPowerStatus, list[PowerNote]]:
    """The job's next power state and what to tell the user about the step."""
    info = snapshot.jobs[key]
    spec = info.job.spec.power
    prev = info.job.status.power if info.job.status is not None else None
    signals = job_signals(snapshot, key)
    state = next_power_state(prev, str(spec.mode), spec.cap_watts, signals, now)
    notes: list[PowerNote] = []
    if prev is not None and prev.mode is not None and prev.mode != state.mode:
        notes.append(PowerNote("PowerModeChanged", f"power mode {prev.mode} -> {state.mode}: {state.reason}"))
    if state.state == EXPLICIT and spec.cap_watts is not None:
        note = clamp_note(spec.cap_watts, signals, _max_watts(snapshot, key))
        if note is not None:
            # The clamp is kept in the reason, so the Event is posted once per cap, not at every pass.
            if prev is None or prev.reason != note.message:
                notes.append(note)
            state = state.model_copy(update={"reason": note.message})
    elif state.state in (EXPLORING, SETTLED) and (prev is None or prev.state != state.state):
        notes.append(PowerNote("PowerCapSearch", state.reason or ""))
    return state, notes


def _max_watts(snapshot: ClusterSnapshot, key: JobKey) -> float | None:
    pods = {p.key: p.node for p in snapshot.live_pods(key) if p.node is not None}
    tops: list[float] = []
    for node in set(pods.values()):
        report = snapshot.telemetry.get(node)
        if report is None or report.status is None:
            continue
        for g in report.status.gpus:
            if g.pod is not None and (g.pod.namespace, g.pod.name) in pods and g.max_power_limit_watts is not None:
                tops.append(g.max_power_limit_watts)
    return min(tops) if tops else None
