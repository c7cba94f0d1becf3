"""Small slices of the real traces (../shared/data) and tiny clusters for the simulator tests."""

from __future__ import annotations

from pathlib import Path

from powertrain.sim.cluster import SimNode, parse_cluster
from powertrain.sim.trace import TraceJob, load_trace

PHILLY = Path(__file__).resolve().parents[3] / "shared" / "data" / "traces" / "philly-gavel"
ALIBABA_NODES = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "data"
    / "traces"
    / "alibaba-gpu-v2023"
    / "openb_node_list_gpu_node.csv"
)
# 984 jobs, 45 % of them locality-sensitive multi-GPU jobs (LM, Transformer, ResNet-18 ...).
SENSITIVE_TRACE = PHILLY / "seed0-0e4a51.csv"
# Many 8-GPU jobs, ResNet-50 among them (faster spread than packed).
MIXED_TRACE = PHILLY / "seed0-ee9e8c.csv"


def trace(path: Path, n: int) -> list[TraceJob]:
    return load_trace(path)[:n]


def small_cluster() -> list[SimNode]:
    """8 nodes × 8 GPUs in 2 racks."""
    return parse_cluster("nodes=8,gpus-per-node=8,topology=zone=1,spine=1,rack=2")


def job(job_id: str, submit: float, gpus: int, packed: float, spread: float | None = None) -> TraceJob:
    return TraceJob(job_id, submit, gpus, "LM (batch size 20)", packed, packed if spread is None else spread)
