"""The largest numbers the API accepts, and why: every number a user (or agent) writes is bounded by what the
operator can compute with, so an absurd value is refused with a message instead of breaking a pass later.

Times are added to timestamps (datetime cannot go past year 9999, ~2.5e11 s from now), so every duration is
capped at ten years; counts that Kubernetes stores as int32 stay within int32; watts and bytes get limits
far above any real hardware but well inside float and int64 precision.
"""

from __future__ import annotations

from typing import Final

MAX_SECONDS: Final = 315_360_000
"""Ten years (3,650 days): the longest duration (deadline, TTL, window, wait) any field accepts."""

INT32_MAX: Final = 2_147_483_647
"""Counts Kubernetes itself keeps as int32 (replicas, restarts, generations of a status)."""

MAX_GPUS: Final = 10_000_000
"""GPUs in one quota or status count: far beyond any cluster, far below overflow."""

MAX_CLUSTER_WATTS: Final = 1_000_000_000
"""One gigawatt: the largest power budget (a cluster, a domain)."""

MAX_GPU_WATTS: Final = 10_000
"""Per GPU power limits and readings, watts (an H200 draws 700 W)."""

MAX_BYTES: Final = 1 << 50
"""Device memory of one GPU, bytes (1 PiB)."""

MAX_RATE: Final = 1e15
"""Network rates, bytes per second (8 Pb/s)."""

MAX_JOULES: Final = 1e18
"""Energy counters, joules (an exajoule: centuries of a large cluster)."""

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""Generations and other int64 counters: the largest integer every JSON tool keeps exact (Helm and JavaScript
read numbers as float64, so a larger bound in a CRD would come out changed)."""
