"""Slices of the packaged real traces (powertrain.data) and tiny clusters for the simulator tests."""

from __future__ import annotations

from pathlib import Path

from powertrain.data import ALIBABA_NODES, philly_trace
from powertrain.sim.cluster import SimNode, parse_cluster
from powertrain.sim.trace import TraceJob, load_trace

__all__ = ["ALIBABA_NODES", "MIXED_TRACE", "SENSITIVE_TRACE", "job", "small_cluster", "trace"]

# 984 jobs, 45 % of them locality-sensitive multi-GPU jobs (LM, Transformer, ResNet-18 ...).
SENSITIVE_TRACE = philly_trace("seed0-0e4a51")
# Many 8-GPU jobs, ResNet-50 among them (faster spread than packed).
MIXED_TRACE = philly_trace("seed0-ee9e8c")


def trace(path: Path, n: int) -> list[TraceJob]:
    return load_trace(path)[:n]


def small_cluster() -> list[SimNode]:
    """8 nodes × 8 GPUs in 2 racks."""
    return parse_cluster("nodes=8,gpus-per-node=8,topology=zone=1,spine=1,rack=2")


def job(job_id: str, submit: float, gpus: int, packed: float, spread: float | None = None) -> TraceJob:
    return TraceJob(job_id, submit, gpus, "LM (batch size 20)", packed, packed if spread is None else spread)
