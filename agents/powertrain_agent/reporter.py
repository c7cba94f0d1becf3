"""NodeTelemetry status for this node only: window averages, energy deltas, health and the pod->GPU map.

Write rate is bounded by a deadband and two intervals:
- never more often than `min_interval_s` (default 20 s);
- between `min_interval_s` and `max_interval_s` only when something the operator acts on changed: a GPU's
  health, the pod->GPU map, a power limit or an actuation, or power / SM activity moving past the deadband
  (default 50 W / 15 points);
- at least every `max_interval_s` (default 60 s) as a heartbeat, so the operator can tell a dead agent.

Write budget for a 5,000-node cluster: at most 5,000 / 20 s = 250 status patches/s if every node changed all
the time, 5,000 / 60 s ≈ 83 patches/s when steady. Each patch is one ~3-6 KB merge patch of the status
subresource (8 GPUs). For scale, the kubelets' node-lease heartbeats alone are 5,000 / 10 s = 500 writes/s.
The first write waits a random `initial_jitter_s` so a DaemonSet rollout does not write in lock-step.

A write that fails (API server down, throttling, expired credentials) is retried with exponential back-off and
jitter: the n-th retry waits a random time in [d/2, d], d = min(`backoff_max_s`, `min_interval_s` * 2^(n-1)),
and never less than `min_interval_s`, so attempts, failed or not, stay within the write budget above and a
fleet of agents does not retry in step when the API server comes back. The window of a failed write is not
lost: the agent folds it into the next one (`Rollup.put_back`), so the next report covers the whole span.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from powertrain_agent.reasons import decode_reasons
from powertrain_agent.rollup import GpuWindow
from powertrain_agent.state import Snapshot

if TYPE_CHECKING:
    from powertrain.api.common import Condition
    from powertrain.api.telemetry import NodeTelemetryStatus, PodReading, PodRef

# The API models (pydantic + CEL) are imported where a report is built, so the exporter-only mode
# (--no-kube) runs with just pynvml and prometheus-client.

log = logging.getLogger(__name__)


# Actuations after which the operator's request is in force on the card (not dry-run, failed or unsupported).
APPLIED_ACTIONS = frozenset({"set", "unchanged"})


class TelemetryApi(Protocol):
    """The three API calls the reporter makes (kube.KubeClient in production, a fake in tests)."""

    def create_node_telemetry(self, name: str) -> None:
        """Create the object with an empty spec; raises ApiConflict when it exists."""
        ...

    def patch_node_telemetry_status(self, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource; raises ApiNotFound when the object does not exist."""
        ...


class ApiNotFound(Exception):
    pass


class ApiConflict(Exception):
    pass


@dataclass(frozen=True)
class GpuFingerprint:
    healthy: bool
    pod: str | None
    power_watts: float
    sm_activity: float
    limit_watts: float | None
    action: str | None


@dataclass
class ReportPolicy:
    min_interval_s: float = 20.0
    max_interval_s: float = 60.0
    power_deadband_w: float = 50.0
    activity_deadband: float = 15.0
    initial_jitter_s: float = 0.0
    backoff_max_s: float = 120.0
    rng: random.Random = field(default_factory=random.Random)
    last_write: float | None = None
    last_fingerprint: dict[str, GpuFingerprint] = field(default_factory=dict)
    first_due: float | None = None
    failures: int = 0  # consecutive failed writes
    retry_at: float | None = None

    def decide(self, now: float, fingerprint: dict[str, GpuFingerprint]) -> str | None:
        """Why a write is due now ("first", "heartbeat", "changed: ...", "retry n"), or None to wait."""
        if self.retry_at is not None:
            # Whatever changed meanwhile waits for the retry: the retry carries the latest state anyway.
            return f"retry {self.failures}" if now >= self.retry_at else None
        if self.last_write is None:
            if self.first_due is None:
                self.first_due = now + self.initial_jitter_s
            return "first" if now >= self.first_due else None
        since = now - self.last_write
        if since >= self.max_interval_s:
            return "heartbeat"
        if since < self.min_interval_s:
            return None
        change = self._significant_change(fingerprint)
        return f"changed: {change}" if change else None

    def _significant_change(self, new: dict[str, GpuFingerprint]) -> str | None:
        old = self.last_fingerprint
        if set(old) != set(new):
            return "GPU set"
        for uuid, n in new.items():
            o = old[uuid]
            if n.healthy != o.healthy:
                return f"health of {uuid}"
            if n.pod != o.pod:
                return f"pod on {uuid}"
            if n.limit_watts != o.limit_watts or n.action != o.action:
                return f"power limit of {uuid}"
            if abs(n.power_watts - o.power_watts) > self.power_deadband_w:
                return f"power of {uuid}"
            if abs(n.sm_activity - o.sm_activity) > self.activity_deadband:
                return f"activity of {uuid}"
        return None

    def written(self, now: float, fingerprint: dict[str, GpuFingerprint]) -> None:
        self.last_write = now
        self.last_fingerprint = fingerprint
        self.failures = 0
        self.retry_at = None

    def failed(self, now: float) -> float:
        """Record a failed write; returns the seconds until the retry."""
        self.failures += 1
        nominal = min(self.backoff_max_s, self.min_interval_s * 2 ** min(self.failures - 1, 30))
        delay = max(self.min_interval_s, self.rng.uniform(nominal / 2, nominal))
        self.retry_at = now + delay
        return delay


