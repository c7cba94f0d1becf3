"""Alibaba PAI's GPU pod list (cluster-trace-gpu-v2023, `openb_pod_list_default.csv`) as a job trace.

How each row becomes a TraceJob (stated, so results can be read against the trace):

- Only pods that request GPUs and ran: `num_gpu` ≥ 1 and a `scheduled_time` (1,088 CPU-only pods take no
  GPU; 861 pods were still pending when the trace ended and never ran, so they have no run time).
- A pod is one worker on one node: a gang of one replica with `gpusPerReplica = num_gpu` (1, 2, 4 or 8).
- Fractional GPUs (`gpu_milli` < 1000, 3,078 pods, e.g. 460 = 0.46 of a GPU): the core allocates whole
  `nvidia.com/gpu` devices and cannot share one, so each is rounded up to one whole GPU. This overstates
  their demand (the cluster looks fuller than Alibaba's, which packed shares onto GPUs).
- Submission = `creation_time`; run time = `deletion_time − scheduled_time` (the time it held its GPU, which
  for long-running services is most of the trace), at least 1 s. A single pod cannot be spread, so its run
  time does not depend on placement (packed = spread).
- Priority from `qos`: LS (latency-sensitive) and Guaranteed → 1, Burstable and BE (best-effort) → 0, so
  latency-sensitive pods may preempt best-effort ones, as in Alibaba's scheduler.
- `gpu_spec` is empty for every pod of this file, so any GPU model of the fleet will do.

`repeated(jobs, copies)` synthesizes a longer trace (e.g. 60,000 jobs for a speed test): copy k is the
same pods shifted by k × the trace's span (the last submission + 1 s), so the arrival rate stays the same.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from powertrain.sim.trace import TraceError, TraceJob

COLUMNS: Final = ("name", "num_gpu", "gpu_milli", "qos", "creation_time", "deletion_time", "scheduled_time")
PRIORITY: Final = {"LS": 1, "Guaranteed": 1, "Burstable": 0, "BE": 0}


def _float(row: dict[str, str], column: str, where: str) -> float:
    raw = (row.get(column) or "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise TraceError(f"{where}: {column}={raw!r} is not a number") from None
    if value < 0:
        raise TraceError(f"{where}: {column}={raw!r} is invalid: must be ≥ 0")
    return value


def parse_pods(text: str, source: str = "pods") -> list[TraceJob]:
    """GPU pods that ran, in submission order (module rules)."""
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise TraceError(f"{source}: missing column(s) {', '.join(missing)} of an Alibaba pod list")
    jobs: list[TraceJob] = []
    for line, row in enumerate(reader, start=2):
        where = f"{source}:{line}"
        gpus = int(_float(row, "num_gpu", where))
        if gpus < 1 or not (row.get("scheduled_time") or "").strip():
            continue
        submit = _float(row, "creation_time", where)
        run = max(1.0, _float(row, "deletion_time", where) - _float(row, "scheduled_time", where))
        qos = (row.get("qos") or "").strip()
        jobs.append(
            TraceJob(
                job_id=row["name"].strip() or f"line-{line}",
                submit_s=submit,
                gpus=gpus,
                model=f"alibaba-{qos.lower() or 'pod'}",
                packed_s=run,
                spread_s=run,
                gpus_per_replica=gpus,
                priority=PRIORITY.get(qos, 0),
            )
        )
    if not jobs:
        raise TraceError(f"{source}: no GPU pod that ran")
    order = sorted(range(len(jobs)), key=lambda i: (jobs[i].submit_s, i))
    return [jobs[i] for i in order]


def load_pods(path: Path) -> list[TraceJob]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"--trace: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    return parse_pods(text, str(path))


def repeated(jobs: Sequence[TraceJob], copies: int) -> list[TraceJob]:
    """The trace `copies` times, each copy shifted by the trace's span (module rule)."""
    span = max((j.submit_s for j in jobs), default=0.0) + 1.0
    out: list[TraceJob] = []
    for k in range(copies):
        for j in jobs:
            out.append(
                TraceJob(
                    f"{j.job_id}~{k}" if k else j.job_id,
                    j.submit_s + k * span,
                    j.gpus,
                    j.model,
                    j.packed_s,
                    j.spread_s,
                    j.gpus_per_replica,
                    j.priority,
                )
            )
    return out
