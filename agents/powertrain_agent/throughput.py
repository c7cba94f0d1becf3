"""Training throughput a pod publishes, for the operator's power-mode search (its best slowdown signal).

The contract for a training script: write its current rate — one number, samples/s or steps/s, in whatever unit
it keeps constant — to the file `/tmp/powertrain-throughput` inside its container, e.g. every few steps:

    with open("/tmp/powertrain-throughput.new", "w") as f: f.write(f"{samples_per_second:.3f}\\n")
    os.replace("/tmp/powertrain-throughput.new", "/tmp/powertrain-throughput")

The agent reads it through `/proc/<pid>/root/` of a process that holds one of the pod's GPUs (the agent already
runs with the host's PID namespace to attribute GPUs to pods), so it needs no port, no network policy and no
RBAC, and works wherever attribution does. A file older than MAX_AGE_S is stale (the job stopped publishing)
and is ignored. The sim backend publishes its simulated throughput directly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Final

PUBLISHED_PATH: Final = "tmp/powertrain-throughput"
MAX_AGE_S: Final = 60.0


def read_published(proc_root: Path, pid: int, now: float) -> float | None:
    """The rate the process's container published, or None (no file, unreadable, stale, not a number)."""
    path = proc_root / str(pid) / "root" / PUBLISHED_PATH
    try:
        if now - path.stat().st_mtime > MAX_AGE_S:
            return None
        value = float(path.read_text(encoding="ascii", errors="replace").split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return value if math.isfinite(value) and value >= 0 else None