def fingerprint(snap: Snapshot) -> dict[str, GpuFingerprint]:
    out = {}
    for uuid, s in snap.gpus.items():
        healthy, _ = snap.health.get(uuid, (True, None))
        pod = snap.pods.get(uuid)
        act = snap.actuations.get(uuid)
        out[uuid] = GpuFingerprint(
            healthy,
            pod.uid if pod else None,
            s.power_watts or 0.0,
            s.sm_activity_percent if s.sm_activity_percent is not None else (s.utilization_percent or 0.0),
            s.power_limit_watts,
            act.action if act else None,
        )
    return out


class ConditionBook:
    """Keeps lastTransitionTime stable: it changes only when a condition's status changes."""

    def __init__(self) -> None:
        self._since: dict[str, tuple[str, datetime]] = {}

    def make(self, type_: str, status: bool, reason: str, message: str, now: datetime) -> Condition:
        from powertrain.api.common import Condition

        value = "True" if status else "False"
        prev = self._since.get(type_)
        if prev is None or prev[0] != value:
            self._since[type_] = (value, now)
        return Condition(
            type=type_, status=value, reason=reason, message=message, last_transition_time=self._since[type_][1]
        )


@dataclass(frozen=True, slots=True)
class PodRates:
    """One pod's byte rates over the report window, bytes/s; None where a counter was unreadable."""

    net_rx: float | None = None
    net_tx: float | None = None
    read: float | None = None
    write: float | None = None


def build_status(
    snap: Snapshot,
    windows: dict[str, GpuWindow],
    energy_deltas: dict[str, float],
    window_seconds: float,
    network_rates: dict[str, tuple[str, float, float]],
    now_wall: float,
    version: str,
    conditions: ConditionBook,
    pod_rates: Mapping[str, PodRates] | None = None,
) -> NodeTelemetryStatus:
    from powertrain.api.telemetry import GpuReading, NetworkReading, NodeTelemetryStatus, PodReading, PodRef

    gpus = []
    pods: dict[str, PodRef] = {}
    unhealthy = []
    for uuid, s in sorted(snap.gpus.items(), key=lambda kv: kv[1].index):
        w = windows.get(uuid, GpuWindow())
        healthy, reason = snap.health.get(uuid, (True, None))
        if not healthy:
            unhealthy.append(f"GPU {s.index} ({reason})")
        pod = snap.pods.get(uuid)
        ref = None
        if pod is not None:
            rate = snap.throughput.get(pod.uid)
            ref = PodRef(
                namespace=pod.namespace,
                name=pod.name,
                uid=pod.uid,
                training_job=pod.training_job,
                throughput_per_second=round(rate, 3) if rate is not None else None,
            )
            pods[pod.uid] = ref
        act = snap.actuations.get(uuid)
        mem_used = w.mean("memory_used_bytes")
        gpus.append(
            GpuReading(
                index=s.index,
                uuid=uuid,
                model=s.model,
                utilization_percent=_round(w.mean("utilization_percent")),
                sm_activity_percent=_round(w.mean("sm_activity_percent")),
                sm_occupancy_percent=_round(w.mean("sm_occupancy_percent")),
                tensor_activity_percent=_round(w.mean("tensor_activity_percent")),
                dram_activity_percent=_round(w.mean("dram_activity_percent")),
                memory_used_bytes=int(mem_used) if mem_used is not None else None,
                memory_total_bytes=s.memory_total_bytes,
                power_watts=_round(w.mean("power_watts")),
                energy_joules=_round(energy_deltas.get(uuid)),
                power_limit_watts=s.power_limit_watts,
                requested_power_limit_watts=act.target_watts if act and act.action in APPLIED_ACTIONS else None,
                default_power_limit_watts=s.default_power_limit_watts,
                min_power_limit_watts=s.min_power_limit_watts,
                max_power_limit_watts=s.max_power_limit_watts,
                temperature_celsius=_round(w.mean("temperature_celsius")),
                sm_clock_mhz=_round(w.mean("sm_clock_mhz")),
                clock_event_reasons=decode_reasons(w.reasons),
                healthy=healthy,
                health_reason=reason,
                pod=ref,
            )
        )
    network = [
        NetworkReading(
            interface=name,
            kind=kind if kind in ("ethernet", "infiniband") else "other",
            rx_bytes_per_second=round(rx, 1),
            tx_bytes_per_second=round(tx, 1),
        )
        for name, (kind, rx, tx) in sorted(network_rates.items())
    ]
    readings = _pod_readings(snap, pods, pod_rates or {}, network_rates, PodReading)
    now = datetime.fromtimestamp(now_wall, tz=UTC).replace(microsecond=0)
    conds = [
        conditions.make(
            "Ready",
            bool(snap.gpus),
            "Sampling" if snap.gpus else "NoGpus",
            f"{len(snap.gpus)} GPU(s) sampled by the {snap.backend} backend",
            now,
        ),
        conditions.make(
            "GpusHealthy",
            not unhealthy,
            "AllHealthy" if not unhealthy else "NeedsDrain",
            "; ".join(unhealthy) if unhealthy else "no GPU needs draining",
            now,
        ),
        _power_condition(snap, conditions, now),
    ]
    return NodeTelemetryStatus(
        agent_version=version,
        backend=snap.backend,
        timestamp=now,
        window_seconds=round(window_seconds, 3),
        gpus=gpus,
        network=network,
        pods=readings,
        pod_attribution=snap.attribution,
        conditions=conds,
    )


