"""Defragmentation in the simulator: Philly job streams (Gavel's generator) at 4× load, with and without it.

Run: .venv/bin/python bench/defrag_sim_bench.py [--out bench/results/defragmentation.md]

Cluster and traces as bench/simulate_bench.py (32 nodes × 8 GPUs, 8 racks of 4 nodes, submissions 4× faster).
Each job is a gang of one-GPU workers at the node level: `topology` (Preferred: the default cost-aware wait)
and `packed` (Required one node for gangs that fit one). With defragmentation the policy's
`rescheduling.defragmentation` is Act with its defaults (blocked ≥ 120 s, smaller gangs of equal priority,
each able to start elsewhere, ≤ 64 GPUs per blocked gang and 256 per hour, a moved gang not moved again for
an hour); a moved gang keeps its work and loses 60 s (checkpoint and restart).

Large gangs: jobs of 8 GPUs (a whole node). Blocked time: submission to first start.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from powertrain.data import PHILLY_DIR
from powertrain.sim.cluster import parse_cluster
from powertrain.sim.engine import Policy, SimResult, simulate
from powertrain.sim.report import summarize
from powertrain.sim.trace import load_trace

CLUSTER = "nodes=32,gpus-per-node=8,topology=zone=1,spine=2,rack=4"
TRACES = ("seed0-0e4a51.csv", "seed0-7f04ca.csv", "seed0-ee9e8c.csv")
SCALE = 0.25


def _large_wait_h(result: SimResult, gpus: int) -> tuple[float, float, int]:
    waits = [(r.start_s - r.submit_s) / 3600 for r in result.records if r.job.gpus >= gpus and r.start_s is not None]
    if not waits:
        return 0.0, 0.0, 0
    waits.sort()
    return statistics.fmean(waits), waits[int(0.95 * (len(waits) - 1))], len(waits)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("bench/results/defragmentation.md"))
    args = parser.parse_args()
    nodes = parse_cluster(CLUSTER)
    lines = [
        "# Defragmentation in the simulator (`bench/defrag_sim_bench.py`)",
        "",
        (__doc__ or "").split("\n\n", 1)[1].strip(),
        "",
        "| trace | policy | defrag | JCT mean | queue mean | 8-GPU gangs: blocked mean | blocked p95 | "
        "moves (GPUs moved) | multi-GPU on one node | wall |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in TRACES:
        jobs = load_trace(PHILLY_DIR / name)
        for policy in (Policy.TOPOLOGY, Policy.PACKED):
            for defrag in (False, True):
                began = time.perf_counter()
                result = simulate(jobs, nodes, policy, SCALE, defragment=defrag)
                wall = time.perf_counter() - began
                s = summarize(result)
                mean, p95, count = _large_wait_h(result, 8)
                lines.append(
                    f"| {name} ({len(jobs)} jobs, {count} of 8 GPUs) | {policy} | {'on' if defrag else 'off'} | "
                    f"{s.jct_mean_s / 3600:.2f} h | {s.queue_mean_s / 3600:.2f} h | {mean:.2f} h | {p95:.2f} h | "
                    f"{result.moves} ({result.gpus_moved}) | {s.multi_gpu_packed_fraction:.1%} | {wall:.1f} s |"
                )
                print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
