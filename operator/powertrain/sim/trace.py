"""Philly-derived job streams (Gavel's `seed0-*.csv`): what each job asks for and how long it runs.

Columns: job_id, submit_time_s, gpus, model, duration_packed_s, duration_spread_s. Durations are the job's
steps divided by Gavel's measured isolated V100 throughput (`throughputs.csv`): packed = all GPUs in one
server, spread = one GPU per server.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Final

COLUMNS: Final = ("job_id", "submit_time_s", "gpus", "model", "duration_packed_s", "duration_spread_s")
MAX_GPUS_PER_JOB: Final = 4096


class TraceError(ValueError):
    """A trace that cannot be replayed; the message names the file, line, field, value and what is allowed."""


@dataclass(frozen=True)
class TraceJob:
    job_id: str
    submit_s: float
    gpus: int
    model: str
    packed_s: float
    spread_s: float
    gpus_per_replica: int = 1
    """GPUs of each worker: 1 for the Philly streams (any split), the whole pod for Alibaba's (one node)."""
    priority: int = 0

    @property
    def replicas(self) -> int:
        return self.gpus // self.gpus_per_replica

    @property
    def sensitivity(self) -> float:
        """Measured slowdown spread vs packed (Gavel's throughputs for its model and size), at least 1."""
        return min(100.0, max(1.0, self.spread_s / self.packed_s))

    @property
    def locality_sensitive(self) -> bool:
        """Multi-GPU and at least 20 % slower when spread (e.g. LM, ResNet-18; not ResNet-50)."""
        return self.gpus > 1 and self.spread_s > 1.2 * self.packed_s


def _number(row: dict[str, str], column: str, where: str, *, whole: bool = False) -> float:
    raw = (row.get(column) or "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise TraceError(f"{where}: {column}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise TraceError(f"{where}: {column}={raw!r} is invalid: must be a finite number ≥ 0")
    if whole and value != int(value):
        raise TraceError(f"{where}: {column}={raw!r} is invalid: must be a whole number")
    return value


def parse_trace(text: str, source: str = "trace") -> list[TraceJob]:
    """Jobs in submission order (stable for equal submit times: file order)."""
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [col for col in COLUMNS if col not in header]
    if missing:
        raise TraceError(
            f"{source}: missing column(s) {', '.join(missing)}; a job trace needs the header {','.join(COLUMNS)}"
        )
    jobs: list[TraceJob] = []
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "") for k, v in raw.items()}
        where = f"{source}:{line}"
        gpus = int(_number(row, "gpus", where, whole=True))
        if not 1 <= gpus <= MAX_GPUS_PER_JOB:
            raise TraceError(f"{where}: gpus={gpus} is invalid: must lie within 1..{MAX_GPUS_PER_JOB}")
        packed = _number(row, "duration_packed_s", where)
        spread = _number(row, "duration_spread_s", where)
        if packed <= 0 or spread <= 0:
            raise TraceError(f"{where}: durations must be > 0, got packed={packed} spread={spread}")
        jobs.append(
            TraceJob(
                job_id=row["job_id"].strip() or f"line-{line}",
                submit_s=_number(row, "submit_time_s", where),
                gpus=gpus,
                model=row["model"].strip(),
                packed_s=packed,
                spread_s=spread,
            )
        )
    if not jobs:
        raise TraceError(f"{source}: no jobs (the file has a header but no rows)")
    order = sorted(range(len(jobs)), key=lambda i: (jobs[i].submit_s, i))
    return [jobs[i] for i in order]


def load_trace(path: Path) -> list[TraceJob]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"--trace: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TraceError(f"--trace: {str(path)!r} is not a UTF-8 text (CSV) file") from None
    return parse_trace(text, str(path))