def _pod_readings(
    snap: Snapshot,
    pods: Mapping[str, PodRef],
    pod_rates: Mapping[str, PodRates],
    network_rates: dict[str, tuple[str, float, float]],
    reading: type[PodReading],
) -> list[PodReading]:
    """Per pod: its GPUs, its own network and storage rates, and the node's InfiniBand traffic when it holds every
    GPU of the node (RDMA bypasses the pod's network namespace; with several pods it cannot be split)."""
    gpus_of: dict[str, int] = {}
    for pod in snap.pods.values():
        gpus_of[pod.uid] = gpus_of.get(pod.uid, 0) + 1
    ib = [(rx, tx) for kind, rx, tx in network_rates.values() if kind == "infiniband"]
    has_ib = any(kind == "infiniband" for kind, _, _ in snap.network.values()) or bool(ib)
    out = []
    for uid, ref in sorted(pods.items(), key=lambda kv: (kv[1].namespace, kv[1].name)):
        rates = pod_rates.get(uid, PodRates())
        whole_node = gpus_of.get(uid, 0) == len(snap.gpus) > 0
        scope = None if not has_ib else ("pod" if whole_node else "shared")
        attributed = scope == "pod" and bool(ib)
        out.append(
            reading(
                **ref.model_dump(),
                gpus=gpus_of.get(uid, 0),
                network_rx_bytes_per_second=_round(rates.net_rx, 1),
                network_tx_bytes_per_second=_round(rates.net_tx, 1),
                infiniband=scope,
                infiniband_rx_bytes_per_second=round(sum(r for r, _ in ib), 1) if attributed else None,
                infiniband_tx_bytes_per_second=round(sum(t for _, t in ib), 1) if attributed else None,
                storage_read_bytes_per_second=_round(rates.read, 1),
                storage_write_bytes_per_second=_round(rates.write, 1),
            )
        )
    return out


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


class StatusWriter:
    """Writes the status, creating the NodeTelemetry object first when it does not exist yet.

    The object is owned by its Node (an owner reference), so when the Node is deleted the API server's garbage
    collector deletes its NodeTelemetry too; an object that predates that (an older agent's) is adopted once.
    """

    def __init__(self, api: TelemetryApi, node: str) -> None:
        self.api = api
        self.node = node
        self.owner_checked = False

    def write(self, status: NodeTelemetryStatus) -> str:
        body = status.to_wire()
        try:
            self.api.patch_node_telemetry_status(self.node, body)
            result = "ok"
        except ApiNotFound:
            # A conflict means it was created meanwhile (by the operator or a previous agent): fine.
            with contextlib.suppress(ApiConflict):
                self.api.create_node_telemetry(self.node)
            self.api.patch_node_telemetry_status(self.node, body)
            result = "created"
        self._adopt_once()
        return result

    def _adopt_once(self) -> None:
        ensure = getattr(self.api, "ensure_owned_by_node", None)  # test fakes without owners leave it out
        if self.owner_checked or ensure is None:
            return
        try:
            ensure(self.node)
            self.owner_checked = True
        except Exception as exc:  # the report is written; the owner reference is retried with the next one
            log.warning("NodeTelemetry/%s: cannot set its Node owner reference yet: %s", self.node, exc)


def _power_condition(snap: Snapshot, conditions: ConditionBook, now: datetime) -> Condition:
    """PowerLimitsApplied: False while a requested limit could not be set, or the requests expired."""
    failed = sorted(f"{a.uuid}: {a.message}" for a in snap.actuations.values() if a.action == "failed")
    if failed:
        return conditions.make("PowerLimitsApplied", False, "SetFailed", "; ".join(failed), now)
    if snap.requests_expired:
        return conditions.make(
            "PowerLimitsApplied",
            False,
            "RequestsExpired",
            "spec.powerLimitsExpireAt passed without renewal: every GPU is back at its default limit",
            now,
        )
    count = len(snap.operator_requests)
    return conditions.make("PowerLimitsApplied", True, "Applied", f"{count} requested limit(s) in force", now)
